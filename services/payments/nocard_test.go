package payments_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/payments"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// TestCardNumbersAreNeverWritten sends card numbers through every path
// (approved, declined, slow, invalid, replayed), then searches the
// database files, the service's logs (at debug level) and the events for
// them. Only brand and last four digits may be kept.
func TestCardNumbersAreNeverWritten(t *testing.T) {
	dir := t.TempDir()
	e := start(t, "--db", filepath.Join(dir, "payments.db"), "--slow-card-delay", "100ms")
	ctx := context.Background()

	secret := randomCard(t)
	spaced := secret[:4] + " " + secret[4:8] + " " + secret[8:12] + " " + secret[12:]
	invalid := secret[:15] + string('0'+(secret[15]-'0'+1)%10) // fails Luhn
	numbers := []string{secret, spaced, invalid, payments.CardDeclined, payments.CardInsufficientFunds, payments.CardSlow}

	order := newOrderID()
	key := newKey()
	p := mustAuthorize(t, e, key, authorizeReq(order, 2_500, spaced))
	if p.Last4 != secret[12:] || p.Brand != "visa" {
		t.Fatalf("stored %+v", p)
	}
	mustAuthorize(t, e, key, authorizeReq(order, 2_500, spaced)) // a replay
	if _, err := e.Orders.Capture(ctx, newKey(), p.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Orders.Refund(ctx, newKey(), p.ID, 500); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{payments.CardDeclined, payments.CardInsufficientFunds} {
		if _, err := e.Orders.Authorize(ctx, newKey(), authorizeReq(order, 100, n)); !errors.Is(err, paymentsapi.ErrDeclined) {
			t.Fatalf("%s: %v", n, err)
		}
	}
	// The slow card answers once its delay is up, and approves.
	start := time.Now()
	slow := mustAuthorize(t, e, newKey(), authorizeReq(order, 100, payments.CardSlow))
	if time.Since(start) < 100*time.Millisecond || slow.Last4 != "0077" {
		t.Fatalf("the slow card answered after %s: %+v", time.Since(start), slow)
	}
	// Refused requests must not leak the number either.
	r := servicetest.Call(t, "POST", e.URL+"/internal/payments/authorize", e.Token(t, "orders", "payments"),
		authorizeReq(order, 100, invalid), "Idempotency-Key", newKey())
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("an invalid number: %d %s", r.Status, r.Body)
	}
	r = servicetest.Call(t, "POST", e.URL+"/internal/payments/authorize", e.Token(t, "orders", "payments"),
		authorizeReq(order, 0, secret), "Idempotency-Key", newKey())
	if r.Status != http.StatusUnprocessableEntity || bytes.Contains(r.Body, []byte(secret)) {
		t.Fatalf("an invalid amount: %d %s", r.Status, r.Body)
	}

	evs := e.Events(t, "payments", func(evs []events.Event) bool { return len(evs) >= 4 }) // 2 failed, captured, refunded
	e.Service.Stop()                                                                       // closes the database, checkpointing the WAL

	files, err := os.ReadDir(dir)
	if err != nil || len(files) == 0 {
		t.Fatalf("reading %s: %v %v", dir, files, err)
	}
	var dbBytes int
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dbBytes += len(b)
		for _, n := range numbers {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("the database file %s holds the card number %s", f.Name(), n)
			}
		}
	}
	if dbBytes == 0 {
		t.Fatal("the database files are empty; the test proves nothing")
	}
	logs := e.Service.Logs.String()
	if !strings.Contains(logs, "/internal/payments/authorize") {
		t.Fatal("the logs do not show the requests; the test proves nothing")
	}
	for _, n := range numbers {
		if strings.Contains(logs, n) {
			t.Errorf("the logs hold the card number %s", n)
		}
	}
	for _, ev := range evs {
		for _, n := range numbers {
			if bytes.Contains(ev.Data, []byte(n)) {
				t.Errorf("event %s holds the card number %s", ev.Type, n)
			}
		}
	}
	// What is kept: the brand and last four digits, in the database.
	b, _ := os.ReadFile(filepath.Join(dir, "payments.db"))
	if !bytes.Contains(b, []byte(secret[12:])) {
		t.Error("the last four digits are not in the database file")
	}
}
