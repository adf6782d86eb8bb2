// Package checkout runs the checkout saga on the real system, as separate
// processes over real HTTP, and kills its services with SIGKILL in the
// middle of it. After each scenario the invariant checker must find
// nothing wrong.
package checkout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/invariants"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/users/usersapi"
	"github.com/microshop/microshop/test/systemtest"
)

var env = []string{
	"MICROSHOP_ADMIN_EMAIL=admin@example.com",
	"MICROSHOP_ADMIN_PASSWORD=admin password 123",
	"MICROSHOP_REGISTER_RATE_IP=0",
	"MICROSHOP_LOGIN_RATE_IP=0",
	"MICROSHOP_RATE_LIMIT=0",
}

// client is one shopper placing orders through the gateway.
type client struct {
	gw    string
	token string
	http  *http.Client
}

func login(t *testing.T, gw, email, password string) string {
	t.Helper()
	r := servicetest.Call(t, "POST", gw+"/api/users/login", "", map[string]string{"email": email, "password": password})
	if r.Status != http.StatusOK {
		t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	var tok usersapi.Tokens
	r.JSON(t, &tok)
	return tok.AccessToken
}

func newCustomer(t *testing.T, gw, name string) *client {
	t.Helper()
	email := fmt.Sprintf("%s-%d@example.com", name, time.Now().UnixNano())
	r := servicetest.Call(t, "POST", gw+"/api/users/register", "", map[string]string{"email": email, "password": "long enough password", "name": name})
	if r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	return &client{gw: gw, token: login(t, gw, email, "long enough password"), http: &http.Client{Timeout: 30 * time.Second}}
}

func body(card, sku string, qty int) []byte {
	b, _ := json.Marshal(map[string]any{
		"lines":            []map[string]any{{"sku": sku, "quantity": qty}},
		"shipping_address": map[string]string{"name": "A", "street": "1 Way", "city": "London", "postal_code": "N1", "country": "GB"},
		"card":             map[string]any{"number": card, "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"},
	})
	return b
}

// checkout posts one order with key, retrying the same request (same key)
// until an answer comes back: exactly what a careful client does when the
// service it talks to dies mid-request. It returns the order and the
// number of failed attempts.
func (c *client) checkout(ctx context.Context, key string, b []byte) (ordersapi.Order, int, error) {
	failures := 0
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.gw+"/api/orders", bytesReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Idempotency-Key", key)
		resp, err := c.http.Do(req)
		if err == nil {
			var o ordersapi.Order
			decodeErr := json.NewDecoder(resp.Body).Decode(&o)
			resp.Body.Close()
			if (resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusAccepted) && decodeErr == nil {
				return o, failures, nil
			}
			if resp.StatusCode < 500 {
				return ordersapi.Order{}, failures, fmt.Errorf("checkout %s: status %d", key, resp.StatusCode)
			}
		}
		failures++
		select {
		case <-ctx.Done():
			return ordersapi.Order{}, failures, fmt.Errorf("checkout %s never answered: %w", key, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// shoppers runs n clients placing orders for d, each order with a fresh
// key, and returns every accepted order id and key.
type run struct {
	mu       sync.Mutex
	accepted []string
	keys     map[string][]string
	failures atomic.Int64
	wait     func()
}

func (r *run) add(key, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.accepted = append(r.accepted, id)
	r.keys[key] = append(r.keys[key], id)
}

func shop(t *testing.T, s *systemtest.System, clients int, stop <-chan struct{}, skus []string) *run {
	res := &run{keys: map[string][]string{}}
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	for i := range clients {
		c := newCustomer(t, s.Gateway, fmt.Sprintf("shopper%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				card := "4242 4242 4242 4242"
				if n%5 == 4 {
					card = "4000 0000 0000 0002" // some declines in the mix
				}
				key := fmt.Sprintf("c%d-%d", i, n)
				o, fails, err := c.checkout(ctx, key, body(card, skus[(i+n)%len(skus)], 1))
				res.failures.Add(int64(fails))
				if err != nil {
					t.Errorf("shopper %d: %v", i, err)
					return
				}
				res.add(key, o.ID)
				// Ask again with the same key: it must name the same order.
				if n%3 == 0 {
					o2, _, err := c.checkout(ctx, key, body(card, skus[(i+n)%len(skus)], 1))
					if err == nil {
						res.add(key, o2.ID)
					}
				}
			}
		}()
	}
	t.Cleanup(wg.Wait)
	res.wait = wg.Wait
	return res
}

func setup(t *testing.T) (*systemtest.System, string, map[string]int64, []string) {
	s := systemtest.Start(t, env...)
	admin := login(t, s.Gateway, "admin@example.com", "admin password 123")
	r := servicetest.Call(t, "GET", s.Gateway+"/api/inventory/stock", admin, nil)
	var stock struct{ Items []inventoryapi.StockLevel }
	r.JSON(t, &stock)
	received := map[string]int64{}
	var skus []string
	for _, l := range stock.Items {
		received[l.SKU] = l.Received
		if len(skus) < 6 && l.Available >= 50 {
			skus = append(skus, l.SKU)
		}
	}
	return s, admin, received, skus
}

func verify(t *testing.T, s *systemtest.System, admin string, received map[string]int64, res *run) {
	t.Helper()
	chk := &invariants.Checker{Gateway: s.Gateway, AdminToken: admin}
	rep, err := chk.Settle(context.Background(), 60*time.Second, invariants.Expect{Received: received, Accepted: res.accepted, Keys: res.keys})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Errorf("invariant: %s", v)
	}
	t.Logf("orders %d: confirmed %d, rejected %d; client attempts that failed and were retried: %d",
		rep.Orders, rep.Confirmed, rep.Rejected, res.failures.Load())
	if rep.Confirmed == 0 {
		t.Error("no order was confirmed")
	}
}

func TestPaymentsKilledDuringCheckouts(t *testing.T) {
	s, admin, received, skus := setup(t)
	stop := make(chan struct{})
	res := shop(t, s, 4, stop, skus)
	time.Sleep(time.Second)
	s.Kill(t, "payments")
	time.Sleep(2 * time.Second)
	s.StartService(t, "payments")
	time.Sleep(time.Second)
	close(stop)
	res.wait()
	verify(t, s, admin, received, res)
}

func TestOrdersKilledMidSaga(t *testing.T) {
	s, admin, received, skus := setup(t)
	stop := make(chan struct{})
	res := shop(t, s, 4, stop, skus)
	for range 2 {
		time.Sleep(time.Second)
		s.Kill(t, "orders")
		time.Sleep(500 * time.Millisecond)
		s.StartService(t, "orders")
	}
	time.Sleep(time.Second)
	close(stop)
	res.wait()
	verify(t, s, admin, received, res)
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
