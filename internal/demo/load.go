package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/microshop/microshop/services/orders/ordersapi"
)

// loadConfig is a closed-loop load: Shoppers goroutines, each checking
// out one unit of SKU with Card, then starting again.
type loadConfig struct {
	Shoppers  int
	Customers []customer // shopper i is customer i % len(Customers)
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
	cfg loadConfig
	api *api

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
func startLoad(a *api, cfg loadConfig) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cfg: cfg, api: a, keys: map[string][]string{}, stopping: make(chan struct{}), cancel: cancel}
	if cfg.Key == "" {
		l.cfg.Key = "demo"
	}
	for i := range cfg.Shoppers {
		l.wg.Go(func() { l.shop(ctx, i) })
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

func (l *load) shop(ctx context.Context, i int) {
	c := l.cfg.Customers[i%len(l.cfg.Customers)]
	token := c.Token
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
			l.do(ctx, http.MethodGet, "/api/inventory/products?limit=20", "", nil, "")
			if k%8 == 0 {
				status, body := l.do(ctx, http.MethodPost, "/api/users/login", "", map[string]string{"email": c.Email, "password": c.Password}, "")
				var tok struct {
					AccessToken string `json:"access_token"`
				}
				if status == http.StatusOK && json.Unmarshal(body, &tok) == nil && tok.AccessToken != "" {
					token = tok.AccessToken
				}
			}
		}
		l.checkout(ctx, token, fmt.Sprintf("%s-%d-%d", l.cfg.Key, i, k))
		if l.cfg.Browse {
			l.do(ctx, http.MethodGet, "/api/orders?limit=5", token, nil, "")
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
func (l *load) checkout(ctx context.Context, token, key string) {
	status, body := l.do(ctx, http.MethodPost, "/api/orders", token, orderBody(l.cfg.Card, line(l.cfg.SKU, 1)), key)
	var o ordersapi.Order
	if (status != http.StatusCreated && status != http.StatusAccepted) || json.Unmarshal(body, &o) != nil {
		if status != 0 && status < 500 { // 5xx and no answer are counted by do
			l.fail("checkout %s: %d %s", key, status, body)
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
		status, body := l.do(ctx, http.MethodGet, "/api/orders/"+o.ID, token, nil, "")
		if status == http.StatusOK {
			_ = json.Unmarshal(body, &o)
		}
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

// do sends one request the way a careful client does: a request that
// never left (connection refused) is sent again, and so is a safe one (a
// GET, or a POST with an Idempotency-Key) that failed or met a 503. A
// request answered after retries counts as retried-then-succeeded; one
// still failing after 20 tries, or answered 5xx, counts as failed.
func (l *load) do(ctx context.Context, method, path, token string, body any, key string) (int, []byte) {
	l.requests.Add(1)
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	safe := method == http.MethodGet || key != ""
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt*50) * time.Millisecond)
		}
		req, _ := http.NewRequestWithContext(ctx, method, l.api.gw+path, bytes.NewReader(b))
		if b != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := l.api.hc.Do(req)
		if err != nil {
			var op *net.OpError
			if (errors.As(err, &op) && op.Op == "dial" || safe) && attempt < 20 && ctx.Err() == nil {
				continue
			}
			if ctx.Err() == nil {
				l.fail("%s %s: %v", method, path, err)
			}
			return 0, nil
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && safe && attempt < 20 {
			continue
		}
		if resp.StatusCode >= 500 {
			l.fail("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(out))
		} else if attempt > 0 {
			l.retriedOK.Add(1)
		}
		return resp.StatusCode, out
	}
}
