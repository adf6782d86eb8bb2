package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/gateway"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/reports"
	"github.com/microshop/microshop/services/users"
)

func TestReportsHelp(t *testing.T) {
	r := invoke(t, nil, "reports")
	if !errors.Is(r.err, errUsage) || !strings.Contains(r.stderr, "Usage: microshop reports <command>") {
		t.Errorf("no command: %v\n%s", r.err, r.stderr)
	}
	r = invoke(t, nil, "reports", "--help")
	if r.err != nil || !strings.Contains(r.stdout, "rebuild") {
		t.Errorf("reports --help: %v\n%s", r.err, r.stdout)
	}
	r = invoke(t, nil, "reports", "rebuild", "--help")
	if r.err != nil || !strings.Contains(r.stderr, "Usage: microshop reports rebuild") || !strings.Contains(r.stderr, "-url") {
		t.Errorf("reports rebuild --help: %v\n%s", r.err, r.stderr)
	}
	r = invoke(t, nil, "reports", "redo")
	if !errors.Is(r.err, errUsage) || !strings.Contains(r.stderr, `unknown command "redo"`) {
		t.Errorf("unknown command: %v\n%s", r.err, r.stderr)
	}
	r = invoke(t, nil, "reports", "rebuild")
	if r.err == nil || !strings.Contains(r.err.Error(), "MICROSHOP_ADMIN_EMAIL") {
		t.Errorf("no admin: %v", r.err)
	}
	if !strings.Contains(invoke(t, nil, "help").stdout, "\n  reports ") {
		t.Error("the usage does not list reports")
	}
}

// TestReportsRebuild runs the command against a real gateway, users and
// reports, with a few events in the streams.
func TestReportsRebuild(t *testing.T) {
	natsURL := servicetest.NATS(t)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := events.EnsureStream(ctx, js, "orders", 1); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		data, _ := json.Marshal(ordersapi.OrderConfirmed{OrderID: ids.New(), Lines: []ordersapi.Line{{SKU: "SKU-1", Quantity: 1, PriceCents: 150}},
			TotalCents: 150, Currency: "USD", ConfirmedAt: time.Now().Add(-time.Duration(i) * time.Minute)})
		msg, err := events.NewMsg(events.Event{ID: ids.New(), Type: "orders.confirmed", Version: 1, Time: time.Now(), Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"MICROSHOP_ADMIN_EMAIL": "admin@example.com", "MICROSHOP_ADMIN_PASSWORD": "admin password 123"}
	u := servicetest.Start(t, users.Spec(), []string{"--nats", natsURL}, env)
	rep := servicetest.Start(t, reports.Spec(), []string{"--nats", natsURL, "--users-url", u.URL}, nil)
	gw := servicetest.Start(t, gateway.Spec("users", "reports"), []string{"--users-url", u.URL, "--reports-url", rep.URL}, nil)

	r := invoke(t, env, "reports", "rebuild", "--url", gw.URL, "--interval", "10ms")
	if r.err != nil {
		t.Fatalf("reports rebuild: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
	}
	for _, want := range []string{"Rebuild ", " started", "done, 20/20 events (100.0%)", "orders confirmed", "revenue", "30.00 USD", "events applied"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the output has no %q:\n%s", want, r.stdout)
		}
	}

	r = invoke(t, nil, "reports", "rebuild", "--url", gw.URL, "--email", "admin@example.com", "--password", "wrong password!")
	if r.err == nil || !strings.Contains(r.err.Error(), "logging in as admin@example.com") {
		t.Errorf("wrong password: %v", r.err)
	}
}
