package notifications

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

func TestFormatMoney(t *testing.T) {
	for _, c := range []struct {
		cents    int64
		currency string
		want     string
	}{
		{1400, "USD", "$14.00"},
		{5, "usd", "$0.05"},
		{123456789, "EUR", "€1,234,567.89"},
		{99900, "GBP", "£999.00"},
		{1500, "JPY", "¥1,500"},
		{250, "CHF", "2.50 CHF"},
		{-1050, "USD", "-$10.50"},
		{0, "", "0.00"},
	} {
		if got := formatMoney(c.cents, c.currency); got != c.want {
			t.Errorf("formatMoney(%d, %s) = %q, want %q", c.cents, c.currency, got, c.want)
		}
	}
}

func TestBackoffIsExponentialWithFullJitter(t *testing.T) {
	base, cap := 100*time.Millisecond, 2*time.Second
	for n, ceiling := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: 1600 * time.Millisecond, 6: cap, 30: cap} {
		var lo, hi time.Duration = ceiling, 0
		for range 2000 {
			d := backoff(base, cap, n)
			if d < 0 || d > ceiling {
				t.Fatalf("backoff after try %d = %s, outside [0, %s]", n, d, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter: the waits spread over the whole range.
		if lo > ceiling/10 || hi < ceiling*9/10 {
			t.Errorf("after try %d the waits spread over [%s, %s], want most of [0, %s]", n, lo, hi, ceiling)
		}
	}
}

func TestEveryMessageRenders(t *testing.T) {
	m, err := loadMessages()
	if err != nil {
		t.Fatal(err)
	}
	lines := orderLines([]ordersapi.Line{{SKU: "MUG", Quantity: 2, PriceCents: 1400}, {SKU: "<b>X</b>", Quantity: 1, PriceCents: 999}}, "USD")
	for name, data := range map[string]any{
		msgWelcome:  welcomeData{Name: "Ada", Email: "ada@example.com"},
		msgReceipt:  orderData{OrderID: "o1", Lines: lines, Total: "$37.99"},
		msgRejected: orderData{OrderID: "o1", Lines: lines, Total: "$37.99", Reason: "payment_declined", Why: rejectionReason("payment_declined")},
		msgRefund:   orderData{OrderID: "o1", Lines: lines, Total: "$37.99", Refunded: "$37.99"},
		msgLowStock: lowStockData{SKU: "MUG", Name: "Mug", Available: 3, Threshold: 5},
	} {
		r, err := m.render(name, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Subject == "" || strings.Contains(r.Subject, "\n") || r.Text == "" || !strings.HasPrefix(r.HTML, "<!DOCTYPE html>") {
			t.Errorf("%s: %+v", name, r)
		}
		if strings.Contains(r.HTML, "<b>X</b>") {
			t.Errorf("%s: the HTML part does not escape data: %s", name, r.HTML)
		}
	}
	for _, reason := range []string{ordersapi.ReasonOutOfStock, ordersapi.ReasonPaymentDeclined, ordersapi.ReasonPaymentUnavailable,
		ordersapi.ReasonInventoryUnavailable, ordersapi.ReasonReservationExpired, ordersapi.ReasonInterrupted} {
		if s := rejectionReason(reason); s == rejectionReason("something new") || !strings.HasSuffix(s, ".") {
			t.Errorf("reason %s has no sentence of its own: %q", reason, s)
		}
	}
}

// TestSignatureVerifies checks Sign against a receiver's verification as
// docs/notifications.md shows it.
func TestSignatureVerifies(t *testing.T) {
	secret, body, at := "whsec_abc", []byte(`{"id":"e1"}`), time.Unix(1700000000, 0)
	header := Sign(secret, at, body)
	ts, v1, ok := strings.Cut(strings.TrimPrefix(header, "t="), ",v1=")
	if !ok || ts != "1700000000" {
		t.Fatalf("header %q", header)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(v1), []byte(want)) {
		t.Errorf("v1 %s, want %s", v1, want)
	}
	if sec, _ := strconv.ParseInt(ts, 10, 64); sec != at.Unix() {
		t.Errorf("t=%s", ts)
	}
}

func TestSigningKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := loadSigningKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, keyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", info, err)
	}
	k2, err := loadSigningKey("", dir)
	if err != nil || string(k1) != string(k2) {
		t.Fatalf("a second start made another key: %v", err)
	}
	if k1.secret("ep1") == k1.secret("ep2") || !strings.HasPrefix(k1.secret("ep1"), "whsec_") {
		t.Errorf("secrets %s %s", k1.secret("ep1"), k1.secret("ep2"))
	}
	if _, err := loadSigningKey("c2hvcnQ=", dir); err == nil {
		t.Error("a short configured key was taken")
	}

	// A database whose endpoints were made with one key refuses another.
	db := dbtest.SQLite(t)
	ctx := context.Background()
	if err := db.Migrate(ctx, quiet(), "events", events.Migrations()); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, quiet(), "notifications", Spec().Migrations()); err != nil {
		t.Fatal(err)
	}
	st := store{db}
	if err := checkSigningKey(ctx, st, k1); err != nil {
		t.Fatal(err)
	}
	other, _ := loadSigningKey("", t.TempDir())
	if err := checkSigningKey(ctx, st, other); err != nil {
		t.Fatalf("without endpoints a new key is adopted: %v", err)
	}
	if err := st.insertEndpoint(ctx, endpoint{ID: "01jabcdefghjkmnpqrstvwxyz0", URL: "https://example.com", EventTypes: []string{"users.registered"}, CreatedAt: time.Now()}, 10); err != nil {
		t.Fatal(err)
	}
	if err := checkSigningKey(ctx, st, k1); err == nil || !strings.Contains(err.Error(), "--webhook-signing-key") {
		t.Fatalf("another key with endpoints stored: %v", err)
	}
	if err := checkSigningKey(ctx, st, other); err != nil {
		t.Fatal(err)
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
