package payments_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/openapi/openapitest"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/payments"
	"github.com/microshop/microshop/services/payments/paymentsapi"
	"github.com/microshop/microshop/services/users"
)

// shop is a servicetest.Shop with payments running on it; orders is a
// caller it allows on /internal/.
type shop struct {
	*servicetest.Shop
	// URL is payments behind the OpenAPI checker; tests use it.
	URL     string
	Checker *openapitest.Checker
	// Direct is payments itself, for the few checks the proxy would hide.
	Direct  string
	Service *servicetest.Service
	// Orders is the typed client, signed as orders.
	Orders *paymentsapi.Client
	// args started the service; a replica reuses them.
	args []string
}

// start runs payments with args (flags of `microshop serve payments`).
func start(t *testing.T, args ...string) *shop {
	t.Helper()
	e := &shop{Shop: servicetest.NewShop(t, users.Spec(), servicetest.ShopOptions{Keys: []string{"orders", "payments"}}), args: args}
	e.Service = e.Start(t, payments.Spec(), args, nil)
	e.Direct = e.Service.URL
	e.URL, e.Checker = openapitest.Proxy(t, payments.OpenAPI(), e.Direct)
	e.Orders = paymentsapi.NewClient(e.URL, e.Credentials(t, "orders"), client.Options{Timeout: 10 * time.Second}, nil)
	return e
}

// replica starts another payments process on the same database, broker
// and keys, as a second replica behind a balancer, and returns a client of
// it. The service must have been started with an explicit --db.
func (e *shop) replica(t *testing.T) (*paymentsapi.Client, string) {
	t.Helper()
	svc := e.Start(t, payments.Spec(), e.args, nil)
	url, _ := openapitest.Proxy(t, payments.OpenAPI(), svc.URL)
	return paymentsapi.NewClient(url, e.Credentials(t, "orders"), client.Options{Timeout: 10 * time.Second}, nil), url
}

// newOrderID makes an order id no other test uses.
func newOrderID() string { return "order-" + rand.Text()[:12] }

// goodCard is an approved card expiring in a year.
func goodCard(number string) paymentsapi.Card {
	cvc := "123"
	if number[:2] == "34" || number[:2] == "37" {
		cvc = "1234"
	}
	return paymentsapi.Card{Number: number, ExpMonth: 12, ExpYear: time.Now().Year() + 1, CVC: cvc}
}

func authorizeReq(orderID string, amount int64, number string) paymentsapi.AuthorizeRequest {
	return paymentsapi.AuthorizeRequest{OrderID: orderID, AmountCents: amount, Currency: "EUR", Card: goodCard(number)}
}

// randomCard makes a random Luhn-valid 16-digit visa number, so a search
// for it in files and logs cannot hit anything by chance.
func randomCard(t *testing.T) string {
	t.Helper()
	for {
		n, err := rand.Int(rand.Reader, big.NewInt(1e14))
		if err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("4%014d", n)
		for check := 0; check < 10; check++ {
			num := body + fmt.Sprint(check)
			if luhnOK(num) && num != payments.CardDeclined && num != payments.CardInsufficientFunds && num != payments.CardSlow {
				return num
			}
		}
	}
}

func luhnOK(s string) bool {
	sum := 0
	for i := range len(s) {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func mustAuthorize(t *testing.T, e *shop, key string, req paymentsapi.AuthorizeRequest) paymentsapi.Payment {
	t.Helper()
	p, err := e.Orders.Authorize(context.Background(), key, req)
	if err != nil {
		t.Fatalf("authorize %s: %v", req.OrderID, err)
	}
	if p.Status != paymentsapi.StatusAuthorized || p.AmountCents != req.AmountCents || p.OrderID != req.OrderID {
		t.Fatalf("authorized %+v for %+v", p, req)
	}
	return p
}

func ledger(t *testing.T, e *shop, paymentID string) paymentsapi.Ledger {
	t.Helper()
	path := "/api/payments/ledger"
	if paymentID != "" {
		path += "?payment_id=" + paymentID
	}
	r := servicetest.Call(t, "GET", e.URL+path, e.Admin, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("ledger: %d %s", r.Status, r.Body)
	}
	var l paymentsapi.Ledger
	r.JSON(t, &l)
	return l
}

// balance is an account's balance in l, in EUR.
func balance(l paymentsapi.Ledger, account string) int64 {
	for _, a := range l.Accounts {
		if a.Account == account && a.Currency == "EUR" {
			return a.BalanceCents
		}
	}
	return 0
}

// checkPaymentLedger checks that p's own entries match its amounts, and
// returns them.
func checkPaymentLedger(t *testing.T, e *shop, p paymentsapi.Payment) paymentsapi.Ledger {
	t.Helper()
	l := ledger(t, e, p.ID)
	held := p.AmountCents - p.CapturedCents
	switch p.Status {
	case paymentsapi.StatusVoided, paymentsapi.StatusDeclined:
		held = 0
	}
	revenue := p.CapturedCents - p.RefundedCents
	got := [3]int64{balance(l, paymentsapi.AccountAuthorizationsHeld), balance(l, paymentsapi.AccountMerchantRevenue), balance(l, paymentsapi.AccountCustomerCard)}
	want := [3]int64{held, revenue, -(held + revenue)}
	if got != want || !l.Balanced || l.TotalCents != 0 {
		t.Errorf("payment %s (%s, amount %d, captured %d, refunded %d): held, revenue, card = %v, want %v; ledger %+v",
			p.ID, p.Status, p.AmountCents, p.CapturedCents, p.RefundedCents, got, want, l)
	}
	// Movements: authorize, then capture or void, then refunds.
	var wantEntries int64
	switch p.Status {
	case paymentsapi.StatusAuthorized:
		wantEntries = 2
	case paymentsapi.StatusVoided:
		wantEntries = 4
	case paymentsapi.StatusCaptured:
		wantEntries = 4
		if p.RefundedCents > 0 {
			wantEntries = 6
		}
	}
	if l.Entries < wantEntries || l.Entries%2 != 0 || (p.Status != paymentsapi.StatusCaptured && l.Entries != wantEntries) {
		t.Errorf("payment %s (%s, refunded %d) has %d ledger entries, want %d", p.ID, p.Status, p.RefundedCents, l.Entries, wantEntries)
	}
	return l
}
