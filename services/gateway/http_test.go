package gateway_test

import (
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/server"
)

// platformStandIn is a stand-in for inventory built on the services' own
// HTTP runtime (package server): public catalog reads, and admin routes
// behind a check that refuses every request, as a token check refuses a
// request with none.
func platformStandIn(t *testing.T) *httptest.Server {
	t.Helper()
	s := server.New(server.Options{Service: "inventory", Log: slog.New(slog.DiscardHandler)})
	products := make([]map[string]string, 100)
	for i := range products {
		products[i] = map[string]string{"sku": "SKU-" + strings.Repeat("1", i%7+1), "name": "A product of the catalog", "currency": "USD"}
	}
	s.Router.Route("/api/inventory", func(r chi.Router) {
		r.Get("/products", func(w http.ResponseWriter, r *http.Request) {
			httpjson.WriteCached(w, r, httpjson.List[map[string]string]{Items: products})
		})
		r.Get("/products/{sku}", func(w http.ResponseWriter, r *http.Request) {
			httpjson.WriteCached(w, r, products[0])
		})
		r.Group(func(r chi.Router) {
			r.Use(func(http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					problem.Write(w, r, problem.New(http.StatusUnauthorized, "unauthorized", "Unauthorized", "needs an access token"))
				})
			})
			r.Post("/products", func(w http.ResponseWriter, r *http.Request) {})
			r.Get("/stock", func(w http.ResponseWriter, r *http.Request) {})
		})
	})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

// startGatewayAt runs the gateway with inventory at inventoryURL.
func startGatewayAt(t *testing.T, inventoryURL string, extra ...string) string {
	t.Helper()
	in := &standIn{name: "inventory", srv: &httptest.Server{URL: inventoryURL}}
	return startGateway(t, closedURL(t), map[string]*standIn{"inventory": in}, extra...).URL
}

// HTTP through the gateway, as RFC 9110 has it and as the service behind
// it answers: one X-Request-Id (before, the gateway's and the service's),
// HEAD wherever GET is, OPTIONS per route with no token (before, 401 for
// every route but the public ones), compression, and catalog reads that a
// cache may keep and revalidate (ETag, 304).
func TestHTTPThroughTheGateway(t *testing.T) {
	gw := startGatewayAt(t, platformStandIn(t).URL)
	plain := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	send := func(method, path string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, gw+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}

	t.Run("one request id", func(t *testing.T) {
		res, _ := send("GET", "/api/inventory/products/SKU-1", "X-Request-Id", "my-request-1")
		if ids := res.Header.Values(server.RequestIDHeader); len(ids) != 1 || ids[0] != "my-request-1" {
			t.Errorf("X-Request-Id %q, want the one the client sent, once", ids)
		}
		res, _ = send("GET", "/api/inventory/products/SKU-1")
		if ids := res.Header.Values(server.RequestIDHeader); len(ids) != 1 {
			t.Errorf("X-Request-Id %q, want one", ids)
		}
	})

	t.Run("named by the service's route", func(t *testing.T) {
		res, _ := send("GET", "/api/inventory/products/SKU-1")
		if got := res.Header.Values(server.RouteHeader); len(got) != 1 || got[0] != "/api/inventory/products/{sku}" {
			t.Errorf("%s %q, want the service's route once", server.RouteHeader, got)
		}
	})

	t.Run("HEAD wherever GET is", func(t *testing.T) {
		get, _ := send("GET", "/api/inventory/products")
		for _, path := range []string{"/api/inventory/products", "/api/inventory/products/SKU-1", "/", "/api/asyncapi.yaml"} {
			res, body := send("HEAD", path)
			if res.StatusCode != http.StatusOK || len(body) != 0 || res.Header.Get("Content-Type") == "" {
				t.Errorf("HEAD %s: %d, %d bytes, Content-Type %q", path, res.StatusCode, len(body), res.Header.Get("Content-Type"))
			}
		}
		if res, _ := send("HEAD", "/api/inventory/products"); res.Header.Get("ETag") != get.Header.Get("ETag") {
			t.Errorf("HEAD's ETag %q, GET's %q", res.Header.Get("ETag"), get.Header.Get("ETag"))
		}
	})

	t.Run("OPTIONS per route, no token needed", func(t *testing.T) {
		for path, allow := range map[string]string{
			"/api/inventory/products":       "GET, HEAD, POST, OPTIONS",
			"/api/inventory/products/SKU-1": "GET, HEAD, OPTIONS",
			"/api/inventory/stock":          "GET, HEAD, OPTIONS", // an admin route
			"/":                             "GET, HEAD, OPTIONS",
		} {
			res, _ := send("OPTIONS", path)
			if res.StatusCode != http.StatusNoContent || res.Header.Get("Allow") != allow {
				t.Errorf("OPTIONS %s: %d Allow %q, want 204 Allow %q", path, res.StatusCode, res.Header.Get("Allow"), allow)
			}
		}
		// Without CORS configured, a browser's preflight gets no
		// permission: no Access-Control-Allow-Origin.
		res, _ := send("OPTIONS", "/api/inventory/products", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
		if res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("CORS is off by default, yet a preflight got Access-Control-Allow-Origin %q", res.Header.Get("Access-Control-Allow-Origin"))
		}
	})

	t.Run("compression", func(t *testing.T) {
		res, body := send("GET", "/api/inventory/products", "Accept-Encoding", "gzip")
		if res.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("the catalog accepting gzip: Content-Encoding %q", res.Header.Get("Content-Encoding"))
		}
		if vary := res.Header.Values("Vary"); len(vary) != 1 || vary[0] != "Accept-Encoding" {
			t.Errorf("Vary %q, want Accept-Encoding once", vary)
		}
		zr, err := gzip.NewReader(strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		full, _ := io.ReadAll(zr)
		t.Logf("the catalog stand-in: %d bytes, %d gzipped", len(full), len(body))
		res, body = send("GET", "/", "Accept-Encoding", "gzip")
		if res.Header.Get("Content-Encoding") != "gzip" || len(body) == 0 {
			t.Errorf("the web UI's page accepting gzip: Content-Encoding %q", res.Header.Get("Content-Encoding"))
		}
	})

	t.Run("catalog reads revalidate", func(t *testing.T) {
		res, _ := send("GET", "/api/inventory/products", "Accept-Encoding", "gzip")
		etag := res.Header.Get("ETag")
		if !strings.HasPrefix(etag, `W/"`) || res.Header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("ETag %q, Cache-Control %q", etag, res.Header.Get("Cache-Control"))
		}
		again, body := send("GET", "/api/inventory/products", "If-None-Match", etag)
		if again.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("If-None-Match with the ETag: %d, %d bytes, want 304", again.StatusCode, len(body))
		}
	})
}

// CORS is off unless --cors-origins names origins; then a named origin's
// preflight and requests are allowed, and no other origin is.
func TestCORS(t *testing.T) {
	gw := startGatewayAt(t, platformStandIn(t).URL, "--cors-origins", "https://shop.example.com")
	for _, c := range []struct {
		origin, allowed string
	}{
		{"https://shop.example.com", "https://shop.example.com"},
		{"https://evil.example", ""},
	} {
		pre := do(t, http.MethodOptions, gw+"/api/inventory/products", "", nil,
			"Origin", c.origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, content-type")
		if got := pre.Header.Get("Access-Control-Allow-Origin"); got != c.allowed {
			t.Errorf("a preflight from %s: Access-Control-Allow-Origin %q, want %q", c.origin, got, c.allowed)
		}
		if c.allowed != "" && (pre.Status != http.StatusNoContent || !strings.Contains(pre.Header.Get("Access-Control-Allow-Methods"), "POST")) {
			t.Errorf("a preflight from %s: %d, methods %q", c.origin, pre.Status, pre.Header.Get("Access-Control-Allow-Methods"))
		}
		get := do(t, http.MethodGet, gw+"/api/inventory/products", "", nil, "Origin", c.origin)
		if got := get.Header.Get("Access-Control-Allow-Origin"); get.Status != http.StatusOK || got != c.allowed {
			t.Errorf("GET from %s: %d, Access-Control-Allow-Origin %q, want %q", c.origin, get.Status, got, c.allowed)
		}
	}
	if got := do(t, http.MethodGet, gw+"/api/inventory/products", "", nil, "Origin", "https://shop.example.com").Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "Etag") && !strings.Contains(got, "ETag") {
		t.Errorf("Access-Control-Expose-Headers %q, want ETag among them", got)
	}
}
