package gateway

import (
	"net/http"
	"testing"
)

func TestUnroutable(t *testing.T) {
	for path, want := range map[string]bool{
		"/api/orders":                      false,
		"/api/orders/01abc/cancel":         false,
		"/api/users/.well-known/jwks.json": false,
		"/api/inventory/products/MUG%2F1":  false, // an encoded slash inside a sku is not a segment of its own
		"/api/orders/internals":            false,
		"/api/orders/my-internal-notes":    false,
		"/api/orders/internal":             true,
		"/internal/orders":                 true,
		"/api/orders/INTERNAL":             true,
		"/api/orders/internal;x":           true,
		"/api/orders%2Finternal":           true,
		"/api/orders%252Finternal":         true,
		"/api/orders%2525252Fx":            true, // more layers than any client needs
		"/api/orders\\internal":            true,
		"/api/orders/%5cinternal":          true,
		"/api/orders/..":                   true,
		"/api/orders/./1":                  true,
		"/api/orders/%2e%2e/x":             true,
		"/api/orders/%2E/x":                true,
		"/api/orders/%zz":                  true, // not valid percent-encoding
	} {
		if got := unroutable(path); got != want {
			t.Errorf("unroutable(%q) = %t, want %t", path, got, want)
		}
	}
}

func TestIsPublic(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         bool
	}{
		{http.MethodPost, "/api/users/login", true},
		{http.MethodGet, "/api/users/login", false},
		{http.MethodPost, "/api/users/register", true},
		{http.MethodPost, "/api/users/refresh", true},
		{http.MethodPost, "/api/users/logout", true},
		{http.MethodGet, "/api/users/.well-known/jwks.json", true},
		{http.MethodGet, "/api/users/me", false},
		{http.MethodGet, "/api/inventory/products", true},
		{http.MethodHead, "/api/inventory/products", true},
		{http.MethodPost, "/api/inventory/products", false},
		{http.MethodGet, "/api/inventory/products/MUG-1", true},
		{http.MethodPut, "/api/inventory/products/MUG-1", false},
		{http.MethodGet, "/api/inventory/products/", false},
		{http.MethodGet, "/api/inventory/products/MUG-1/stock", false},
		{http.MethodGet, "/api/orders", false},
		{http.MethodPost, "/api/users/log%69n", false},
	} {
		if got := isPublic(c.method, c.path); got != c.want {
			t.Errorf("isPublic(%s %s) = %t, want %t", c.method, c.path, got, c.want)
		}
	}
}

func TestServiceOf(t *testing.T) {
	for path, want := range map[string]string{
		"/api/orders":     "orders",
		"/api/orders/":    "orders",
		"/api/orders/1/x": "orders",
		"/api":            "",
		"/api/":           "",
		"/apix/orders":    "",
		"/orders":         "",
	} {
		if got := serviceOf(path); got != want {
			t.Errorf("serviceOf(%q) = %q, want %q", path, got, want)
		}
	}
}
