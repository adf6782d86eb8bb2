package loadgen

import (
	"context"
	mathrand "math/rand/v2"

	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// Operation names, as the figures list them.
const (
	OpList             = "products.list"
	OpSearch           = "products.search"
	OpProduct          = "products.get"
	OpLogin            = "users.login"
	OpHistory          = "orders.list"
	OpCheckout         = "orders.checkout"
	OpCheckoutDeclined = "orders.checkout_declined"
)

// declineShare is the share of checkouts paid with the declining card.
const declineShare = 0.05

// pageSize is the catalog page the browsing shoppers ask for.
const pageSize = 10

// An op is one thing a shopper does: one request, or a checkout with its
// polls. It reports its name and how it ended.
type op func(ctx context.Context, r *runner, rng *mathrand.Rand) outcome

type outcome struct {
	op   string
	kind string // "" for a success
	// confirmed: a checkout that reached CONFIRMED.
	confirmed bool
}

// A scenario is a weighted mix of operations.
type scenario struct {
	// customers: the scenario needs logged-in customers (set up first).
	customers bool
	ops       []weighted
	// order is how the figures list the operations.
	order []string
}

type weighted struct {
	weight int
	do     op
}

func (s *scenario) pick(rng *mathrand.Rand) op {
	total := 0
	for _, w := range s.ops {
		total += w.weight
	}
	n := rng.IntN(total)
	for _, w := range s.ops {
		if n < w.weight {
			return w.do
		}
		n -= w.weight
	}
	return s.ops[len(s.ops)-1].do
}

var scenarios = map[string]*scenario{
	// browse: anonymous shoppers reading the catalog.
	"browse": {
		ops:   []weighted{{35, list}, {25, search}, {40, product}},
		order: []string{OpList, OpSearch, OpProduct},
	},
	// checkout: customers placing orders, one in twenty with a card that
	// is declined.
	"checkout": {
		customers: true,
		ops:       []weighted{{100, checkout}},
		order:     []string{OpCheckout, OpCheckoutDeclined},
	},
	// mixed: a shop's day, mostly browsing.
	"mixed": {
		customers: true,
		ops: []weighted{
			{25, list}, {15, search}, {30, product},
			{3, login}, {12, history}, {15, checkout},
		},
		order: []string{OpList, OpSearch, OpProduct, OpLogin, OpHistory, OpCheckout, OpCheckoutDeclined},
	},
}

// Scenarios lists the scenario names.
func Scenarios() []string { return []string{"browse", "checkout", "mixed"} }

// catalog is what setup read of the products.
type catalog struct {
	products []inventoryapi.Product
	// pages are the next_page_tokens of the catalog's pages after the first.
	pages []string
	// words are search terms taken from the products' names.
	words []string
	// inStock are the skus a checkout may buy.
	inStock []string
}

// list reads a page of the catalog, the first one half the time.
func list(ctx context.Context, r *runner, rng *mathrand.Rand) outcome {
	tok := ""
	if len(r.catalog.pages) > 0 && rng.IntN(2) == 0 {
		tok = r.catalog.pages[rng.IntN(len(r.catalog.pages))]
	}
	_, err := r.shop.Products(ctx, shopclient.ProductQuery{Limit: pageSize, PageToken: tok})
	return outcome{op: OpList, kind: KindOf(ctx, err)}
}

// search looks for a word of the products' names.
func search(ctx context.Context, r *runner, rng *mathrand.Rand) outcome {
	q := r.catalog.words[rng.IntN(len(r.catalog.words))]
	_, err := r.shop.Products(ctx, shopclient.ProductQuery{Q: q, Limit: pageSize})
	return outcome{op: OpSearch, kind: KindOf(ctx, err)}
}

// product reads one product.
func product(ctx context.Context, r *runner, rng *mathrand.Rand) outcome {
	_, err := r.shop.Product(ctx, r.catalog.products[rng.IntN(len(r.catalog.products))].SKU)
	return outcome{op: OpProduct, kind: KindOf(ctx, err)}
}

// login logs a customer in again. Customers take turns so that each
// logs in as seldom as possible: users limits logins per account.
func login(ctx context.Context, r *runner, _ *mathrand.Rand) outcome {
	c := r.customers[int(r.logins.Add(1)%uint64(len(r.customers)))]
	return outcome{op: OpLogin, kind: KindOf(ctx, c.Login(ctx))}
}

// history reads a customer's latest orders.
func history(ctx context.Context, r *runner, rng *mathrand.Rand) outcome {
	_, err := r.customers[rng.IntN(len(r.customers))].Orders(ctx, 10, "")
	return outcome{op: OpHistory, kind: KindOf(ctx, err)}
}

// checkout places an order of one or two products under a fresh
// Idempotency-Key and, if it is still PENDING, polls it until it is
// final. Its latency is the customer's wait for the outcome.
func checkout(ctx context.Context, r *runner, rng *mathrand.Rand) outcome {
	declined := rng.Float64() < declineShare
	out := outcome{op: OpCheckout}
	card := shopclient.CardApproved
	if declined {
		out.op, card = OpCheckoutDeclined, shopclient.CardDeclined
	}
	c := r.customers[rng.IntN(len(r.customers))]
	lines := []shopclient.Line{{SKU: r.catalog.inStock[rng.IntN(len(r.catalog.inStock))], Quantity: 1}}
	if rng.IntN(3) == 0 && len(r.catalog.inStock) > 1 {
		for {
			sku := r.catalog.inStock[rng.IntN(len(r.catalog.inStock))]
			if sku != lines[0].SKU {
				lines = append(lines, shopclient.Line{SKU: sku, Quantity: 1})
				break
			}
		}
	}
	o, err := c.Checkout(ctx, "load-"+r.runID+"-"+utoa(r.keys.Add(1)), shopclient.Checkout(card, lines...))
	if out.kind = KindOf(ctx, err); out.kind != "" {
		return out
	}
	out.kind, out.confirmed = judgeCheckout(declined, o)
	return out
}

// judgeCheckout says whether a final order is the right outcome for its
// card: CONFIRMED for the approving card; REJECTED for payment_declined
// for the declining one. Anything else is a wrong outcome.
func judgeCheckout(declinedCard bool, o ordersapi.Order) (kind string, confirmed bool) {
	switch {
	case !declinedCard && o.Status == ordersapi.StatusConfirmed:
		return "", true
	case declinedCard && o.Status == ordersapi.StatusRejected && o.Reason == ordersapi.ReasonPaymentDeclined:
		return "", false
	}
	return outcomeKind(o.Status, o.Reason), false
}
