// Package resilience proves the promises of the style on the real system:
// one service scales out on its own, and every service can be replaced,
// one at a time, under steady load, with no failed request.
package resilience

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/invariants"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/users/usersapi"
	"github.com/microshop/microshop/test/systemtest"
)

var env = []string{
	"MICROSHOP_ADMIN_EMAIL=admin@example.com",
	"MICROSHOP_ADMIN_PASSWORD=admin password 123",
	"MICROSHOP_REGISTER_RATE_IP=0",
	"MICROSHOP_LOGIN_RATE_IP=0",
	"MICROSHOP_LOGIN_RATE_ACCOUNT=0",
	"MICROSHOP_RATE_LIMIT=0",
}

// tally counts what the shoppers saw.
type tally struct {
	requests, retried, failed atomic.Int64
	mu                        sync.Mutex
	failures                  []string
	accepted                  []string
	keys                      map[string][]string
}

func (t *tally) fail(format string, args ...any) {
	t.failed.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.failures) < 20 {
		t.failures = append(t.failures, fmt.Sprintf(format, args...))
	}
}

// do sends one request the way a careful client does: a request that
// never left (connection refused) is sent again, and so is a safe one (a
// GET, or a POST with an Idempotency-Key) that failed or met a 503. Any
// retry that then succeeds counts as a success, and is counted.
func (t *tally) do(ctx context.Context, hc *http.Client, method, url, token string, body any, key string) (int, []byte) {
	t.requests.Add(1)
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	safe := method == http.MethodGet || key != ""
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			t.retried.Add(1)
			time.Sleep(time.Duration(attempt*50) * time.Millisecond)
		}
		req, _ := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
		if b != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			var op *net.OpError
			if (errors.As(err, &op) && op.Op == "dial" || safe) && attempt < 20 && ctx.Err() == nil {
				continue
			}
			t.fail("%s %s: %v", method, url, err)
			return 0, nil
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && safe && attempt < 20 {
			continue
		}
		if resp.StatusCode >= 500 {
			t.fail("%s %s: %d %s", method, url, resp.StatusCode, out)
		}
		return resp.StatusCode, out
	}
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

// shoppers browse, log in and check out until stop closes.
func shoppers(t *testing.T, gw string, n int, stop <-chan struct{}) (*tally, func()) {
	tl := &tally{keys: map[string][]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		email := fmt.Sprintf("shopper%d@example.com", i)
		servicetest.Call(t, "POST", gw+"/api/users/register", "", map[string]string{"email": email, "password": "long enough password", "name": "S"})
		token := login(t, gw, email, "long enough password")
		hc := &http.Client{Timeout: 30 * time.Second}
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				var list struct {
					Items []struct {
						SKU       string `json:"sku"`
						Available int64  `json:"available"`
					}
				}
				status, body := tl.do(ctx, hc, http.MethodGet, gw+"/api/inventory/products?limit=20", "", nil, "")
				if status != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list.Items) == 0 {
					continue
				}
				if k%4 == 0 {
					tl.do(ctx, hc, http.MethodPost, gw+"/api/users/login", "", map[string]string{"email": email, "password": "long enough password"}, "")
				}
				key := fmt.Sprintf("s%d-%d", i, k)
				status, body = tl.do(ctx, hc, http.MethodPost, gw+"/api/orders", token, map[string]any{
					"lines":            []map[string]any{{"sku": list.Items[(i+k)%len(list.Items)].SKU, "quantity": 1}},
					"shipping_address": map[string]string{"name": "S", "street": "1 Way", "city": "Rome", "postal_code": "00100", "country": "IT"},
					"card":             map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": time.Now().Year() + 1, "cvc": "123"},
				}, key)
				var o ordersapi.Order
				if (status == http.StatusCreated || status == http.StatusAccepted) && json.Unmarshal(body, &o) == nil {
					tl.mu.Lock()
					tl.accepted = append(tl.accepted, o.ID)
					tl.keys[key] = append(tl.keys[key], o.ID)
					tl.mu.Unlock()
				} else if status != 0 {
					tl.fail("checkout %s: %d %s", key, status, body)
				}
				tl.do(ctx, hc, http.MethodGet, gw+"/api/orders?limit=5", token, nil, "")
			}
		})
	}
	return tl, func() { wg.Wait(); cancel() }
}

func TestRollingRestartOfEveryServiceUnderLoad(t *testing.T) {
	s := systemtest.Start(t, env...)
	admin := login(t, s.Gateway, "admin@example.com", "admin password 123")
	stop := make(chan struct{})
	tl, wait := shoppers(t, s.Gateway, 4, stop)

	time.Sleep(time.Second)
	// Scale one service out, with the others left alone.
	s.Scale(t, "payments", 3)
	if n := runningReplicas(t, s.Data, "payments"); n != 3 {
		t.Fatalf("scale payments 3 left %d running", n)
	}
	for _, svc := range []string{"users", "inventory", "payments", "orders", "gateway"} {
		before := tl.requests.Load()
		s.Restart(t, svc)
		t.Logf("restarted %s during %d requests", svc, tl.requests.Load()-before)
	}
	s.Scale(t, "payments", 1)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wait()

	t.Logf("requests %d, retried %d, failed %d, checkouts accepted %d",
		tl.requests.Load(), tl.retried.Load(), tl.failed.Load(), len(tl.accepted))
	for _, f := range tl.failures {
		t.Errorf("failed: %s", f)
	}
	if tl.failed.Load() != 0 {
		t.Fatalf("%d requests failed during the rolling restarts", tl.failed.Load())
	}
	if len(tl.accepted) == 0 {
		t.Fatal("no checkout was accepted")
	}
	chk := &invariants.Checker{Gateway: s.Gateway, AdminToken: admin}
	rep, err := chk.Settle(context.Background(), 60*time.Second, invariants.Expect{Accepted: tl.accepted, Keys: tl.keys})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Errorf("invariant: %s", v)
	}
}

// runningReplicas counts the running replicas of service in run.json.
func runningReplicas(t *testing.T, data, service string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Services []struct {
			Name    string
			Running bool
		}
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range st.Services {
		if c.Name == service && c.Running {
			n++
		}
	}
	return n
}
