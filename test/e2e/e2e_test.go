// Package e2e runs the real system the way a newcomer does and talks to it
// through the gateway only.
package e2e

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/test/systemtest"
)

func TestSystemSurvivesInventoryDying(t *testing.T) {
	ctx := context.Background()
	s := systemtest.Start(t, systemtest.AdminEnv...)
	shop := systemtest.Shop(s.Gateway)

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

	customer := systemtest.Customer(t, shop, "e2e")
	if _, err := customer.Me(ctx); err != nil {
		t.Fatalf("me through the gateway: %v", err)
	}
	page, err := shop.Products(ctx, shopclient.ProductQuery{Limit: 5})
	if err != nil {
		t.Fatalf("products through the gateway: %v", err)
	}
	if len(page.Items) != 5 || page.NextPageToken == "" || page.Items[0].PriceCents <= 0 || page.Items[0].Currency == "" {
		t.Fatalf("want a first page of 5 seeded products: %+v", page)
	}

	// The gateway never routes a service's internal routes.
	if r := servicetest.Call(t, "POST", s.Gateway+"/api/inventory/../../internal/reservations", customer.Token(), `{}`); r.Status != 404 {
		t.Fatalf("internal route through the gateway: %d %s", r.Status, r.Body)
	}

	// Kill inventory outright: no graceful anything.
	s.Kill(t, "inventory")

	// Logging in still works: users and the gateway do not need inventory.
	if err := customer.Login(ctx); err != nil {
		t.Fatalf("login with inventory down: %v", err)
	}
	if _, err := customer.Me(ctx); err != nil {
		t.Fatalf("me with inventory down: %v", err)
	}
	// Product routes answer 503 problem+json that names the service.
	_, err = shop.Products(ctx, shopclient.ProductQuery{})
	var e *shopclient.Error
	if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("products with inventory down: %v", err)
	}
	if e.Problem == nil || e.Problem.Service != "inventory" || !strings.Contains(e.Detail, "inventory") {
		t.Fatalf("the 503 must name inventory: %v", err)
	}

	// run's mailbox and trace collector listen on loopback, where any
	// local process reaches them: without the console token they answer
	// nothing but probes.
	st, err := localrun.ReadState(s.Data)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{st.Mailbox + "/api/mailbox/messages", st.Telemetry + "/api/telemetry/traces"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the console token: %d, want 401", u, resp.StatusCode)
		}
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
