package localrun

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/topology"
)

// run's broker admits the shop's services and the collector's monitor,
// with keys made once and kept, owner-only, in the data directory; a
// client without a key is refused. The same wiring without users admits
// the stranger, so the check can fail.
func TestRunsBrokerAdmitsOnlyTheShop(t *testing.T) {
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "logs"), 0o750); err != nil {
		t.Fatal(err)
	}
	auth, err := natsUsers(data, topology.Services())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"nats-keys.json", "nats-users.json"} {
		st, err := os.Stat(filepath.Join(data, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	again, err := natsUsers(data, topology.Services())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range topology.Services() {
		uses := len(s.Publishes) > 0 || len(s.Consumes) > 0
		switch {
		case uses && (auth.seeds[s.Name] == "" || again.seeds[s.Name] != auth.seeds[s.Name]):
			t.Errorf("%s's nats key was not kept from one run to the next", s.Name)
		case !uses && auth.seeds[s.Name] != "":
			t.Errorf("%s never connects to NATS, yet has a key", s.Name)
		}
	}
	if auth.seeds[broker.Monitor] == "" || again.seeds[broker.Monitor] != auth.seeds[broker.Monitor] {
		t.Error("the monitor's nats key was not kept from one run to the next")
	}
	// What `microshop nats --users` reads is what run made.
	if fromFile, err := broker.ReadUsers(auth.usersFile); err != nil || len(fromFile) != len(auth.users) {
		t.Errorf("ReadUsers = %d users, %v; want the %d run made", len(fromFile), err, len(auth.users))
	}

	for _, withUsers := range []bool{true, false} {
		users := auth.users
		if !withUsers {
			users = nil
		}
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o750); err != nil {
			t.Fatal(err)
		}
		e, err := startEmbeddedNATS(dir, 0, users)
		if err != nil {
			t.Fatal(err)
		}
		url := e.srv.URL()
		stranger, err := nats.Connect(url, nats.Timeout(2*time.Second))
		if withUsers && !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("a client without a key connected to run's broker (err %v)", err)
		}
		if !withUsers {
			if err != nil {
				t.Errorf("without users the stranger should connect (the check must be able to fail): %v", err)
			} else {
				stranger.Close()
			}
			e.stop()
			continue
		}
		// orders, with its own key, makes its stream; the collector's
		// monitor reports it; without a key the report is refused.
		nc, js, err := broker.Connect(url, auth.credential("orders"), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := events.EnsureStream(ctx, js, "orders", 1); err != nil {
			t.Errorf("orders making its stream on run's broker: %v", err)
		}
		streams, err := streamReport(ctx, url, auth.credential(broker.Monitor))
		if err != nil || len(streams) != 1 || streams[0].Name != "ORDERS" {
			t.Errorf("the monitor's stream report = %+v, %v; want ORDERS", streams, err)
		}
		if _, err := streamReport(ctx, url, broker.Credential{Name: broker.Monitor}); err == nil {
			t.Error("the stream report without a key succeeded")
		}
		cancel()
		nc.Close()
		e.stop()
	}
}
