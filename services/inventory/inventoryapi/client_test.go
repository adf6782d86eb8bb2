package inventoryapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
)

// The client against inventory itself is tested in services/inventory;
// these are the answers a real inventory does not give but a proxy, an
// older inventory or a misconfiguration can.

func creds(t *testing.T) *auth.Credentials {
	seeds, publics, err := auth.GenerateServiceKeys([]string{"orders"})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.ParseServiceKeys("orders", seeds["orders"], publics)
	if err != nil {
		t.Fatal(err)
	}
	return auth.NewCredentials(keys)
}

func newClient(t *testing.T, url string, c *auth.Credentials) *inventoryapi.Client {
	return inventoryapi.NewClient(client.New("inventory", url, c, client.Options{Attempts: 2, BaseBackoff: time.Millisecond}, nil))
}

func TestClientSignsEscapesAndMarksRetriesSafe(t *testing.T) {
	var path, authz, key atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.EscapedPath())
		authz.Store(r.Header.Get("Authorization"))
		key.Store(r.Header.Get("Idempotency-Key"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"order_id":"a/b","status":"committed","lines":[],"total_cents":0,"currency":"USD"}`))
	}))
	defer srv.Close()
	r, err := newClient(t, srv.URL, creds(t)).Commit(context.Background(), "a/b")
	if err != nil || r.Status != "committed" {
		t.Fatalf("commit: %+v %v", r, err)
	}
	if p := path.Load().(string); p != "/internal/reservations/a%2Fb/commit" {
		t.Errorf("path %q", p)
	}
	if a := authz.Load().(string); !strings.HasPrefix(a, "Bearer ") {
		t.Errorf("authorization %q", a)
	}
	if k := key.Load().(string); k != "commit:a/b" {
		t.Errorf("idempotency key %q", k)
	}
}

func TestClientErrors(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch {
		case strings.Contains(r.URL.Path, "gateway"):
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>bad gateway</html>"))
		case strings.Contains(r.URL.Path, "busy"):
			problem.Write(w, r, problem.Unavailable("try later"))
		case r.URL.Path == "/internal/reservations":
			// An out-of-stock problem without the skus member.
			p := problem.New(409, inventoryapi.ProblemOutOfStock, "Out of stock", "not enough")
			p.Errors = []problem.FieldError{{Field: "lines[1].quantity", Reason: "short"}}
			problem.Write(w, r, p)
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{not json`))
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, creds(t))
	ctx := context.Background()

	_, err := c.Release(ctx, "gateway")
	p := problem.From(err)
	if !errors.Is(err, client.ErrUnavailable) || p == nil || p.Status != 502 || errors.Is(err, inventoryapi.ErrNotFound) {
		t.Fatalf("a non-problem 502: %v", err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("the release was tried %d times; it is idempotent, so it is retried", n)
	}
	_, err = c.Release(ctx, "busy")
	if p := problem.From(err); !errors.Is(err, client.ErrUnavailable) || p == nil || p.Status != 503 || p.Detail != "try later" {
		t.Fatalf("a 503 problem: %v", err)
	}
	if _, err := c.Release(ctx, "garbled"); err == nil || problem.From(err) != nil {
		t.Fatalf("a garbled 200: %v", err)
	}
	_, err = c.Reserve(ctx, inventoryapi.ReserveRequest{OrderID: "o", Lines: []inventoryapi.ReserveLine{{SKU: "A", Quantity: 1}, {SKU: "B", Quantity: 9}}})
	var oos *inventoryapi.OutOfStockError
	if !errors.As(err, &oos) || !errors.Is(err, inventoryapi.ErrOutOfStock) || !slices.Equal(oos.SKUs, []string{"B"}) || problem.From(err) == nil {
		t.Fatalf("out of stock without skus: %v", err)
	}

	keys, _ := auth.ParseServiceKeys("orders", "", "")
	if _, err := newClient(t, srv.URL, auth.NewCredentials(keys)).Commit(ctx, "x"); err == nil || !strings.Contains(err.Error(), "service key") {
		t.Fatalf("a client without a key: %v", err)
	}
}
