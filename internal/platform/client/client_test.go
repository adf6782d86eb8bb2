package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/problem"
)

// target is a real HTTP server on loopback that counts the requests that
// reach it and answers each with handle.
type target struct {
	*httptest.Server
	hits atomic.Int64
}

func newTarget(t *testing.T, handle http.HandlerFunc) *target {
	t.Helper()
	tg := &target{}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.hits.Add(1)
		handle(w, r)
	}))
	t.Cleanup(tg.Close)
	return tg
}

// status answers every request with a problem of the given status.
func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(code, "test", http.StatusText(code), "answered "+strconv.Itoa(code)))
	}
}

// fast are options that keep retries quick and the breaker out of the way
// unless a test is about it.
func fast(o client.Options) client.Options {
	if o.BaseBackoff == 0 {
		o.BaseBackoff = time.Millisecond
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = 1000
	}
	return o
}

func TestRetriesOnlySafeCalls(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		key      string
		wantHits int64
	}{
		{"POST without a key is tried once", http.MethodPost, "", 1},
		{"PATCH without a key is tried once", http.MethodPatch, "", 1},
		{"POST with a key is retried", http.MethodPost, "order-1", 4},
		{"GET is retried", http.MethodGet, "", 4},
		{"PUT is retried", http.MethodPut, "", 4},
		{"DELETE is retried", http.MethodDelete, "", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keys atomic.Value
			keys.Store("")
			tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
				keys.Store(r.Header.Get("Idempotency-Key"))
				status(http.StatusServiceUnavailable)(w, r)
			})
			c := client.New("orders", tg.URL, nil, fast(client.Options{Attempts: 4}), nil)
			err := c.Do(context.Background(), client.Call{Method: tt.method, Path: "/x", In: map[string]int{"n": 1}, IdempotencyKey: tt.key})
			if !errors.Is(err, client.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			if got := tg.hits.Load(); got != tt.wantHits {
				t.Errorf("the server was hit %d times, want %d", got, tt.wantHits)
			}
			if got := keys.Load().(string); got != tt.key {
				t.Errorf("Idempotency-Key = %q, want %q", got, tt.key)
			}
			// The target's own 503 problem is kept inside the error.
			if p := problem.From(err); p == nil || p.Status != http.StatusServiceUnavailable || p.Detail != "answered 503" {
				t.Errorf("problem in the error = %+v, want the target's 503", p)
			}
		})
	}
}

func TestRetriesOnlyTransientStatuses(t *testing.T) {
	tests := []struct {
		code            int
		wantHits        int64
		wantUnavailable bool
	}{
		{http.StatusBadGateway, 3, true},
		{http.StatusServiceUnavailable, 3, true},
		{http.StatusGatewayTimeout, 3, true},
		{http.StatusTooManyRequests, 3, true},
		{http.StatusInternalServerError, 1, false},
		{http.StatusNotImplemented, 1, false},
		{http.StatusBadRequest, 1, false},
		{http.StatusNotFound, 1, false},
		{http.StatusConflict, 1, false},
		{http.StatusUnprocessableEntity, 1, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			tg := newTarget(t, status(tt.code))
			c := client.New("inventory", tg.URL, nil, fast(client.Options{Attempts: 3}), nil)
			err := c.Do(context.Background(), client.Call{Method: http.MethodGet, Path: "/x"})
			if err == nil {
				t.Fatal("no error for a failed call")
			}
			if got := tg.hits.Load(); got != tt.wantHits {
				t.Errorf("the server was hit %d times, want %d", got, tt.wantHits)
			}
			if got := errors.Is(err, client.ErrUnavailable); got != tt.wantUnavailable {
				t.Errorf("errors.Is(err, ErrUnavailable) = %v, want %v (err: %v)", got, tt.wantUnavailable, err)
			}
			if p := problem.From(err); p == nil || p.Status != tt.code {
				t.Errorf("problem in the error = %+v, want status %d", p, tt.code)
			}
		})
	}
}

func TestRetrySucceedsAfterTransientFailures(t *testing.T) {
	var n atomic.Int64
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			status(http.StatusServiceUnavailable)(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"sku":"mug","stock":7}`)
	})
	reg := prometheus.NewRegistry()
	c := client.New("inventory", tg.URL, nil, fast(client.Options{Attempts: 3}), client.NewMetrics(reg))
	var out struct {
		SKU   string `json:"sku"`
		Stock int    `json:"stock"`
	}
	if err := c.Do(context.Background(), client.Call{Method: http.MethodGet, Path: "/stock/mug", Out: &out}); err != nil {
		t.Fatalf("Do: %v", err)
	}
	if out.SKU != "mug" || out.Stock != 7 {
		t.Errorf("decoded %+v, want mug with 7", out)
	}
	if got := tg.hits.Load(); got != 3 {
		t.Errorf("the server was hit %d times, want 3", got)
	}
	if got := metric(t, reg, "http_client_retries_total", map[string]string{"target": "inventory"}); got != 2 {
		t.Errorf("retries counted = %v, want 2", got)
	}
}

func TestRetryStopsAtTheDeadline(t *testing.T) {
	tg := newTarget(t, status(http.StatusServiceUnavailable))
	// Backoffs far longer than the deadline: the call gives up while waiting.
	c := client.New("inventory", tg.URL, nil, fast(client.Options{Attempts: 10, BaseBackoff: time.Hour}), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Do(ctx, client.Call{Method: http.MethodGet, Path: "/x"})
	if !errors.Is(err, client.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Do took %s after a 100ms deadline", d)
	}
}

func TestClientErrorIsTheTargetsProblem(t *testing.T) {
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		p := problem.New(http.StatusPaymentRequired, "card-declined", "Card declined", "the issuer declined the card")
		p.Extensions = map[string]any{"decline_reason": "insufficient_funds", "retryable": false}
		p.Errors = []problem.FieldError{{Field: "card", Reason: "declined"}}
		problem.Write(w, r, p)
	})
	c := client.New("payments", tg.URL, nil, fast(client.Options{}), nil)
	err := c.Do(context.Background(), client.Call{Method: http.MethodPost, Path: "/payments", In: map[string]string{"card": "x"}})
	var p *problem.Problem
	if !errors.As(err, &p) {
		t.Fatalf("err = %T %v, want a *problem.Problem", err, err)
	}
	if errors.Is(err, client.ErrUnavailable) {
		t.Errorf("a 4xx is not unavailability: %v", err)
	}
	if p.Type != "https://microshop.dev/problems/card-declined" || p.Status != 402 ||
		p.Title != "Card declined" || p.Detail != "the issuer declined the card" || p.Instance != "/payments" {
		t.Errorf("problem = %+v, want the target's own", p)
	}
	if len(p.Errors) != 1 || p.Errors[0] != (problem.FieldError{Field: "card", Reason: "declined"}) {
		t.Errorf("field errors = %+v", p.Errors)
	}
	if p.Extensions["decline_reason"] != "insufficient_funds" || p.Extensions["retryable"] != false || len(p.Extensions) != 2 {
		t.Errorf("extensions = %v, want decline_reason and retryable", p.Extensions)
	}
	if got := tg.hits.Load(); got != 1 {
		t.Errorf("a 4xx was tried %d times", got)
	}
}

func TestClientErrorWithoutAProblemBody(t *testing.T) {
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such thing", http.StatusNotFound)
	})
	c := client.New("inventory", tg.URL, nil, fast(client.Options{}), nil)
	err := c.Do(context.Background(), client.Call{Method: http.MethodGet, Path: "/x"})
	p := problem.From(err)
	if p == nil {
		t.Fatalf("err = %v, want a problem", err)
	}
	if p.Status != http.StatusNotFound || p.Title != "Not Found" || p.Detail != "no such thing\n" {
		t.Errorf("problem = %+v, want a 404 carrying the body", p)
	}
}

func TestUnreachableTarget(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens on the port now: connection refused

	reg := prometheus.NewRegistry()
	c := client.New("reports", url, nil, fast(client.Options{Attempts: 3}), client.NewMetrics(reg))
	err := c.Do(context.Background(), client.Call{Method: http.MethodGet, Path: "/x"})
	if !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if problem.From(err) != nil {
		t.Errorf("an unreachable target sent no problem, yet the error holds one: %v", err)
	}
	// Every attempt found the port closed, and the safe call was retried.
	if got := metric(t, reg, "http_client_requests_total", map[string]string{"target": "reports", "method": "GET", "outcome": "unreachable"}); got != 3 {
		t.Errorf("unreachable attempts = %v, want 3", got)
	}
	if got := metric(t, reg, "http_client_retries_total", map[string]string{"target": "reports"}); got != 2 {
		t.Errorf("retries = %v, want 2", got)
	}
}

func TestBreakerOpensFailsFastAndHalfOpens(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			status(http.StatusInternalServerError)(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	reg := prometheus.NewRegistry()
	const open = 150 * time.Millisecond
	c := client.New("payments", tg.URL, nil,
		fast(client.Options{Attempts: 1, BreakerFailures: 3, BreakerOpen: open}), client.NewMetrics(reg))
	call := func() error {
		return c.Do(context.Background(), client.Call{Method: http.MethodGet, Path: "/x"})
	}
	state := func() float64 {
		return metric(t, reg, "circuit_breaker_state", map[string]string{"target": "payments"})
	}

	for i := range 3 {
		if err := call(); problem.From(err) == nil || errors.Is(err, client.ErrUnavailable) {
			t.Fatalf("call %d: err = %v, want the target's 500", i+1, err)
		}
	}
	if got := tg.hits.Load(); got != 3 {
		t.Fatalf("hits before the breaker opens = %d, want 3", got)
	}
	if got := state(); got != 2 {
		t.Errorf("breaker state = %v, want 2 (open)", got)
	}

	// Open: calls fail at once and never reach the target.
	for range 5 {
		if err := call(); !errors.Is(err, client.ErrUnavailable) {
			t.Fatalf("with the breaker open, err = %v, want ErrUnavailable", err)
		}
	}
	if got := tg.hits.Load(); got != 3 {
		t.Errorf("an open breaker let calls through: %d hits, want 3", got)
	}
	if got := metric(t, reg, "http_client_requests_total", map[string]string{"target": "payments", "method": "GET", "outcome": "breaker_open"}); got != 5 {
		t.Errorf("breaker_open outcomes = %v, want 5", got)
	}

	// Half-open: one trial call goes through; it fails, so the breaker
	// opens again.
	time.Sleep(open + 50*time.Millisecond)
	if err := call(); problem.From(err) == nil {
		t.Fatalf("half-open trial: err = %v, want the target's 500", err)
	}
	if got := tg.hits.Load(); got != 4 {
		t.Errorf("hits after the half-open trial = %d, want 4", got)
	}
	if err := call(); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("after a failed trial, err = %v, want the breaker open again", err)
	}
	if got := tg.hits.Load(); got != 4 {
		t.Errorf("a breaker reopened by a failed trial let a call through: %d hits", got)
	}

	// Half-open again with the target healthy: the trial closes it.
	failing.Store(false)
	time.Sleep(open + 50*time.Millisecond)
	for i := range 3 {
		if err := call(); err != nil {
			t.Fatalf("call %d after the target recovered: %v", i+1, err)
		}
	}
	if got := tg.hits.Load(); got != 7 {
		t.Errorf("hits after recovery = %d, want 7", got)
	}
	if got := state(); got != 0 {
		t.Errorf("breaker state = %v, want 0 (closed)", got)
	}
}

func TestBreakerIgnoresClientErrors(t *testing.T) {
	tg := newTarget(t, status(http.StatusNotFound))
	c := client.New("inventory", tg.URL, nil, client.Options{Attempts: 1, BreakerFailures: 2}, nil)
	for range 6 {
		err := c.Do(context.Background(), client.Call{Method: http.MethodGet, Path: "/x"})
		if p := problem.From(err); p == nil || p.Status != http.StatusNotFound {
			t.Fatalf("err = %v, want the target's 404", err)
		}
	}
	if got := tg.hits.Load(); got != 6 {
		t.Errorf("hits = %d, want 6: a 4xx is the target working and must not open the breaker", got)
	}
}

func TestBulkheadLimitsCallsInFlight(t *testing.T) {
	arrived := make(chan struct{}, 10)
	release := make(chan struct{})
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	})
	reg := prometheus.NewRegistry()
	c := client.New("inventory", tg.URL, nil, fast(client.Options{MaxConcurrent: 2}), client.NewMetrics(reg))

	done := make(chan error, 3)
	for range 2 {
		go func() { done <- c.Do(context.Background(), client.Call{Method: http.MethodGet, Path: "/slow"}) }()
	}
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("the first two calls never reached the target")
		}
	}

	// Both slots are held: the third call waits for one until its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Do(ctx, client.Call{Method: http.MethodGet, Path: "/slow"})
	if !errors.Is(err, client.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("third call: err = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("third call failed after %s; it should wait for a slot until its deadline", d)
	}
	if got := tg.hits.Load(); got != 2 {
		t.Errorf("hits = %d, want 2: the third call must not reach the target", got)
	}
	if got := metric(t, reg, "http_client_requests_total", map[string]string{"target": "inventory", "method": "GET", "outcome": "bulkhead_full"}); got != 1 {
		t.Errorf("bulkhead_full outcomes = %v, want 1", got)
	}

	// A call that waits long enough gets the slot a finished call frees.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- c.Do(ctx, client.Call{Method: http.MethodGet, Path: "/slow"})
	}()
	select {
	case <-arrived:
		t.Fatal("a third call reached the target while two were in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	for range 3 {
		if err := <-done; err != nil {
			t.Errorf("a call that got a slot failed: %v", err)
		}
	}
	if got := tg.hits.Load(); got != 3 {
		t.Errorf("hits = %d, want 3", got)
	}
}

func TestRequestTimeoutHeader(t *testing.T) {
	tests := []struct {
		name     string
		timeout  time.Duration // Options.Timeout
		deadline time.Duration // the caller's, 0 for none
		max      int64
	}{
		{"the caller's deadline is shorter", 5 * time.Second, 700 * time.Millisecond, 700},
		{"the attempt timeout is shorter", 400 * time.Millisecond, time.Minute, 400},
		{"no caller deadline", 300 * time.Millisecond, 0, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var header atomic.Value
			tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
				header.Store(r.Header.Get("Request-Timeout-Ms"))
			})
			c := client.New("inventory", tg.URL, nil, fast(client.Options{Timeout: tt.timeout}), nil)
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			if err := c.Do(ctx, client.Call{Method: http.MethodGet, Path: "/x"}); err != nil {
				t.Fatal(err)
			}
			ms, err := strconv.ParseInt(header.Load().(string), 10, 64)
			if err != nil {
				t.Fatalf("Request-Timeout-Ms = %q: %v", header.Load(), err)
			}
			// A little time passes between setting the deadline and sending.
			if ms <= 0 || ms > tt.max || ms < tt.max-200 {
				t.Errorf("Request-Timeout-Ms = %d, want close to and at most %d", ms, tt.max)
			}
		})
	}
}

func TestRequestCarriesIDHeadersAndBody(t *testing.T) {
	type seen struct {
		method, path, requestID, custom, contentType, accept string
		body                                                 map[string]any
	}
	got := make(chan seen, 1)
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		s := seen{method: r.Method, path: r.URL.Path, requestID: r.Header.Get("X-Request-Id"),
			custom: r.Header.Get("X-Custom"), contentType: r.Header.Get("Content-Type"), accept: r.Header.Get("Accept")}
		_ = json.NewDecoder(r.Body).Decode(&s.body)
		got <- s
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"o-1"}`)
	})
	c := client.New("orders", tg.URL, nil, fast(client.Options{}), nil)
	ctx := client.WithRequestID(context.Background(), "req-42")
	if id := client.RequestID(ctx); id != "req-42" {
		t.Errorf("RequestID = %q", id)
	}
	var out struct {
		ID string `json:"id"`
	}
	err := c.Do(ctx, client.Call{Method: http.MethodPost, Path: "/orders", In: map[string]any{"sku": "mug", "qty": 2},
		Out: &out, Header: http.Header{"X-Custom": {"yes"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := <-got
	if s.method != http.MethodPost || s.path != "/orders" {
		t.Errorf("request = %s %s", s.method, s.path)
	}
	if s.requestID != "req-42" {
		t.Errorf("X-Request-Id = %q, want req-42", s.requestID)
	}
	if s.custom != "yes" {
		t.Errorf("X-Custom = %q, want yes", s.custom)
	}
	if s.contentType != "application/json" || s.accept != "application/json" {
		t.Errorf("Content-Type = %q, Accept = %q", s.contentType, s.accept)
	}
	if s.body["sku"] != "mug" || s.body["qty"] != float64(2) {
		t.Errorf("body = %v", s.body)
	}
	if out.ID != "o-1" {
		t.Errorf("decoded id = %q", out.ID)
	}
}

func TestRequestWithoutIDSendsNone(t *testing.T) {
	var present atomic.Bool
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		_, ok := r.Header["X-Request-Id"]
		present.Store(ok)
	})
	c := client.New("orders", tg.URL, nil, fast(client.Options{}), nil)
	if err := c.Do(context.Background(), client.Call{Method: http.MethodGet, Path: "/x"}); err != nil {
		t.Fatal(err)
	}
	if present.Load() {
		t.Error("an X-Request-Id was sent without WithRequestID")
	}
}

func TestCredentialsAuthorizeCalls(t *testing.T) {
	seeds, publics, err := auth.GenerateServiceKeys([]string{"orders", "payments", "inventory"})
	if err != nil {
		t.Fatal(err)
	}
	keysOf := func(name string) *auth.ServiceKeys {
		k, err := auth.ParseServiceKeys(name, seeds[name], publics)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	// Inventory's internal route admits orders only, checking the
	// credential with the callers' public keys.
	guard := auth.RequireService(keysOf("inventory"), "orders")
	srv := httptest.NewServer(guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"caller": auth.CallerFromContext(r.Context())})
	})))
	t.Cleanup(srv.Close)

	call := func(creds *auth.Credentials) (string, error) {
		var out struct{ Caller string }
		c := client.New("inventory", srv.URL, creds, fast(client.Options{}), nil)
		err := c.Do(context.Background(), client.Call{Method: http.MethodGet, Path: "/internal/x", Out: &out})
		return out.Caller, err
	}

	caller, err := call(auth.NewCredentials(keysOf("orders")))
	if err != nil || caller != "orders" {
		t.Errorf("orders' credential: caller %q, err %v; want accepted as orders", caller, err)
	}
	if _, err := call(auth.NewCredentials(keysOf("payments"))); problem.From(err) == nil || problem.From(err).Status != http.StatusForbidden {
		t.Errorf("payments' credential: err = %v, want 403", err)
	}
	if _, err := call(nil); problem.From(err) == nil || problem.From(err).Status != http.StatusUnauthorized {
		t.Errorf("no credential: err = %v, want 401", err)
	}
	noKey, err := auth.ParseServiceKeys("orders", "", publics)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call(auth.NewCredentials(noKey)); err == nil || problem.From(err) != nil {
		t.Errorf("a service without a key: err = %v, want a local error before any request", err)
	}
}

func TestMetricsCountOutcomesByTarget(t *testing.T) {
	ok := newTarget(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	missing := newTarget(t, status(http.StatusNotFound))
	busy := newTarget(t, status(http.StatusServiceUnavailable))

	reg := prometheus.NewRegistry()
	m := client.NewMetrics(reg)
	inventory := client.New("inventory", ok.URL, nil, fast(client.Options{}), m)
	users := client.New("users", missing.URL, nil, fast(client.Options{}), m)
	payments := client.New("payments", busy.URL, nil, fast(client.Options{Attempts: 2}), m)

	ctx := context.Background()
	for range 3 {
		_ = inventory.Do(ctx, client.Call{Method: http.MethodGet, Path: "/x"})
	}
	_ = inventory.Do(ctx, client.Call{Method: http.MethodPost, Path: "/x"})
	_ = users.Do(ctx, client.Call{Method: http.MethodGet, Path: "/x"})
	_ = payments.Do(ctx, client.Call{Method: http.MethodPut, Path: "/x"})

	want := []struct {
		labels map[string]string
		value  float64
	}{
		{map[string]string{"target": "inventory", "method": "GET", "outcome": "204"}, 3},
		{map[string]string{"target": "inventory", "method": "POST", "outcome": "204"}, 1},
		{map[string]string{"target": "users", "method": "GET", "outcome": "404"}, 1},
		{map[string]string{"target": "payments", "method": "PUT", "outcome": "503"}, 2},
	}
	for _, w := range want {
		if got := metric(t, reg, "http_client_requests_total", w.labels); got != w.value {
			t.Errorf("http_client_requests_total%v = %v, want %v", w.labels, got, w.value)
		}
	}
	if got := metric(t, reg, "http_client_retries_total", map[string]string{"target": "payments"}); got != 1 {
		t.Errorf("payments retries = %v, want 1", got)
	}
	if got := metric(t, reg, "http_client_retries_total", map[string]string{"target": "inventory"}); got != 0 {
		t.Errorf("inventory retries = %v, want 0", got)
	}
	if got := metric(t, reg, "http_client_request_duration_seconds", map[string]string{"target": "inventory"}); got != 4 {
		t.Errorf("inventory duration observations = %v, want 4", got)
	}
	for _, target := range []string{"inventory", "users", "payments"} {
		if got := metric(t, reg, "circuit_breaker_state", map[string]string{"target": target}); got != 0 {
			t.Errorf("breaker state of %s = %v, want 0 (closed)", target, got)
		}
	}
}

func TestNilMetricsAreAllowed(t *testing.T) {
	tg := newTarget(t, status(http.StatusServiceUnavailable))
	c := client.New("inventory", tg.URL, nil, fast(client.Options{Attempts: 2, BreakerFailures: 1}), nil)
	for range 2 {
		if err := c.Do(context.Background(), client.Call{Method: http.MethodGet, Path: "/x"}); !errors.Is(err, client.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
	}
}

// metric returns the value of the series of name with exactly labels in
// reg: a counter's or gauge's value, a histogram's count; 0 when absent.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// A replica that refuses connections costs nothing: even a POST without
// an Idempotency-Key (never sent, so safe) goes to another replica.
func TestRefusedReplicaFailsOver(t *testing.T) {
	var hits atomic.Int64
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer live.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	c := client.New("payments", deadURL+","+live.URL, nil, fast(client.Options{Attempts: 1}), nil)
	for i := range 6 {
		var out struct{ OK bool }
		if err := c.Do(context.Background(), client.Call{Method: http.MethodPost, Path: "/charge", In: map[string]int{"n": i}, Out: &out}); err != nil || !out.OK {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if hits.Load() != 6 {
		t.Fatalf("the live replica got %d of 6 calls", hits.Load())
	}
	if err := client.Validate("payments", "not a url"); err == nil {
		t.Fatal("a bad URL list was accepted")
	}
	bad := client.New("payments", "", nil, client.Options{}, nil)
	if err := bad.Do(context.Background(), client.Call{Method: http.MethodGet, Path: "/"}); err == nil || !strings.Contains(err.Error(), "payments") {
		t.Fatalf("a client with no URL: %v", err)
	}
}

// A client of several replicas probes their readiness for as long as its
// owner runs it, and not a moment longer: once Run's context ends, no
// replica hears from it again.
func TestRunProbesUntilItsContextEnds(t *testing.T) {
	var probes atomic.Int64
	replica := func() string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/readyz" {
				probes.Add(1)
			}
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	c := client.New("inventory", replica()+","+replica(), nil, client.Options{}, nil)
	if n := probes.Load(); n != 2 {
		t.Fatalf("New probed %d times, want once per replica", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	for deadline := time.Now().Add(5 * time.Second); probes.Load() < 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Run probed %d times in 5s", probes.Load()-2)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	stopped := probes.Load()
	time.Sleep(1500 * time.Millisecond) // longer than the probe interval
	if n := probes.Load(); n != stopped {
		t.Fatalf("%d probes after Run stopped", n-stopped)
	}
}
