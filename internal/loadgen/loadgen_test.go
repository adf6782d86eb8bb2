package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = 42
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

// samples collects what Observe sees.
type samples struct {
	mu   sync.Mutex
	list []Sample
}

func (s *samples) observe(smp Sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, smp)
}

func (s *samples) all() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.list...)
}

func TestOpenLoopSendsAtTheRate(t *testing.T) {
	srv := newFakeShop().start(t)
	var seen samples
	res := run(t, Config{Target: srv.URL, Scenario: "browse", Rate: 200, Duration: time.Second, Observe: seen.observe})

	if res.Totals.Count != 200 || res.Unsent != 0 {
		t.Errorf("%d operations and %d unsent at 200/s for 1s, want 200 and 0", res.Totals.Count, res.Unsent)
	}
	if res.Totals.Errors != 0 {
		t.Errorf("errors: %v", res.Totals.ErrorsByKind)
	}
	// Due every 5ms, spread over the second rather than sent in a burst.
	s := seen.all()
	due := map[time.Duration]bool{}
	var first, last time.Time
	for _, smp := range s {
		if first.IsZero() || smp.Intended.Before(first) {
			first = smp.Intended
		}
		if smp.Intended.After(last) {
			last = smp.Intended
		}
	}
	var lateness []time.Duration
	var firstSent, lastSent time.Time
	for _, smp := range s {
		off := smp.Intended.Sub(first)
		if off%(5*time.Millisecond) != 0 {
			t.Fatalf("an operation was due %s after the first, not on the 5ms grid", off)
		}
		due[off] = true
		lateness = append(lateness, smp.Sent.Sub(smp.Intended))
		if firstSent.IsZero() || smp.Sent.Before(firstSent) {
			firstSent = smp.Sent
		}
		if smp.Sent.After(lastSent) {
			lastSent = smp.Sent
		}
	}
	if len(due) != 200 || last.Sub(first) != 995*time.Millisecond {
		t.Errorf("%d distinct due times over %s, want 200 over 995ms", len(due), last.Sub(first))
	}
	if spread := lastSent.Sub(firstSent); spread < 900*time.Millisecond {
		t.Errorf("the operations were sent within %s, want them spread over the second", spread)
	}
	slices.Sort(lateness)
	if median := lateness[len(lateness)/2]; median > 50*time.Millisecond {
		t.Errorf("the median operation was sent %s after it was due, with nothing busy", median)
	}
	if res.Parameters.Mode != "open" || res.Parameters.Rate != 200 {
		t.Errorf("parameters = %+v", res.Parameters)
	}
	if r := res.Totals.RatePerSecond; r < 100 || r > 205 {
		t.Errorf("rate = %.1f/s, want about 200", r)
	}
}

// staller makes the server stop for 200ms once, at the tenth request of
// the load, holding up every request that arrives meanwhile too.
type staller struct {
	armed      atomic.Bool
	n          atomic.Int64
	mu         sync.Mutex // held through the stall: requests queue on it
	start, end time.Time
}

func (s *staller) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.armed.Load() && s.n.Add(1) == 10 {
			s.mu.Lock()
			s.start = time.Now()
			time.Sleep(200 * time.Millisecond)
			s.end = time.Now()
			s.mu.Unlock()
		} else {
			s.mu.Lock() // waits out a stall
			s.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// TestOpenLoopLatencyCountsFromTheIntendedTime stalls the server once for
// 200ms. Operations due during the stall wait for it, either in the
// system (the connections are there) or in load itself (one operation in
// flight at most, so they are sent late). Either way their latency must
// count from when they were due: a load generator that measured from the
// send would report the late ones as fast, hiding the stall.
func TestOpenLoopLatencyCountsFromTheIntendedTime(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxInFlight int
	}{
		{"queued in the system", 100},
		{"queued in load", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &staller{}
			srv := wrap(t, st.wrap)
			var seen samples
			res := run(t, Config{Target: srv.URL, Scenario: "browse", Rate: 50, Duration: time.Second,
				MaxInFlight: tc.maxInFlight, Observe: seen.observe,
				Started: func(Setup) { st.armed.Store(true) }})

			st.mu.Lock()
			defer st.mu.Unlock()
			if st.end.IsZero() {
				t.Fatal("the server never stalled")
			}
			during := 0
			for _, smp := range seen.all() {
				if smp.Intended.Before(st.start) || !smp.Intended.Before(st.end.Add(-10*time.Millisecond)) {
					continue
				}
				during++
				queued := st.end.Sub(smp.Intended)
				if smp.Latency() < queued-2*time.Millisecond {
					t.Errorf("due %s into the stall: latency %s, want at least the %s it waited",
						smp.Intended.Sub(st.start), smp.Latency(), queued)
				}
				if tc.maxInFlight == 1 && smp.Sent.Before(st.end) {
					t.Errorf("with one in flight an operation due during the stall was sent during it")
				}
			}
			if during < 8 {
				t.Errorf("%d operations were due during the 200ms stall at 50/s, want about 10", during)
			}
			if res.Totals.Count < 48 {
				t.Errorf("%d operations, want 50 (every one due is sent, however late)", res.Totals.Count)
			}
			if p := res.Totals.LatencyMS; p.Max < 195 || p.P90 < 50 {
				t.Errorf("latency %+v: the stall must show in the tail (max ≥ 195ms, p90 ≥ 50ms)", p)
			}
		})
	}
}

func TestClosedLoopNeverHasMoreThanConcurrencyInFlight(t *testing.T) {
	var inFlight, most atomic.Int64
	var armed atomic.Bool
	srv := wrap(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for armed.Load() {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			next.ServeHTTP(w, r)
		})
	})
	var progress []Progress
	res := run(t, Config{Target: srv.URL, Scenario: "browse", Concurrency: 4, Duration: 1200 * time.Millisecond,
		Started:  func(Setup) { armed.Store(true) },
		Progress: func(p Progress) { progress = append(progress, p) }})

	if m := most.Load(); m > 4 || m < 2 {
		t.Errorf("at most %d requests were in flight at once, want 4 (never more)", m)
	}
	if res.Totals.Count < 100 || res.Totals.Errors != 0 {
		t.Errorf("%d operations, %d errors", res.Totals.Count, res.Totals.Errors)
	}
	if res.Parameters.Mode != "closed" || res.Parameters.Concurrency != 4 {
		t.Errorf("parameters = %+v", res.Parameters)
	}
	if len(progress) == 0 || progress[0].Operations == 0 || progress[0].Rate <= 0 || progress[0].Elapsed < time.Second {
		t.Errorf("progress = %+v, want a report after a second with operations and a rate", progress)
	}
}

func TestErrorsAreClassified(t *testing.T) {
	shop := newFakeShop()
	for _, sku := range []string{"E503", "SLOW", "DROP", "JUNK"} {
		shop.products = append(shop.products, shop.products[0])
		shop.products[len(shop.products)-1].SKU = "Z-" + sku
	}
	mux := shop.routes()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/inventory/products/Z-E503":
			http.Error(w, "down", http.StatusServiceUnavailable)
		case "/api/inventory/products/Z-SLOW":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case "/api/inventory/products/Z-DROP":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		case "/api/inventory/products/Z-JUNK":
			w.Write([]byte("<html>not json"))
		default:
			mux.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	// The timeout leaves a busy machine time to answer everything else.
	res := run(t, Config{Target: srv.URL, Scenario: "browse", Concurrency: 4, Duration: 2 * time.Second,
		Timeout: time.Second})
	var get OpResult
	for _, o := range res.Operations {
		switch o.Name {
		case OpProduct:
			get = o
		default:
			if o.Errors != 0 {
				t.Errorf("%s: errors %v, want none", o.Name, o.ErrorsByKind)
			}
		}
	}
	for _, kind := range []string{"status_503", KindTimeout, KindConnection, KindBadResponse} {
		if get.ErrorsByKind[kind] == 0 {
			t.Errorf("%s: no %q among the errors %v", OpProduct, kind, get.ErrorsByKind)
		}
	}
	if get.Errors == 0 || get.Errors == get.Count {
		t.Errorf("%s: %d errors of %d, want some but not all", OpProduct, get.Errors, get.Count)
	}
	var sum int64
	for _, n := range res.Totals.ErrorsByKind {
		sum += n
	}
	if sum != res.Totals.Errors {
		t.Errorf("errors by kind add up to %d, the total is %d", sum, res.Totals.Errors)
	}
	// A timed-out operation counts its whole wait.
	if res.Totals.LatencyMS.Max < 1000 {
		t.Errorf("max latency %.1fms, want the 1s timeouts to show", res.Totals.LatencyMS.Max)
	}
}

func TestKindOf(t *testing.T) {
	live := context.Background()
	expired, cancel := context.WithDeadline(live, time.Now().Add(-time.Second))
	defer cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want string
	}{
		{live, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, KindConnection},
		{live, errors.New("EOF"), KindConnection},
		{live, &net.DNSError{IsTimeout: true}, KindTimeout},
		{expired, errors.New("whatever the transport says"), KindTimeout},
		{live, context.Canceled, KindCancelled},
		{expired, &shopclient.Error{Status: 503}, "status_503"},
		{expired, fmt.Errorf("GET /: %w", shopclient.ErrBadResponse), KindBadResponse},
	} {
		if got := KindOf(tc.ctx, tc.err); got != tc.want {
			t.Errorf("KindOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestJudgeCheckout(t *testing.T) {
	for _, tc := range []struct {
		declined       bool
		status, reason string
		kind           string
		confirmed      bool
	}{
		{false, ordersapi.StatusConfirmed, "", "", true},
		{true, ordersapi.StatusRejected, ordersapi.ReasonPaymentDeclined, "", false},
		{false, ordersapi.StatusRejected, ordersapi.ReasonPaymentDeclined, "wrong_outcome:REJECTED/payment_declined", false},
		{false, ordersapi.StatusRejected, ordersapi.ReasonOutOfStock, "wrong_outcome:REJECTED/out_of_stock", false},
		{true, ordersapi.StatusConfirmed, "", "wrong_outcome:CONFIRMED", false},
		{true, ordersapi.StatusRejected, ordersapi.ReasonPaymentUnavailable, "wrong_outcome:REJECTED/payment_unavailable", false},
		{false, ordersapi.StatusCancelled, "", "wrong_outcome:CANCELLED", false},
	} {
		kind, confirmed := judgeCheckout(tc.declined, ordersapi.Order{Status: tc.status, Reason: tc.reason})
		if kind != tc.kind || confirmed != tc.confirmed {
			t.Errorf("declined card %v, %s %s: %q, %v; want %q, %v", tc.declined, tc.status, tc.reason, kind, confirmed, tc.kind, tc.confirmed)
		}
	}
}

func TestCheckoutOutcomes(t *testing.T) {
	declinedFor := func(reason string) func(string) (string, string) {
		return func(card string) (string, string) {
			if card == shopclient.CardApproved {
				return ordersapi.StatusConfirmed, ""
			}
			return ordersapi.StatusRejected, reason
		}
	}
	for _, tc := range []struct {
		name    string
		outcome func(card string) (string, string)
		pending int
		timeout time.Duration
		// want: errors by kind of each operation (absent: none).
		want      map[string]string
		confirmed bool
	}{
		{name: "answered at once", confirmed: true},
		{name: "202 then polls until final", pending: 3, confirmed: true},
		{name: "out of stock", outcome: func(card string) (string, string) {
			if card == shopclient.CardApproved {
				return ordersapi.StatusRejected, ordersapi.ReasonOutOfStock
			}
			return ordersapi.StatusRejected, ordersapi.ReasonPaymentDeclined
		}, want: map[string]string{OpCheckout: "wrong_outcome:REJECTED/out_of_stock"}},
		{name: "the declining card confirmed", outcome: func(string) (string, string) { return ordersapi.StatusConfirmed, "" },
			want: map[string]string{OpCheckoutDeclined: "wrong_outcome:CONFIRMED"}, confirmed: true},
		{name: "declined for another reason", outcome: declinedFor(ordersapi.ReasonPaymentUnavailable),
			want: map[string]string{OpCheckoutDeclined: "wrong_outcome:REJECTED/payment_unavailable"}, confirmed: true},
		{name: "pending past the timeout", pending: -1, timeout: 200 * time.Millisecond,
			want: map[string]string{OpCheckout: KindTimeout, OpCheckoutDeclined: KindTimeout}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shop := newFakeShop()
			shop.outcome, shop.pending = tc.outcome, tc.pending
			srv := shop.start(t)
			res := run(t, Config{Target: srv.URL, Scenario: "checkout", Concurrency: 4, Users: 6,
				Duration: 800 * time.Millisecond, Timeout: tc.timeout})

			customers, duplicates, anonymous := shop.counts()
			if res.Setup.Customers != 6 || customers != 6 {
				t.Errorf("setup made %d customers (the shop has %d), want 6", res.Setup.Customers, customers)
			}
			ops := map[string]OpResult{}
			for _, o := range res.Operations {
				ops[o.Name] = o
			}
			if ops[OpCheckout].Count == 0 {
				t.Fatalf("no checkouts: %+v", res.Operations)
			}
			for name, o := range ops {
				want := tc.want[name]
				switch {
				case want == "" && o.Errors != 0:
					t.Errorf("%s: errors %v, want none", name, o.ErrorsByKind)
				case want != "" && (o.Errors != o.Count || o.ErrorsByKind[want] != o.Count):
					t.Errorf("%s: errors %v of %d, want every one %q", name, o.ErrorsByKind, o.Count, want)
				}
			}
			if tc.pending == 0 {
				// One in twenty declined, in its own line.
				d := ops[OpCheckoutDeclined].Count
				if all := d + ops[OpCheckout].Count; d == 0 || d > all/5 {
					t.Errorf("%d of %d checkouts used the declining card, want about 5%%", d, all)
				}
			}
			if got := res.ConfirmedCheckouts > 0; got != tc.confirmed {
				t.Errorf("%d confirmed checkouts, want some: %v", res.ConfirmedCheckouts, tc.confirmed)
			}
			if tc.confirmed && tc.want == nil && res.ConfirmedCheckouts != ops[OpCheckout].Count {
				t.Errorf("%d confirmed of %d checkouts with the approving card", res.ConfirmedCheckouts, ops[OpCheckout].Count)
			}
			if tc.pending > 0 && shop.polls.Load() < 3*shop.posts.Load()-12 {
				t.Errorf("%d polls for %d orders, want 3 per order", shop.polls.Load(), shop.posts.Load())
			}
			if tc.pending == 0 && shop.polls.Load() != 0 {
				t.Errorf("%d polls of orders that were final at once", shop.polls.Load())
			}
			if duplicates != 0 || anonymous != 0 {
				t.Errorf("%d orders reused an Idempotency-Key, %d came without a token", duplicates, anonymous)
			}
		})
	}
}

// TestOnlyTheTarget: load follows no redirect and polls no Location on
// another host.
func TestOnlyTheTarget(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	mux := newFakeShop().routes()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/inventory/products/"):
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
		case r.Method == http.MethodPost && r.URL.Path == "/api/orders":
			w.Header().Set("Location", other.URL+"/api/orders/1")
			writeJSON(w, http.StatusAccepted, ordersapi.Order{ID: "1", Status: ordersapi.StatusPending})
		default:
			mux.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	res := run(t, Config{Target: srv.URL, Scenario: "mixed", Concurrency: 2, Users: 2, Duration: 500 * time.Millisecond})
	for _, o := range res.Operations {
		switch o.Name {
		case OpProduct:
			if o.ErrorsByKind["status_302"] != o.Count {
				t.Errorf("%s: %v, want every redirect taken as a status_302", o.Name, o.ErrorsByKind)
			}
		case OpCheckout, OpCheckoutDeclined:
			if o.ErrorsByKind[KindBadResponse] != o.Count {
				t.Errorf("%s: %v, want a Location elsewhere taken as a bad_response", o.Name, o.ErrorsByKind)
			}
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("%d requests went to another host", n)
	}
}

func TestInterruptedRunReturnsWhatItHas(t *testing.T) {
	srv := wrap(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(20 * time.Millisecond)
			next.ServeHTTP(w, r)
		})
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	began := time.Now()
	res, err := Run(ctx, Config{Target: srv.URL, Scenario: "browse", Rate: 100, Duration: time.Minute, Seed: 1,
		Started: func(Setup) { time.AfterFunc(500*time.Millisecond, cancel) }})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("the interrupted run took %s to return", took)
	}
	if !res.Interrupted || res.Totals.Count < 20 || res.Totals.Errors != 0 {
		t.Errorf("interrupted %v, %d operations, errors %v; want an interrupted run with its operations and no errors",
			res.Interrupted, res.Totals.Count, res.Totals.ErrorsByKind)
	}
	if res.ElapsedSeconds > 2 {
		t.Errorf("elapsed %.1fs, want the time until the interruption", res.ElapsedSeconds)
	}
}

func TestResultJSON(t *testing.T) {
	srv := newFakeShop().start(t)
	res := run(t, Config{Target: srv.URL, Scenario: "checkout", Rate: 100, Duration: 300 * time.Millisecond, Users: 2})
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	for _, k := range []string{"parameters", "start", "end", "elapsed_seconds", "setup", "operations", "totals",
		"confirmed_checkouts", "confirmed_checkouts_per_second", "unsent", "interrupted"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	p := m["parameters"].(map[string]any)
	for k, want := range map[string]any{"target": srv.URL, "scenario": "checkout", "mode": "open", "rate": 100.0,
		"duration": "300ms", "users": 2.0, "seed": 42.0} {
		if p[k] != want {
			t.Errorf("parameters.%s = %v, want %v", k, p[k], want)
		}
	}
	for _, k := range []string{"start", "end"} {
		if _, err := time.Parse(time.RFC3339Nano, m[k].(string)); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	ops := m["operations"].([]any)
	if len(ops) == 0 {
		t.Fatalf("no operations in %s", b)
	}
	op := ops[0].(map[string]any)
	lat := op["latency_ms"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p99", "p99_9", "max", "mean"} {
		if v, ok := lat[k].(float64); !ok || v <= 0 {
			t.Errorf("operations[0].latency_ms.%s = %v", k, lat[k])
		}
	}
	if _, ok := op["errors_by_kind"].(map[string]any); !ok {
		t.Errorf("operations[0].errors_by_kind = %v, want an object even when empty", op["errors_by_kind"])
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || back.Totals.Count != res.Totals.Count || back.ConfirmedCheckouts != res.ConfirmedCheckouts {
		t.Errorf("the JSON does not decode back into the Result: %v", err)
	}
}

func TestConfigRefusals(t *testing.T) {
	ok := Config{Target: "http://127.0.0.1:1", Scenario: "browse", Rate: 1, Duration: time.Second}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"both rate and concurrency", func(c *Config) { c.Concurrency = 2 }, "not both"},
		{"neither", func(c *Config) { c.Rate = 0 }, "give a rate"},
		{"no duration", func(c *Config) { c.Duration = 0 }, "duration"},
		{"unknown scenario", func(c *Config) { c.Scenario = "stampede" }, "stampede"},
		{"a path on the target", func(c *Config) { c.Target = "http://127.0.0.1:8080/api" }, "no path"},
		{"not http", func(c *Config) { c.Target = "ftp://127.0.0.1" }, "base URL"},
		{"half the admin", func(c *Config) { c.AdminEmail = "a@example.com" }, "together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			_, err := Run(context.Background(), c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestNothingListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Run(context.Background(), Config{Target: "http://" + addr, Scenario: "browse", Rate: 1, Duration: time.Second})
	if err == nil || !strings.Contains(err.Error(), "is microshop running there?") {
		t.Errorf("err = %v, want one asking whether microshop runs there", err)
	}
}

func TestSetupRateLimitedSaysWhatToDo(t *testing.T) {
	mux := newFakeShop().routes()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/users/register" {
			w.Header().Set("Retry-After", "60")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	_, err := Run(context.Background(), Config{Target: srv.URL, Scenario: "checkout", Concurrency: 1, Duration: time.Second})
	if err == nil || !strings.Contains(err.Error(), "MICROSHOP_REGISTER_RATE_IP=0") {
		t.Errorf("err = %v, want one naming the rate limit's setting", err)
	}
}

func TestKinds(t *testing.T) {
	if got := Kinds(nil); got != "-" {
		t.Errorf("Kinds(nil) = %q, want -", got)
	}
	got := Kinds(map[string]int64{KindTimeout: 1, "status_503": 4, KindConnection: 1})
	if want := "status_503 4, connection 1, timeout 1"; got != want {
		t.Errorf("Kinds = %q, want %q: the most first, then by name", got, want)
	}
}
