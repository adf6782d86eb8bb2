package balancer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// identified is a replica whose /readyz names it as identity (nothing
// when empty), as the platform's server does.
func identified(t *testing.T, identity string, hits *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if identity != "" {
			w.Header().Set(IdentityHeader, identity)
		}
		if r.URL.Path == "/readyz" {
			return
		}
		hits.Add(1)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A program on a replica's port that is not the expected service of this
// system (another service, another `microshop run`'s replica, anything
// answering 200) gets no call: before the fix, orders sent half of its
// reservations to another service's process on inventory's second port,
// which answered 404, and orders took that for "no such reservation".
func TestStrangersOnReplicaPortsGetNoCalls(t *testing.T) {
	var ours, otherService, otherSystem, anonymous atomic.Int64
	a := identified(t, "inventory@aaaa", &ours)
	b := identified(t, "orders@aaaa", &otherService)
	c := identified(t, "inventory@bbbb", &otherSystem)
	d := identified(t, "", &anonymous)
	bal, err := New(b.URL + "," + a.URL + "," + c.URL + "," + d.URL)
	if err != nil {
		t.Fatal(err)
	}
	bal.Expect("inventory@aaaa")
	bal.ProbeAll(context.Background())
	for range 20 {
		resp, err := http.Get(bal.Pick().String() + "/work")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if ours.Load() != 20 || otherService.Load()+otherSystem.Load()+anonymous.Load() != 0 {
		t.Fatalf("calls: ours %d, another service %d, another system %d, anonymous %d",
			ours.Load(), otherService.Load(), otherSystem.Load(), anonymous.Load())
	}
	if bal.Ready() != 1 {
		t.Errorf("ready = %d, want 1", bal.Ready())
	}
	// Ours goes down: the fallback that lets a call find out for itself
	// is ours again, never a stranger, even when ours is excluded.
	a.Close()
	bal.ProbeAll(context.Background())
	for range 10 {
		if got := bal.Pick(); got.String() != a.URL {
			t.Fatalf("with every replica unready, Pick = %s, want ours (%s)", got, a.URL)
		}
	}
	first := bal.Pick()
	if got := bal.Pick(first); got.String() == b.URL || got.String() == c.URL || got.String() == d.URL {
		t.Fatalf("with ours excluded, Pick = %s, a stranger", got)
	}
}

// Without Expect, anything ready is a replica: single-system setups and
// tests that configure nothing keep working as before.
func TestWithoutExpectAnyReadyReplicaCounts(t *testing.T) {
	var x, y atomic.Int64
	a, b := identified(t, "", &x), identified(t, "orders@zzzz", &y)
	bal, _ := New(a.URL + "," + b.URL)
	bal.ProbeAll(context.Background())
	if bal.Ready() != 2 {
		t.Fatalf("ready = %d, want 2", bal.Ready())
	}
}
