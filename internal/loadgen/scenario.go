package loadgen

import (
	"context"
	mathrand "math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
	"github.com/microshop/microshop/services/users/usersapi"
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

// Test cards of payments' simulated card processor.
const (
	CardApproved = "4242 4242 4242 4242"
	CardDeclined = "4000 0000 0000 0002"
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

type productPage struct {
	Items         []inventoryapi.Product `json:"items"`
	NextPageToken string                 `json:"next_page_token"`
}

type orderPage struct {
	Items         []ordersapi.Order `json:"items"`
	NextPageToken string            `json:"next_page_token"`
}

// list reads a page of the catalog, the first one half the time.
func list(ctx context.Context, r *runner, rng *mathrand.Rand) outcome {
	tok := ""
	if len(r.catalog.pages) > 0 && rng.IntN(2) == 0 {
		tok = r.catalog.pages[rng.IntN(len(r.catalog.pages))]
	}
	var p productPage
	kind := r.getJSON(ctx, query("/api/inventory/products", "limit", itoa(pageSize), "page_token", tok), "", &p)
	if kind == "" && p.Items == nil {
		kind = KindBadResponse
	}
	return outcome{op: OpList, kind: kind}
}

// search looks for a word of the products' names.
func search(ctx context.Context, r *runner, rng *mathrand.Rand) outcome {
	var p productPage
	q := r.catalog.words[rng.IntN(len(r.catalog.words))]
	kind := r.getJSON(ctx, query("/api/inventory/products", "q", q, "limit", itoa(pageSize)), "", &p)
	if kind == "" && p.Items == nil {
		kind = KindBadResponse
	}
	return outcome{op: OpSearch, kind: kind}
}

// product reads one product.
func product(ctx context.Context, r *runner, rng *mathrand.Rand) outcome {
	sku := r.catalog.products[rng.IntN(len(r.catalog.products))].SKU
	var p inventoryapi.Product
	kind := r.getJSON(ctx, "/api/inventory/products/"+url.PathEscape(sku), "", &p)
	if kind == "" && p.SKU != sku {
		kind = KindBadResponse
	}
	return outcome{op: OpProduct, kind: kind}
}

// login logs a customer in again. Customers take turns so that each
// logs in as seldom as possible: users limits logins per account.
func login(ctx context.Context, r *runner, _ *mathrand.Rand) outcome {
	c := r.customers[int(r.logins.Add(1)%uint64(len(r.customers)))]
	return outcome{op: OpLogin, kind: r.login(ctx, c)}
}

// history reads a customer's latest orders.
func history(ctx context.Context, r *runner, rng *mathrand.Rand) outcome {
	c := r.customers[rng.IntN(len(r.customers))]
	tok, kind := r.token(ctx, c)
	if kind != "" {
		return outcome{op: OpHistory, kind: kind}
	}
	var p orderPage
	kind = r.getJSON(ctx, query("/api/orders", "limit", "10"), tok, &p)
	if kind == "" && p.Items == nil {
		kind = KindBadResponse
	}
	return outcome{op: OpHistory, kind: kind}
}

type placeOrder struct {
	Lines           []orderLine       `json:"lines"`
	ShippingAddress ordersapi.Address `json:"shipping_address"`
	Card            paymentsapi.Card  `json:"card"`
}

type orderLine struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// checkout places an order of one or two products under a fresh
// Idempotency-Key and, if it is still PENDING, polls it until it is
// final. Its latency is the customer's wait for the outcome.
func checkout(ctx context.Context, r *runner, rng *mathrand.Rand) outcome {
	declined := rng.Float64() < declineShare
	out := outcome{op: OpCheckout}
	card := CardApproved
	if declined {
		out.op, card = OpCheckoutDeclined, CardDeclined
	}
	c := r.customers[rng.IntN(len(r.customers))]
	lines := []orderLine{{SKU: r.catalog.inStock[rng.IntN(len(r.catalog.inStock))], Quantity: 1}}
	if rng.IntN(3) == 0 && len(r.catalog.inStock) > 1 {
		for {
			sku := r.catalog.inStock[rng.IntN(len(r.catalog.inStock))]
			if sku != lines[0].SKU {
				lines = append(lines, orderLine{SKU: sku, Quantity: 1})
				break
			}
		}
	}
	tok, kind := r.token(ctx, c)
	if kind != "" {
		out.kind = kind
		return out
	}
	body := placeOrder{
		Lines:           lines,
		ShippingAddress: ordersapi.Address{Name: "Load Tester", Street: "1 Benchmark Road", City: "London", PostalCode: "N1 9GU", Country: "GB"},
		Card:            paymentsapi.Card{Number: card, ExpMonth: 12, ExpYear: time.Now().Year() + 3, CVC: "123"},
	}
	key := "load-" + r.runID + "-" + utoa(r.keys.Add(1))
	res, kind := r.call(ctx, http.MethodPost, "/api/orders", tok, key, body)
	if kind != "" {
		out.kind = kind
		return out
	}
	if res.status != http.StatusCreated && res.status != http.StatusAccepted {
		out.kind = statusKind(res.status)
		return out
	}
	var o ordersapi.Order
	if decodeOrder(res.body, &o) != nil {
		out.kind = KindBadResponse
		return out
	}
	poll := res.header.Get("Location")
	if poll == "" {
		poll = "/api/orders/" + url.PathEscape(o.ID)
	}
	wait := 10 * time.Millisecond
	for o.Status == ordersapi.StatusPending {
		if !sleepUntil(ctx, time.Now().Add(wait)) {
			out.kind = classify(ctx, ctx.Err())
			return out
		}
		wait = min(2*wait, 250*time.Millisecond)
		res, kind := r.call(ctx, http.MethodGet, poll, tok, "", nil)
		o = ordersapi.Order{}
		switch {
		case kind != "":
			out.kind = kind
			return out
		case res.status != http.StatusOK:
			out.kind = statusKind(res.status)
			return out
		case decodeOrder(res.body, &o) != nil:
			out.kind = KindBadResponse
			return out
		}
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

// customer is a registered account of the run and its access token.
type customer struct {
	email, password string

	mu      sync.Mutex
	token   string
	expires time.Time
}

// token returns c's access token, logging in first when there is none
// or it expires within a minute (a run longer than a token's life).
func (r *runner) token(ctx context.Context, c *customer) (string, string) {
	c.mu.Lock()
	tok, exp := c.token, c.expires
	c.mu.Unlock()
	if tok != "" && time.Until(exp) > time.Minute {
		return tok, ""
	}
	if kind := r.login(ctx, c); kind != "" {
		return "", "login:" + kind
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token, ""
}

// login logs c in and keeps its new token.
func (r *runner) login(ctx context.Context, c *customer) string {
	var t usersapi.Tokens
	kind := r.expectJSON(ctx, http.MethodPost, "/api/users/login", "", "",
		map[string]string{"email": c.email, "password": c.password}, http.StatusOK, &t)
	if kind != "" {
		return kind
	}
	if t.AccessToken == "" {
		return KindBadResponse
	}
	c.mu.Lock()
	c.token, c.expires = t.AccessToken, time.Now().Add(time.Duration(t.ExpiresIn)*time.Second)
	c.mu.Unlock()
	return ""
}
