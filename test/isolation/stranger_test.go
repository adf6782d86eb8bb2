package isolation

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/invariants"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
)

// stranger listens on port as another program would (another service,
// another `microshop run`): ready, but with no route the shop uses. It
// counts every request besides the readiness probes.
func stranger(t *testing.T, port int, identity string) *atomic.Int64 {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("listening as a stranger on %d: %v", port, err)
	}
	hits := &atomic.Int64{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Microshop-Service", identity)
		if r.URL.Path == "/readyz" {
			w.Write([]byte(`{"database":"ok"}`))
			return
		}
		hits.Add(1)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"type":"about:blank","title":"Not found","status":404,"detail":"no route for %s %s"}`, r.Method, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return hits
}

// Replicas are found by probing the ports `run` gives them (+100, +200,
// ... from a service's own). Whatever else listens there and answers its
// readiness probe is not a replica: under the chaos test, another
// system's process on inventory's second port got half of orders'
// reservation calls, answered 404, and orders released nothing and left
// the stock reserved. Now balancers call only replicas whose /readyz
// names the service of this system.
func TestStrangersOnReplicaPortsGetNothing(t *testing.T) {
	sh := open(t)
	var port int
	if _, err := fmt.Sscanf(sh.s.Gateway, "http://127.0.0.1:%d", &port); err != nil {
		t.Fatal(err)
	}
	// Another system's orders on inventory's second port, another
	// system's payments on payments' second port.
	inv := stranger(t, port+2+100, "orders@000000000000")
	pay := stranger(t, port+4+100, "payments@000000000000")
	time.Sleep(2500 * time.Millisecond) // balancers probe every second

	for range 10 {
		if r := servicetest.Call(t, "GET", sh.s.Gateway+"/api/inventory/products?limit=5", "", nil); r.Status != http.StatusOK {
			t.Fatalf("catalog: %d %s", r.Status, r.Body)
		}
	}
	ids := sh.buy(t, 10, "stranger")
	if inv.Load() != 0 || pay.Load() != 0 {
		t.Errorf("strangers got requests: on inventory's port %d, on payments' port %d", inv.Load(), pay.Load())
	}
	chk := &invariants.Checker{Admin: sh.admin}
	rep, err := chk.Settle(context.Background(), 30*time.Second, invariants.Expect{Accepted: ids})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Errorf("invariant: %s", v)
	}
}
