package auth_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/platform/auth"
)

// A verified service credential is cached until it expires, but the
// cache never widens what a route allows: every call still names its
// caller and meets the route's list of allowed callers, and a tampered
// credential (another string) is checked afresh.
func TestServiceCredentialCacheKeepsTheRules(t *testing.T) {
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
	inventory := keysOf("inventory") // one key set, shared by both routes as in a service
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(auth.CallerFromContext(r.Context())))
	})
	ordersOnly := auth.RequireService(inventory, "orders")(ok)
	anyone := auth.RequireService(inventory, "orders", "payments")(ok)

	call := func(h http.Handler, token string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/internal/x", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	orders, err := auth.NewCredentials(keysOf("orders")).Token("inventory")
	if err != nil {
		t.Fatal(err)
	}
	payments, err := auth.NewCredentials(keysOf("payments")).Token("inventory")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // the first call verifies, the others hit the cache
		if code, caller := call(ordersOnly, orders); code != http.StatusOK || caller != "orders" {
			t.Errorf("call %d of orders: %d %q, want 200 from orders", i, code, caller)
		}
		if code, caller := call(anyone, payments); code != http.StatusOK || caller != "payments" {
			t.Errorf("call %d of payments where allowed: %d %q, want 200 from payments", i, code, caller)
		}
		if code, _ := call(ordersOnly, payments); code != http.StatusForbidden {
			t.Errorf("call %d of payments where only orders may call: %d, want 403", i, code)
		}
	}
	// The same claims with another signature: not in the cache, refused.
	parts := strings.Split(orders, ".")
	sig := []byte(parts[2])
	sig[3] ^= 1
	if sig[3] == '.' || sig[3] == 0 {
		sig[3] = 'A'
	}
	forged := parts[0] + "." + parts[1] + "." + string(sig)
	if code, _ := call(ordersOnly, forged); code != http.StatusUnauthorized {
		t.Errorf("a tampered credential: %d, want 401", code)
	}
	// A credential signed by a key the callee does not know.
	stranger, _, err := auth.GenerateServiceKeys([]string{"orders"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := auth.ParseServiceKeys("orders", stranger["orders"], "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := auth.NewCredentials(k).Token("inventory")
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := call(ordersOnly, other); code != http.StatusUnauthorized {
		t.Errorf("a credential signed with another key: %d, want 401", code)
	}
	// orders' own credential, made for payments: inventory must not take
	// it, or whoever receives one could replay it at every service.
	forPayments, err := auth.NewCredentials(keysOf("orders")).Token("payments")
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := call(ordersOnly, forPayments); code != http.StatusUnauthorized {
		t.Errorf("orders' credential for payments, sent to inventory: %d, want 401", code)
	}
	if code, _ := call(auth.RequireService(keysOf("payments"), "orders")(ok), forPayments); code != http.StatusOK {
		t.Errorf("the same credential at payments: %d, want 200", code)
	}
}
