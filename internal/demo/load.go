package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// loadConfig is a closed-loop load: Shoppers goroutines, each checking
// out one unit of SKU with Card, then starting again.
type loadConfig struct {
	Shoppers  int
	Customers []*shopclient.Session // shopper i is customer i % len(Customers)
	SKU       string
	Card      string
	// Browse makes each round a shopper's whole visit: the catalog, a
	// login now and then, the checkout and the order history, so every
	// service sees traffic.
	Browse bool
	// Pause is each shopper's think time between rounds (0: none, the
	// load is then as heavy as the system allows).
	Pause time.Duration
	// MaxCheckouts stops starting checkouts past this many (0: no limit).
	MaxCheckouts int64
	// Key names the load's Idempotency-Keys.
	Key string
}

// counts are a load's figures so far.
type counts struct {
	// Requests are HTTP requests as a client sees them: a request that
	// was retried counts once. RetriedOK were answered after at least one
	// retry; Failed were not answered well even after retries.
	Requests, RetriedOK, Failed int64
	// Checkouts finished: Confirmed, Rejected (out of stock, declined) or
	// CheckoutFailed (an error, or still pending after 30s).
	Checkouts, Confirmed, Rejected, CheckoutFailed int64
}

func (c counts) minus(o counts) counts {
	return counts{Requests: c.Requests - o.Requests, RetriedOK: c.RetriedOK - o.RetriedOK, Failed: c.Failed - o.Failed,
		Checkouts: c.Checkouts - o.Checkouts, Confirmed: c.Confirmed - o.Confirmed, Rejected: c.Rejected - o.Rejected,
		CheckoutFailed: c.CheckoutFailed - o.CheckoutFailed}
}

// successRate is the share of finished checkouts that were confirmed.
func (c counts) successRate() float64 {
	if c.Checkouts == 0 {
		return 0
	}
	return 100 * float64(c.Confirmed) / float64(c.Checkouts)
}

// placed is one checkout the API accepted.
type placed struct {
	ID, Key, Status string
	TotalCents      int64
}

// load runs shoppers until Stop.
type load struct {
	cfg  loadConfig
	shop *shopclient.Client

	requests, retriedOK, failed                    atomic.Int64
	checkouts, confirmed, rejected, checkoutFailed atomic.Int64
	started                                        atomic.Int64
	mu                                             sync.Mutex
	failures                                       []string
	placed                                         []placed
	keys                                           map[string][]string
	stopping                                       chan struct{}
	wg                                             sync.WaitGroup
	cancel                                         context.CancelFunc
}

// startLoad starts the shoppers.
func startLoad(shop *shopclient.Client, cfg loadConfig) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cfg: cfg, shop: shop, keys: map[string][]string{}, stopping: make(chan struct{}), cancel: cancel}
	if cfg.Key == "" {
		l.cfg.Key = "demo"
	}
	for i := range cfg.Shoppers {
		l.wg.Go(func() { l.run(ctx, i) })
	}
	return l
}

// Stop lets every shopper finish what it is doing, then returns.
func (l *load) Stop() {
	select {
	case <-l.stopping:
	default:
		close(l.stopping)
	}
	l.wg.Wait()
	l.cancel()
}

// Counts returns the figures so far.
func (l *load) Counts() counts {
	return counts{Requests: l.requests.Load(), RetriedOK: l.retriedOK.Load(), Failed: l.failed.Load(),
		Checkouts: l.checkouts.Load(), Confirmed: l.confirmed.Load(), Rejected: l.rejected.Load(),
		CheckoutFailed: l.checkoutFailed.Load()}
}

// Placed returns the checkouts the API accepted, with their final state.
func (l *load) Placed() []placed {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]placed(nil), l.placed...)
}

// Keys maps each Idempotency-Key to the order ids it was answered with.
func (l *load) Keys() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for k, v := range l.keys {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Failures returns up to ten failed requests, described.
func (l *load) Failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.failures...)
}

func (l *load) fail(format string, args ...any) {
	l.failed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, fmt.Sprintf(format, args...))
	}
}

func (l *load) run(ctx context.Context, i int) {
	c := l.cfg.Customers[i%len(l.cfg.Customers)]
	for k := 0; ; k++ {
		select {
		case <-l.stopping:
			return
		default:
		}
		if l.cfg.MaxCheckouts > 0 && l.started.Add(1) > l.cfg.MaxCheckouts {
			<-l.stopping
			return
		}
		if l.cfg.Browse {
			l.do(ctx, "GET /api/inventory/products", true, func() error {
				_, err := l.shop.Products(ctx, shopclient.ProductQuery{Limit: 20})
				return err
			})
			if k%8 == 0 {
				l.do(ctx, "POST /api/users/login", false, func() error { return c.Login(ctx) })
			}
		}
		l.checkout(ctx, c, fmt.Sprintf("%s-%d-%d", l.cfg.Key, i, k))
		if l.cfg.Browse {
			l.do(ctx, "GET /api/orders", true, func() error {
				_, err := c.Orders(ctx, 5, "")
				return err
			})
		}
		if l.cfg.Pause > 0 {
			select {
			case <-l.stopping:
				return
			case <-time.After(l.cfg.Pause):
			}
		}
	}
}

// checkout places one order and follows it to its final state.
func (l *load) checkout(ctx context.Context, c *shopclient.Session, key string) {
	var o ordersapi.Order
	err := l.do(ctx, "checkout "+key, true, func() (err error) {
		o, _, err = c.PlaceOrder(ctx, key, orderBody(l.cfg.Card, line(l.cfg.SKU, 1)))
		return err
	})
	if err != nil {
		if status := shopclient.StatusOf(err); status != 0 && status < 500 { // 5xx and no answer are counted by do
			l.fail("%v", err)
		}
		l.finish(o, key, false)
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for o.Status == ordersapi.StatusPending && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			l.finish(o, key, false)
			return
		case <-time.After(100 * time.Millisecond):
		}
		l.do(ctx, "GET /api/orders/"+o.ID, true, func() error {
			got, err := c.Order(ctx, o.ID)
			if err == nil {
				o = got
			}
			return err
		})
	}
	l.finish(o, key, true)
}

func (l *load) finish(o ordersapi.Order, key string, accepted bool) {
	l.checkouts.Add(1)
	switch {
	case accepted && o.Status == ordersapi.StatusConfirmed:
		l.confirmed.Add(1)
	case accepted && o.Status == ordersapi.StatusRejected:
		l.rejected.Add(1)
	default:
		l.checkoutFailed.Add(1)
	}
	if !accepted {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.placed = append(l.placed, placed{ID: o.ID, Key: key, Status: o.Status, TotalCents: o.TotalCents})
	l.keys[key] = append(l.keys[key], o.ID)
}

// do makes one call of the API the way a careful client does: a request
// that never left (connection refused) is sent again, and so is a safe
// one (a GET, or a POST with an Idempotency-Key) that failed or met a
// 503. A call answered after retries counts as retried-then-succeeded;
// one still failing after 20 tries, or answered 5xx, counts as failed.
func (l *load) do(ctx context.Context, what string, safe bool, call func() error) error {
	l.requests.Add(1)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt*50) * time.Millisecond)
		}
		err := call()
		status := shopclient.StatusOf(err)
		if err != nil && status == 0 && !errors.Is(err, shopclient.ErrBadResponse) {
			var op *net.OpError
			if (errors.As(err, &op) && op.Op == "dial" || safe) && attempt < 20 && ctx.Err() == nil {
				continue
			}
			if ctx.Err() == nil {
				l.fail("%s: %v", what, err)
			}
			return err
		}
		if status == http.StatusServiceUnavailable && safe && attempt < 20 {
			continue
		}
		if status >= 500 {
			l.fail("%v", err)
		} else if attempt > 0 {
			l.retriedOK.Add(1)
		}
		return err
	}
}
