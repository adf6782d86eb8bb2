package contract_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/services/inventory/contract"
)

// The client against inventory itself is tested in services/inventory;
// these are the answers a real inventory does not give but a proxy or a
// misconfiguration can.

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

func TestClientSignsAndEscapes(t *testing.T) {
	var path, authz atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.EscapedPath())
		authz.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"order_id":"a/b","status":"committed","lines":[],"total_cents":0,"currency":"USD"}`))
	}))
	defer srv.Close()
	c := contract.NewClient(srv.URL+"/", srv.Client(), creds(t))
	r, err := c.Commit(context.Background(), "a/b")
	if err != nil || r.Status != "committed" {
		t.Fatalf("commit: %+v %v", r, err)
	}
	if p := path.Load().(string); p != "/internal/reservations/a%2Fb/commit" {
		t.Errorf("path %q", p)
	}
	if a := authz.Load().(string); !strings.HasPrefix(a, "Bearer ") {
		t.Errorf("authorization %q", a)
	}
}

func TestClientErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "gateway"):
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>bad gateway</html>"))
		case strings.Contains(r.URL.Path, "busy"):
			problem.Write(w, r, problem.Unavailable("try later"))
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{not json`))
		}
	}))
	defer srv.Close()
	c := contract.NewClient(srv.URL, srv.Client(), creds(t))
	ctx := context.Background()

	_, err := c.Release(ctx, "gateway")
	p := problem.From(err)
	if p == nil || p.Status != 502 || !strings.Contains(p.Detail, "bad gateway") || errors.Is(err, contract.ErrNotFound) {
		t.Fatalf("a non-problem 502: %v", err)
	}
	_, err = c.Release(ctx, "busy")
	if p := problem.From(err); p == nil || p.Status != 503 || p.Detail != "try later" {
		t.Fatalf("a 503 problem: %v", err)
	}
	if _, err := c.Release(ctx, "garbled"); err == nil || problem.From(err) != nil {
		t.Fatalf("a garbled 200: %v", err)
	}

	keys, _ := auth.ParseServiceKeys("orders", "", "")
	unsigned := contract.NewClient(srv.URL, srv.Client(), auth.NewCredentials(keys))
	if _, err := unsigned.Commit(ctx, "x"); err == nil || !strings.Contains(err.Error(), "service key") {
		t.Fatalf("a client without a key: %v", err)
	}
}
