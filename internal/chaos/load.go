package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// The shoppers' mix, in parts of 100.
const (
	weightBrowse   = 43
	weightCheckout = 35
	weightHistory  = 10
	weightRegister = 8
	weightCancel   = 4
)

const (
	password = "chaos monkey password"
	// requestDeadline bounds the retries of one request. Faults last a
	// few seconds, so a safe request outlives any of them.
	requestDeadline = 60 * time.Second
)

// load is the shoppers, run on loadgen's engine, and what chaos needs
// to know of what they did besides loadgen's counts: who owns each
// order and who registered.
type load struct {
	shop      *shopclient.Client
	seed      uint64
	slowCards int // percent of checkouts with the slow card (Config.SlowCards)
	catalog   []inventoryapi.StockLevel
	received  map[string]int64
	shoppers  []*shopper
	run       *loadgen.Load

	mu         sync.Mutex
	owner      map[string]string // order id -> the customer's email
	registered map[string]string // email -> name, for registrations answered 201
}

// shopper is what one worker keeps between its operations: the accounts
// it shops as and its confirmed orders not cancelled yet.
type shopper struct {
	accounts []*shopclient.Session
	bought   []bought
}

type bought struct {
	id string
	as *shopclient.Session
}

func newLoad(ctx context.Context, shop *shopclient.Client, seed uint64, shoppers, slowCards int, admin *shopclient.Session) (*load, error) {
	l := &load{shop: shop, seed: seed, slowCards: slowCards, received: map[string]int64{}, owner: map[string]string{}, registered: map[string]string{}}
	stock, err := admin.Stock(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the stock: %w", err)
	}
	for _, s := range stock {
		l.received[s.SKU] = s.Received
		if s.Available > 0 {
			l.catalog = append(l.catalog, s)
		}
	}
	if len(l.catalog) == 0 {
		return nil, errors.New("no product has stock to sell")
	}
	for i := range shoppers {
		email, name := fmt.Sprintf("chaos-%d-s%d@example.com", seed, i), fmt.Sprintf("Chaos shopper %d", i)
		if _, err := shop.Register(ctx, shopclient.Registration{Email: email, Password: password, Name: name}); err != nil {
			return nil, fmt.Errorf("registering shopper %d: %w", i, err)
		}
		l.registered[email] = name
		sess, err := shop.Login(ctx, email, password)
		if err != nil {
			return nil, fmt.Errorf("logging in shopper %d: %w", i, err)
		}
		l.shoppers = append(l.shoppers, &shopper{accounts: []*shopclient.Session{sess}})
	}
	return l, nil
}

// start starts the shoppers; each pauses 50ms to 500ms before each of
// its operations.
func (l *load) start(ctx context.Context) {
	l.run = loadgen.Start(ctx, loadgen.Custom{Workers: len(l.shoppers), Seed: l.seed, RetryFor: requestDeadline, Outages: true,
		Think: func(r *rand.Rand) time.Duration { return between(r, 50*time.Millisecond, 500*time.Millisecond) },
		Op:    l.shop1})
}

func (l *load) progress() Progress {
	c := l.run.Counts()
	return Progress{Requests: c.Requests, Placed: c.Placed, Confirmed: c.Confirmed, Errors: c.FailedAttempts}
}

// shop1 is one operation of a shopper.
func (l *load) shop1(ctx context.Context, w *loadgen.Worker) {
	s := l.shoppers[w.ID]
	switch n := w.Rand.IntN(100); {
	case n < weightBrowse:
		l.browse(ctx, w)
	case n < weightBrowse+weightCheckout:
		l.checkout(ctx, w, s)
	case n < weightBrowse+weightCheckout+weightHistory:
		acc := s.accounts[w.Rand.IntN(len(s.accounts))]
		_ = w.Call(ctx, true, func(ctx context.Context) error {
			_, err := acc.Orders(ctx, 5, "")
			return err
		})
	case n < weightBrowse+weightCheckout+weightHistory+weightRegister:
		l.register(ctx, w, s)
	case len(s.bought) > 0:
		l.cancel(ctx, w, s)
	default:
		l.browse(ctx, w)
	}
}

var searches = []string{"", "", "mug", "tea", "notebook", "usb", "wool", "coffee"}

func (l *load) browse(ctx context.Context, w *loadgen.Worker) {
	q := searches[w.Rand.IntN(len(searches))]
	_ = w.Call(ctx, true, func(ctx context.Context) error {
		_, err := l.shop.Products(ctx, shopclient.ProductQuery{Q: q, Limit: 20})
		return err
	})
	sku := l.catalog[w.Rand.IntN(len(l.catalog))].SKU
	_ = w.Call(ctx, true, func(ctx context.Context) error {
		_, err := l.shop.Product(ctx, sku)
		return err
	})
}

func (l *load) checkout(ctx context.Context, w *loadgen.Worker, s *shopper) {
	acc := s.accounts[w.Rand.IntN(len(s.accounts))]
	var lines []shopclient.Line
	first := w.Rand.IntN(len(l.catalog))
	for k := range 1 + w.Rand.IntN(2) {
		lines = append(lines, shopclient.Line{SKU: l.catalog[(first+k*7)%len(l.catalog)].SKU, Quantity: int64(1 + w.Rand.IntN(2))})
	}
	card := shopclient.CardApproved
	if w.Rand.IntN(100) < 15 {
		card = shopclient.CardDeclined
	} else if l.slowCards > 0 && w.Rand.IntN(100) < l.slowCards {
		card = shopclient.CardSlow
	}
	order := shopclient.Checkout(card, lines...)
	key := fmt.Sprintf("chaos-%d-%d-%d", l.seed, w.ID, w.N)
	o, ok := w.Place(ctx, acc, key, order)
	if !ok {
		return
	}
	l.mu.Lock()
	l.owner[o.ID] = acc.Email
	l.mu.Unlock()
	// Now and then the same request again, as a client that lost the
	// answer would: it must name the same order.
	if w.Rand.IntN(6) == 0 {
		w.Place(ctx, acc, key, order)
	}
	o, ok = w.Follow(ctx, acc, o, 300*time.Millisecond, 20*time.Second)
	w.Finished(o, ok)
	if ok && o.Status == ordersapi.StatusConfirmed {
		s.bought = append(s.bought, bought{o.ID, acc})
	}
}

// cancel cancels one of the shopper's confirmed orders. Cancelling is
// idempotent by nature (cancelling again answers the same order), so it is
// retried like a keyed request.
func (l *load) cancel(ctx context.Context, w *loadgen.Worker, s *shopper) {
	i := w.Rand.IntN(len(s.bought))
	b := s.bought[i]
	s.bought = append(s.bought[:i], s.bought[i+1:]...)
	_ = w.Call(ctx, true, func(ctx context.Context) error {
		_, err := b.as.CancelOrder(ctx, b.id)
		return err
	})
}

// register signs a new customer up and logs in as them; the shopper then
// shops as any of its accounts. Neither POST has an idempotency key, so
// they are sent again only when the connection was refused.
func (l *load) register(ctx context.Context, w *loadgen.Worker, s *shopper) {
	email := fmt.Sprintf("chaos-%d-s%d-%d@example.com", l.seed, w.ID, w.N)
	name := fmt.Sprintf("Chaos shopper %d-%d", w.ID, w.N)
	if w.Call(ctx, false, func(ctx context.Context) error {
		_, err := l.shop.Register(ctx, shopclient.Registration{Email: email, Password: password, Name: name})
		return err
	}) != nil {
		return
	}
	l.mu.Lock()
	l.registered[email] = name
	l.mu.Unlock()
	var sess *shopclient.Session
	if w.Call(ctx, false, func(ctx context.Context) (err error) {
		sess, err = l.shop.Login(ctx, email, password)
		return err
	}) == nil {
		s.accounts = append(s.accounts, sess)
	}
}

// summarize copies what the shoppers saw into res.
func (l *load) summarize(res *Result) {
	c := l.run.Counts()
	res.Requests, res.Retried, res.Placed = c.Requests, c.Retries, int(c.Placed)
	res.ErrorAttempts, res.GaveUp = l.run.Kinds()
	res.Samples = l.run.Samples()
	res.Latencies = l.run.Latencies()
	l.mu.Lock()
	defer l.mu.Unlock()
	res.Registrations = len(l.registered)
}
