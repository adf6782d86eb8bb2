package gateway_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// The gateway balances over a service's replicas; one that is down costs
// no failed request, not even for a POST, and /status counts the replicas.
func TestBalancesOverReplicas(t *testing.T) {
	a, b := newStandIn(t, "inventory"), newStandIn(t, "inventory")
	dead := closedURL(t)
	gw := startGateway(t, closedURL(t), nil, "--inventory-url", a.srv.URL+","+dead+","+b.srv.URL).URL
	for i := range 12 {
		res := do(t, http.MethodGet, gw+"/api/inventory/products", "", nil)
		if res.Status != http.StatusOK {
			t.Fatalf("request %d through a service with a dead replica: %s", i, res)
		}
	}
	// The stand-ins also see the balancer's readiness probes.
	api := func(s *standIn) int {
		n := 0
		for _, r := range s.requests() {
			if r.Path == "/api/inventory/products" {
				n++
			}
		}
		return n
	}
	if api(a) == 0 || api(b) == 0 || api(a)+api(b) != 12 {
		t.Fatalf("replicas got %d and %d of 12 requests", api(a), api(b))
	}
	res := do(t, http.MethodGet, gw+"/status", "", nil)
	var st struct {
		Services []struct {
			Service         string
			Status          string
			Replicas, Ready int
		}
	}
	if err := json.Unmarshal(res.Body, &st); err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Services {
		if s.Service == "inventory" && (s.Status != "ready" || s.Replicas != 3 || s.Ready != 2) {
			t.Fatalf("inventory status %+v, want ready with 2 of 3 replicas", s)
		}
	}
}
