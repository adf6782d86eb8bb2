package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
)

// TestGateway runs the real users service, real stand-ins for the
// services not built yet, payments down, and the gateway in front.
func TestGateway(t *testing.T) {
	shop := startUsers(t)
	inventory := newStandIn(t, "inventory")
	orders := newStandIn(t, "orders")
	notifications := newStandIn(t, "notifications")
	reports := newStandIn(t, "reports")
	gw := startGateway(t, shop.Users.URL, map[string]*standIn{
		"inventory": inventory, "orders": orders, "notifications": notifications, "reports": reports,
	}).URL

	token := account(t, gw, "ada@example.com")

	t.Run("me through the gateway", func(t *testing.T) {
		res := do(t, http.MethodGet, gw+"/api/users/me", token, nil)
		if res.Status != http.StatusOK {
			t.Fatalf("GET /api/users/me = %s, want 200", res)
		}
		var me struct {
			Email string   `json:"email"`
			Roles []string `json:"roles"`
		}
		if err := json.Unmarshal(res.Body, &me); err != nil || me.Email != "ada@example.com" {
			t.Errorf("me = %s (%v), want ada@example.com", res.Body, err)
		}
		// One person's data: kept by no cache, shared or the browser's.
		if cc := res.Header.Values("Cache-Control"); len(cc) != 1 || cc[0] != "private, no-store" {
			t.Errorf("GET /api/users/me: Cache-Control %q, want private, no-store", cc)
		}
	})

	t.Run("public routes need no token", func(t *testing.T) {
		for _, path := range []string{"/api/inventory/products", "/api/inventory/products/SKU-1", "/api/inventory/products?q=mug&limit=5"} {
			res := do(t, http.MethodGet, gw+path, "", nil)
			if res.Status != http.StatusOK {
				t.Errorf("GET %s without a token = %s, want 200", path, res)
			}
		}
		if got := inventory.last(t).Path; got != "/api/inventory/products" {
			t.Errorf("inventory saw %q, want the path unchanged", got)
		}
		res := do(t, http.MethodGet, gw+"/api/users/.well-known/jwks.json", "", nil)
		if res.Status != http.StatusOK || !strings.Contains(string(res.Body), `"keys"`) {
			t.Errorf("the JWKS through the gateway = %s", res)
		}
	})

	t.Run("no token on a protected route is refused at the gateway", func(t *testing.T) {
		cases := []struct{ method, path string }{
			{http.MethodGet, "/api/orders/123"},
			{http.MethodPost, "/api/orders"},
			{http.MethodGet, "/api/orders"},
			{http.MethodPost, "/api/inventory/products"},    // an admin edit, not the public list
			{http.MethodGet, "/api/inventory/products/"},    // not a product
			{http.MethodGet, "/api/inventory/products/a/b"}, // nor this
			{http.MethodGet, "/api/users/%6Ce"},             // an encoded "me" is not a public route either
			{http.MethodPost, "/api/users/log%69n"},         // nor an encoded "login": the service would not match it
			{http.MethodGet, "/api/reports/sales"},
			{http.MethodGet, "/api/notifications/deliveries"},
			{http.MethodGet, "/api/users/me"},
			{http.MethodGet, "/api/users/login"}, // login is public for POST only
		}
		before := map[*standIn]int{inventory: inventory.count(), orders: orders.count(),
			reports: reports.count(), notifications: notifications.count()}
		for _, c := range cases {
			res := do(t, c.method, gw+c.path, "", nil)
			p := wantProblem(t, res, http.StatusUnauthorized)
			if res.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: no WWW-Authenticate", c.method, c.path)
			}
			if p.Instance == "" {
				t.Errorf("%s %s: the problem has no instance", c.method, c.path)
			}
		}
		for s, n := range before {
			if s.count() != n {
				t.Errorf("%s was called %d times; the gateway must refuse without forwarding", s.name, s.count()-n)
			}
		}
	})

	t.Run("bad tokens are refused at the gateway", func(t *testing.T) {
		before := orders.count()
		for name, bad := range map[string]string{
			"forged with users' kid":   forge(t, kidOf(t, token)),
			"forged with an other kid": forge(t, ids.New()),
			"not a JWT":                "abc.def.ghi",
			"tampered":                 token[:len(token)-4] + "AAAA",
		} {
			for _, path := range []string{"/api/orders/1", "/api/inventory/products/x/stock"} {
				p := wantProblem(t, do(t, http.MethodPost, gw+path, bad, nil), http.StatusUnauthorized)
				if strings.Contains(p.Detail, bad) {
					t.Errorf("%s: the problem echoes the token", name)
				}
			}
		}
		res := do(t, http.MethodGet, gw+"/api/orders/1", "", nil, "Authorization", "Basic YWRhOnNlY3JldA==")
		wantProblem(t, res, http.StatusUnauthorized)
		if orders.count() != before {
			t.Error("a request with a bad token reached orders")
		}
	})

	t.Run("a valid token passes; /api/orders itself goes to orders", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{
			{http.MethodPost, "/api/orders"},
			{http.MethodGet, "/api/orders/01abc?x=1"},
			{http.MethodPost, "/api/orders/01abc/cancel"},
		} {
			res := do(t, c.method, gw+c.path, token, map[string]string{})
			if res.Status != http.StatusOK {
				t.Fatalf("%s %s = %s", c.method, c.path, res)
			}
			got := orders.last(t)
			want, _, _ := strings.Cut(c.path, "?")
			if got.Method != c.method || got.Path != want {
				t.Errorf("orders saw %s %s, want %s %s", got.Method, got.Path, c.method, want)
			}
			if got.Header.Get("Authorization") != "Bearer "+token {
				t.Error("the token was not passed on; orders must verify it again")
			}
		}
	})

	t.Run("a service that is down is a 503 naming it", func(t *testing.T) {
		start := time.Now()
		p := wantProblem(t, do(t, http.MethodGet, gw+"/api/payments/abc", token, nil), http.StatusServiceUnavailable)
		if p.Service != "payments" || !strings.Contains(p.Detail, "payments") {
			t.Errorf("problem = %+v, want it to name payments", p)
		}
		if p.RequestID == "" {
			t.Error("the problem has no request_id")
		}
		if time.Since(start) > 3*time.Second {
			t.Errorf("a refused connection took %s to report", time.Since(start))
		}
	})

	t.Run("upstream 5xx bodies pass through", func(t *testing.T) {
		res := do(t, http.MethodGet, gw+"/api/reports/boom", token, nil)
		if res.Status != http.StatusInternalServerError || string(res.Body) != "the reports stand-in exploded" {
			t.Errorf("GET /api/reports/boom = %s, want the stand-in's own 500", res)
		}
	})

	t.Run("a body over the limit is a 413, not a 503", func(t *testing.T) {
		// Chunked, so the limit is met while the body streams to orders.
		req, err := http.NewRequest(http.MethodPost, gw+"/api/orders", io.MultiReader(strings.NewReader(strings.Repeat("x", 300<<10))))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		wantProblem(t, response{Status: res.StatusCode, Header: res.Header, Body: b}, http.StatusRequestEntityTooLarge)
	})

	t.Run("internal routes are never forwarded", func(t *testing.T) {
		paths := []string{
			"/internal/orders/reserve",
			"/api/orders/internal/reserve",
			"/api/orders/internal",
			"/api/inventory/internal/reservations",
			"/api/orders/../orders/internal/x",
			"/api/orders/x/../internal/x",
			"/api/orders/./internal",
			"/api/orders//internal",
			"/api/orders%2Finternal%2Fx",
			"/api/orders%2finternal",
			"/api/orders/%69nternal/x",
			"/api/orders/INTERNAL/x",
			"/api/orders/Internal",
			"/api/orders/internal;jsessionid=1/x",
			"/api/orders/%2e%2e/orders/internal",
			"/api/orders/%2E%2E%2Finternal",
			"/api/orders%252Finternal",
			"/api/orders%25252Finternal%25252Fx",
			"/api/orders\\internal\\x",
			"/api/orders/%5Cinternal",
			"/api/internal/x",
			"/api/../internal/orders",
			"/api/inventory/products/%2e%2e%2f%2e%2e%2finternal",
		}
		before := map[*standIn]int{inventory: inventory.count(), orders: orders.count(),
			reports: reports.count(), notifications: notifications.count()}
		for _, path := range paths {
			for _, tok := range []string{token, ""} {
				res := raw(t, gw, path, tok)
				if res.Status != http.StatusNotFound {
					t.Errorf("GET %s (token %t) = %s, want 404", path, tok != "", res)
					continue
				}
				wantProblem(t, res, http.StatusNotFound)
			}
		}
		// Only requests that look like these paths count: an earlier
		// subtest's request may still be landing at a stand-in.
		for s, n := range before {
			for _, r := range s.requests()[n:] {
				if p := strings.ToLower(r.Path); strings.Contains(p, "internal") || strings.Contains(p, "..") {
					t.Errorf("%s received %s %s", s.name, r.Method, r.Path)
				}
			}
		}
	})

	t.Run("dot segments are refused, not cleaned", func(t *testing.T) {
		// "/api/inventory/products/../../orders/1" must not become a
		// public route nor reach orders by the back door.
		before := orders.count() + inventory.count()
		for _, path := range []string{"/api/inventory/products/../../orders/1", "/api/orders/./1", "/api/orders/1/.."} {
			wantProblem(t, raw(t, gw, path, token), http.StatusNotFound)
		}
		if orders.count()+inventory.count() != before {
			t.Error("a path with dot segments was forwarded")
		}
	})

	t.Run("an unknown service is a 404", func(t *testing.T) {
		for _, path := range []string{"/api/nope/x", "/api/nope", "/api", "/api/", "/api//orders", "/elsewhere"} {
			wantProblem(t, do(t, http.MethodGet, gw+path, token, nil), http.StatusNotFound)
		}
		p := wantProblem(t, do(t, http.MethodGet, gw+"/api/gateway/x", token, nil), http.StatusNotFound)
		if !strings.Contains(p.Detail, "gateway") {
			t.Errorf("detail = %q, want it to name the unknown service", p.Detail)
		}
	})

	t.Run("request id and forwarding headers reach the service", func(t *testing.T) {
		res := do(t, http.MethodGet, gw+"/api/notifications/deliveries", token, nil,
			"X-Request-Id", "test-request-42", "X-Forwarded-For", "6.6.6.6", "Forwarded", "for=6.6.6.6",
			"X-Forwarded-Host", "evil.example")
		if res.Status != http.StatusOK {
			t.Fatalf("= %s", res)
		}
		if got := res.Header.Get("X-Request-Id"); got != "test-request-42" {
			t.Errorf("answer's X-Request-Id = %q", got)
		}
		h := notifications.last(t).Header
		if got := h.Get("X-Request-Id"); got != "test-request-42" {
			t.Errorf("the service saw X-Request-Id %q, want the client's", got)
		}
		if got := h.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
			t.Errorf("the service saw X-Forwarded-For %q, want only the true client address", got)
		}
		if h.Get("Forwarded") != "" {
			t.Errorf("the client's Forwarded header was passed on: %q", h.Get("Forwarded"))
		}
		if got := h.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("X-Forwarded-Proto = %q, want http", got)
		}
		if got := h.Get("X-Forwarded-Host"); got == "evil.example" || got == "" {
			t.Errorf("X-Forwarded-Host = %q, want the host the client asked", got)
		}

		// Without an id from the client, the gateway makes one and the
		// service sees the same.
		res = do(t, http.MethodGet, gw+"/api/notifications/deliveries", token, nil)
		made := res.Header.Get("X-Request-Id")
		if made == "" || notifications.last(t).Header.Get("X-Request-Id") != made {
			t.Errorf("the gateway's request id %q did not reach the service (%q)", made,
				notifications.last(t).Header.Get("X-Request-Id"))
		}
	})

	t.Run("home page, favicon and status", func(t *testing.T) {
		res := do(t, http.MethodGet, gw+"/", "", nil)
		if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(res.Body), `href="/api/inventory/products"`) || !strings.Contains(string(res.Body), `href="/status"`) {
			t.Errorf("GET / = %d %s", res.Status, res.Header.Get("Content-Type"))
		}
		if res := do(t, http.MethodGet, gw+"/favicon.ico", "", nil); res.Status != http.StatusNoContent {
			t.Errorf("GET /favicon.ico = %s, want 204", res)
		}
		res = do(t, http.MethodGet, gw+"/status", "", nil)
		var st struct {
			Services []struct{ Service, Status string }
		}
		if err := json.Unmarshal(res.Body, &st); err != nil || res.Status != http.StatusOK {
			t.Fatalf("GET /status = %s (%v)", res, err)
		}
		got := map[string]string{}
		for _, s := range st.Services {
			got[s.Service] = s.Status
		}
		if got["users"] != "ready" || got["payments"] != "unreachable" || got["orders"] != "ready" || len(got) != 6 {
			t.Errorf("status = %v, want users and orders ready, payments unreachable, six services", got)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		res := do(t, http.MethodGet, gw+"/metrics", "", nil)
		text := string(res.Body)
		for _, want := range []string{
			`gateway_upstream_requests_total{code="200",service="users"}`,
			`gateway_upstream_requests_total{code="201",service="users"}`,
			`gateway_upstream_requests_total{code="200",service="inventory"}`,
			`gateway_upstream_requests_total{code="500",service="reports"}`,
			`gateway_upstream_requests_total{code="error",service="payments"}`,
			`gateway_upstream_duration_seconds_count{service="orders"}`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

// A service that takes longer than --upstream-timeout is a 503 naming it,
// on time.
// The deadline is long enough for a login (argon2) under -race on a busy
// machine, and short of the stand-in's five-second stall.
func TestUpstreamTimeout(t *testing.T) {
	shop := startUsers(t)
	reports := newStandIn(t, "reports")
	gw := startGateway(t, shop.Users.URL, map[string]*standIn{"reports": reports}, "--upstream-timeout", "2s").URL
	token := account(t, gw, "slow@example.com")

	start := time.Now()
	p := wantProblem(t, do(t, http.MethodGet, gw+"/api/reports/slow", token, nil), http.StatusServiceUnavailable)
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("the answer took %s with a 2s deadline", took)
	}
	if p.Service != "reports" || !strings.Contains(p.Detail, "reports") || !strings.Contains(p.Detail, "2s") {
		t.Errorf("problem = %+v, want it to name reports and the deadline", p)
	}

	// The service learns the time left (Request-Timeout-Ms), so it stops
	// on its own even when it never sees the connection close; a
	// client's own, longer value does not reach it.
	do(t, http.MethodGet, gw+"/api/reports/fast", token, nil, "Request-Timeout-Ms", "600000")
	got := reports.last(t).Header.Get("Request-Timeout-Ms")
	if ms, err := strconv.Atoi(got); err != nil || ms <= 0 || ms > 2000 {
		t.Errorf("Request-Timeout-Ms at the service = %q, want the time left of the gateway's 2s", got)
	}
}

func TestRateLimit(t *testing.T) {
	inventory := newStandIn(t, "inventory")
	gw := startGateway(t, closedURL(t), map[string]*standIn{"inventory": inventory}, "--rate-limit", "1").URL

	// One a second, in bursts of two.
	for i := range 2 {
		if res := do(t, http.MethodGet, gw+"/api/inventory/products", "", nil); res.Status != http.StatusOK {
			t.Fatalf("request %d = %s, want 200 within the burst", i+1, res)
		}
	}
	res := do(t, http.MethodGet, gw+"/api/inventory/products", "", nil)
	p := wantProblem(t, res, http.StatusTooManyRequests)
	secs, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > 2 {
		t.Errorf("Retry-After = %q, want 1 or 2 seconds", res.Header.Get("Retry-After"))
	}
	if !strings.Contains(p.Detail, "try again") {
		t.Errorf("detail = %q", p.Detail)
	}
	if n := inventory.count(); n != 2 {
		t.Errorf("inventory saw %d requests, want only the 2 allowed", n)
	}
	// Probes and scrapes are never limited.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if res := do(t, http.MethodGet, gw+path, "", nil); res.Status != http.StatusOK {
			t.Errorf("GET %s while limited = %s", path, res)
		}
	}
}

// The gateway keeps checking tokens while users is down: with the keys it
// fetched in memory, and after a restart with the keys in its cache file.
func TestTokensStillCheckedWhileUsersIsDown(t *testing.T) {
	shop := startUsers(t)
	orders := newStandIn(t, "orders")
	data := t.TempDir()
	gw := startGateway(t, shop.Users.URL, map[string]*standIn{"orders": orders}, "--data", data)

	first := account(t, gw.URL, "grace@example.com")
	// A second token the gateway has never seen, so it cannot come from
	// the gateway's cache of verified tokens: only the keys can pass it.
	unseen := servicetest.Login(t, gw.URL, "grace@example.com", servicetest.Password).AccessToken
	if res := do(t, http.MethodGet, gw.URL+"/api/orders/1", first, nil); res.Status != http.StatusOK {
		t.Fatalf("with users up = %s", res)
	}
	shop.Users.Stop()

	if res := do(t, http.MethodGet, gw.URL+"/api/orders/2", unseen, nil); res.Status != http.StatusOK {
		t.Fatalf("a valid token with users down = %s, want 200", res)
	}
	p := wantProblem(t, do(t, http.MethodGet, gw.URL+"/api/users/me", unseen, nil), http.StatusServiceUnavailable)
	if p.Service != "users" {
		t.Errorf("problem = %+v, want it to name users", p)
	}
	start := time.Now()
	wantProblem(t, do(t, http.MethodGet, gw.URL+"/api/orders/3", forge(t, ids.New()), nil), http.StatusUnauthorized)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("refusing an unknown key with users down took %s", took)
	}

	// A new gateway on the same data, started while users is down, is
	// ready and checks tokens with the cached keys.
	gw.Stop()
	again := startGateway(t, shop.Users.URL, map[string]*standIn{"orders": orders}, "--data", data)
	if res := do(t, http.MethodGet, again.URL+"/api/orders/4", unseen, nil); res.Status != http.StatusOK {
		t.Fatalf("after a restart with users down = %s, want 200", res)
	}
	wantProblem(t, do(t, http.MethodGet, again.URL+"/api/orders/5", forge(t, kidOf(t, unseen)), nil), http.StatusUnauthorized)
	if got := orders.last(t).Path; got != "/api/orders/4" {
		t.Errorf("orders last saw %s", got)
	}
}
