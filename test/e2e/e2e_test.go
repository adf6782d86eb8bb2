// Package e2e runs the real system the way a newcomer does and talks to it
// through the gateway only.
package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/users/usersapi"
	"github.com/microshop/microshop/test/systemtest"
)

func TestSystemSurvivesInventoryDying(t *testing.T) {
	s := systemtest.Start(t,
		"MICROSHOP_ADMIN_EMAIL=admin@example.com",
		"MICROSHOP_ADMIN_PASSWORD=admin password 123",
	)
	gw := s.Gateway

	// Every service is its own process with its own database: a file of
	// its own, or (run --db, as CI's second pass sets through MICROSHOP_DB)
	// a Postgres database of its own.
	if os.Getenv("MICROSHOP_DB") == "" {
		for _, name := range []string{"users", "inventory"} {
			if _, err := os.Stat(filepath.Join(s.Data, name+".db")); err != nil {
				t.Errorf("no database file for %s: %v", name, err)
			}
		}
	}
	pids := map[int]string{}
	for _, name := range []string{"users", "inventory", "gateway"} {
		pid := s.PID(t, name)
		if other, dup := pids[pid]; dup || pid == s.Cmd.Process.Pid {
			t.Fatalf("%s shares pid %d with %s", name, pid, other)
		}
		pids[pid] = name
	}

	r := servicetest.Call(t, "POST", gw+"/api/users/register", "", map[string]string{
		"email": "e2e@example.com", "password": "end to end test", "name": "E2E"})
	if r.Status != http.StatusCreated {
		t.Fatalf("register through the gateway: %d %s", r.Status, r.Body)
	}
	login := func() usersapi.Tokens {
		t.Helper()
		r := servicetest.Call(t, "POST", gw+"/api/users/login", "", map[string]string{
			"email": "e2e@example.com", "password": "end to end test"})
		if r.Status != http.StatusOK {
			t.Fatalf("login through the gateway: %d %s", r.Status, r.Body)
		}
		var tok usersapi.Tokens
		r.JSON(t, &tok)
		return tok
	}
	tok := login()
	if r := servicetest.Call(t, "GET", gw+"/api/users/me", tok.AccessToken, nil); r.Status != 200 {
		t.Fatalf("me through the gateway: %d %s", r.Status, r.Body)
	}

	r = servicetest.Call(t, "GET", gw+"/api/inventory/products?limit=5", "", nil)
	if r.Status != 200 {
		t.Fatalf("products through the gateway: %d %s", r.Status, r.Body)
	}
	var list struct {
		Items []struct {
			SKU        string `json:"sku"`
			PriceCents int64  `json:"price_cents"`
			Currency   string `json:"currency"`
		} `json:"items"`
		NextPageToken string `json:"next_page_token"`
	}
	r.JSON(t, &list)
	if len(list.Items) != 5 || list.NextPageToken == "" || list.Items[0].PriceCents <= 0 || list.Items[0].Currency == "" {
		t.Fatalf("want a first page of 5 seeded products: %s", r.Body)
	}

	// The gateway never routes a service's internal routes.
	if r := servicetest.Call(t, "POST", gw+"/api/inventory/../../internal/reservations", tok.AccessToken, `{}`); r.Status != 404 {
		t.Fatalf("internal route through the gateway: %d %s", r.Status, r.Body)
	}

	// Kill inventory outright: no graceful anything.
	s.Kill(t, "inventory")

	// Logging in still works: users and the gateway do not need inventory.
	tok = login()
	if r := servicetest.Call(t, "GET", gw+"/api/users/me", tok.AccessToken, nil); r.Status != 200 {
		t.Fatalf("me with inventory down: %d %s", r.Status, r.Body)
	}
	// Product routes answer 503 problem+json that names the service.
	r = servicetest.Call(t, "GET", gw+"/api/inventory/products", "", nil)
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("products with inventory down: %d %s", r.Status, r.Body)
	}
	if p := r.Problem(t); p.Service != "inventory" || !strings.Contains(p.Detail, "inventory") {
		t.Fatalf("the 503 must name inventory: %s", r.Body)
	}

	// Ctrl-C stops the rest gracefully.
	s.Stop(t)
	for pid, name := range pids {
		if localrun.Alive(pid) {
			t.Errorf("%s (pid %d) is still running after run stopped", name, pid)
		}
	}
	if !strings.Contains(s.Output(), "stopped") {
		t.Errorf("run did not say it stopped:\n%s", s.Output())
	}
}
