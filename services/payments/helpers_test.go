package payments_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/openapi/openapitest"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/payments"
	"github.com/microshop/microshop/services/payments/paymentsapi"
	"github.com/microshop/microshop/services/users"
	"github.com/microshop/microshop/services/users/usersapi"
)

const (
	adminEmail    = "root@example.com"
	adminPassword = "correct horse battery"
)

// env is a running payments service with everything it talks to: an
// embedded NATS, a real users service for access tokens, and the service
// keys of orders and payments.
type env struct {
	// URL is payments behind the OpenAPI checker; tests use it.
	URL     string
	Checker *openapitest.Checker
	// Direct is payments itself, for the few checks the proxy would hide.
	Direct  string
	Service *servicetest.Service
	NATS    string

	// Orders is the typed client, signed as orders.
	Orders      *paymentsapi.Client
	ordersCreds *auth.Credentials
	// args and vars started the service; a replica reuses them.
	args []string
	vars map[string]string
	// OrdersToken, PaymentsToken are raw service credentials.
	OrdersToken, PaymentsToken string
	AdminToken, CustomerToken  string
}

// start runs payments with args (flags of `microshop serve payments`).
func start(t *testing.T, args ...string) *env {
	t.Helper()
	natsURL := servicetest.NATS(t)
	usersSvc := servicetest.Start(t, users.Spec(), []string{"--nats", natsURL}, map[string]string{
		"MICROSHOP_ADMIN_EMAIL":      adminEmail,
		"MICROSHOP_ADMIN_PASSWORD":   adminPassword,
		"MICROSHOP_REGISTER_RATE_IP": "0",
		"MICROSHOP_LOGIN_RATE_IP":    "0",
	})
	seeds, publics, err := auth.GenerateServiceKeys([]string{"orders", "payments"})
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"--nats", natsURL, "--users-url", usersSvc.URL}, args...)
	vars := map[string]string{"MICROSHOP_SERVICE_KEY": seeds["payments"], "MICROSHOP_SERVICE_KEYS": publics}
	svc := servicetest.Start(t, payments.Spec(), args, vars)
	url, checker := openapitest.Proxy(t, payments.OpenAPI(), svc.URL)

	e := &env{URL: url, Checker: checker, Direct: svc.URL, Service: svc, NATS: natsURL, args: args, vars: vars}
	e.ordersCreds = credentials(t, "orders", seeds["orders"], publics)
	e.Orders = paymentsapi.NewClient(url, e.ordersCreds, client.Options{Timeout: 10 * time.Second}, nil)
	e.OrdersToken = token(t, credentials(t, "orders", seeds["orders"], publics))
	e.PaymentsToken = token(t, credentials(t, "payments", seeds["payments"], publics))

	e.AdminToken = login(t, usersSvc.URL, adminEmail, adminPassword)
	r := servicetest.Call(t, "POST", usersSvc.URL+"/api/users/register", "",
		map[string]string{"email": "shopper@example.com", "password": "long enough password", "name": "Shopper"})
	if r.Status != http.StatusCreated {
		t.Fatalf("registering a customer: %d %s", r.Status, r.Body)
	}
	e.CustomerToken = login(t, usersSvc.URL, "shopper@example.com", "long enough password")
	return e
}

// replica starts another payments process on the same database, broker
// and keys, as a second replica behind a balancer, and returns a client of
// it. The service must have been started with an explicit --db.
func (e *env) replica(t *testing.T) (*paymentsapi.Client, string) {
	t.Helper()
	svc := servicetest.Start(t, payments.Spec(), e.args, e.vars)
	url, _ := openapitest.Proxy(t, payments.OpenAPI(), svc.URL)
	return paymentsapi.NewClient(url, e.ordersCreds, client.Options{Timeout: 10 * time.Second}, nil), url
}

func credentials(t *testing.T, name, seed, publics string) *auth.Credentials {
	t.Helper()
	keys, err := auth.ParseServiceKeys(name, seed, publics)
	if err != nil {
		t.Fatal(err)
	}
	return auth.NewCredentials(keys)
}

func token(t *testing.T, c *auth.Credentials) string {
	t.Helper()
	tok, err := c.Token()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func login(t *testing.T, usersURL, email, password string) string {
	t.Helper()
	r := servicetest.Call(t, "POST", usersURL+"/api/users/login", "", map[string]string{"email": email, "password": password})
	if r.Status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, r.Status, r.Body)
	}
	var tok usersapi.Tokens
	r.JSON(t, &tok)
	return tok.AccessToken
}

// forgedServiceToken claims to be orders but is signed with a key no
// service has.
func forgedServiceToken(t *testing.T) string {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.RegisteredClaims{
		Issuer: "orders", Subject: "orders", Audience: jwt.ClaimStrings{auth.InternalAudience},
		IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute)),
	})
	tok.Header["kid"] = "service:orders"
	s, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
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

func mustAuthorize(t *testing.T, e *env, key string, req paymentsapi.AuthorizeRequest) paymentsapi.Payment {
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

func ledger(t *testing.T, e *env, paymentID string) paymentsapi.Ledger {
	t.Helper()
	path := "/api/payments/ledger"
	if paymentID != "" {
		path += "?payment_id=" + paymentID
	}
	r := servicetest.Call(t, "GET", e.URL+path, e.AdminToken, nil)
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
func checkPaymentLedger(t *testing.T, e *env, p paymentsapi.Payment) paymentsapi.Ledger {
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

// streamEvents reads every event on the PAYMENTS stream, waiting until
// done says it has them all.
func streamEvents(t *testing.T, natsURL string, done func([]events.Event) bool) []events.Event {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []events.Event
	for {
		got = got[:0]
		if s, err := js.Stream(ctx, "PAYMENTS"); err == nil {
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
				m, err := s.GetMsg(ctx, seq)
				if err != nil {
					t.Fatalf("reading message %d: %v", seq, err)
				}
				var ev events.Event
				if err := json.Unmarshal(m.Data, &ev); err != nil {
					t.Fatalf("message %d is not an event: %v", seq, err)
				}
				if m.Header.Get(jetstream.MsgIDHeader) != ev.ID || m.Subject != ev.Type {
					t.Fatalf("message %d: id %q subject %q for event %+v", seq, m.Header.Get(jetstream.MsgIDHeader), m.Subject, ev)
				}
				got = append(got, ev)
			}
			if done(got) {
				return got
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("timed out waiting for the PAYMENTS stream; have %d events", len(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
