package payments_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/payments"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

func newKey() string { return "key-" + rand.Text() }

// TestPayments runs one real payments service (SQLite, embedded NATS, a
// real users service) through every route, then checks the books and the
// events, and that the OpenAPI document covers all it was asked.
func TestPayments(t *testing.T) {
	e := start(t, "--db", filepath.Join(t.TempDir(), "payments.db"))
	t.Run("authorize capture refund", func(t *testing.T) { testLifecycle(t, e) })
	t.Run("idempotency", func(t *testing.T) { testIdempotency(t, e) })
	t.Run("declines", func(t *testing.T) { testDeclines(t, e) })
	t.Run("void", func(t *testing.T) { testVoid(t, e) })
	t.Run("access", func(t *testing.T) { testAccess(t, e) })
	t.Run("bad input", func(t *testing.T) { testBadInput(t, e) })
	t.Run("slow card", func(t *testing.T) { testSlowCard(t, e) })
	t.Run("admin", func(t *testing.T) { testAdmin(t, e) })
	t.Run("concurrency", func(t *testing.T) { testConcurrency(t, e) })
	t.Run("replicas", func(t *testing.T) { testReplicas(t, e) })
	t.Run("many operations", func(t *testing.T) { exercise(t, e) })
	t.Run("books balance", func(t *testing.T) { checkBooks(t, e) })
	t.Run("events", func(t *testing.T) { checkEvents(t, e) })
	// Every documented operation was exercised, unless -run picked a
	// few subtests.
	if run := flag.Lookup("test.run").Value.String(); !strings.Contains(run, "/") {
		e.Checker.RequireCoverage(payments.OpenAPI())
	}
}

// TestOnPostgres runs the same service on Postgres (skipped unless
// MICROSHOP_TEST_POSTGRES_URL is set).
func TestOnPostgres(t *testing.T) {
	e := start(t, "--db", dbtest.PostgresURL(t))
	t.Run("authorize capture refund", func(t *testing.T) { testLifecycle(t, e) })
	t.Run("void", func(t *testing.T) { testVoid(t, e) })
	t.Run("concurrency", func(t *testing.T) { testConcurrency(t, e) })
	t.Run("replicas", func(t *testing.T) { testReplicas(t, e) })
	t.Run("many operations", func(t *testing.T) { exercise(t, e) })
	t.Run("books balance", func(t *testing.T) { checkBooks(t, e) })
	t.Run("events", func(t *testing.T) { checkEvents(t, e) })
}

func testLifecycle(t *testing.T, e *shop) {
	ctx := context.Background()
	order := newOrderID()
	p := mustAuthorize(t, e, newKey(), authorizeReq(order, 12_345, "4242 4242 4242 4242"))
	if p.Brand != "visa" || p.Last4 != "4242" || p.Currency != "EUR" || p.CapturedCents != 0 || p.RefundedCents != 0 || p.ID == "" {
		t.Fatalf("authorized %+v", p)
	}
	checkPaymentLedger(t, e, p)

	captureKey := newKey()
	c, err := e.Orders.Capture(ctx, captureKey, p.ID, 0)
	if err != nil || c.Status != paymentsapi.StatusCaptured || c.CapturedCents != 12_345 {
		t.Fatalf("capture: %+v %v", c, err)
	}
	if again, err := e.Orders.Capture(ctx, captureKey, p.ID, 0); err != nil || again != c {
		t.Fatalf("the same capture again: %+v %v, want %+v", again, err, c)
	}
	if _, err := e.Orders.Capture(ctx, newKey(), p.ID, 0); !errors.Is(err, paymentsapi.ErrAlreadyCaptured) {
		t.Fatalf("a second capture: %v", err)
	}
	if _, err := e.Orders.Capture(ctx, newKey(), p.ID, 12_345); !errors.Is(err, paymentsapi.ErrAlreadyCaptured) {
		t.Fatalf("a second capture naming the amount: %v", err)
	}
	checkPaymentLedger(t, e, c)

	r1, err := e.Orders.Refund(ctx, newKey(), p.ID, 2_000)
	if err != nil || r1.RefundedCents != 2_000 || r1.Status != paymentsapi.StatusCaptured {
		t.Fatalf("partial refund: %+v %v", r1, err)
	}
	checkPaymentLedger(t, e, r1)
	lastKey := newKey()
	r2, err := e.Orders.Refund(ctx, lastKey, p.ID, 10_345)
	if err != nil || r2.RefundedCents != 12_345 {
		t.Fatalf("refunding the rest: %+v %v", r2, err)
	}
	if again, err := e.Orders.Refund(ctx, lastKey, p.ID, 10_345); err != nil || again != r2 {
		t.Fatalf("the same refund again: %+v %v", again, err)
	}
	_, err = e.Orders.Refund(ctx, newKey(), p.ID, 1)
	if !errors.Is(err, paymentsapi.ErrRefundExceeds) || problem.From(err).Status != http.StatusUnprocessableEntity {
		t.Fatalf("refunding past the capture: %v", err)
	}
	checkPaymentLedger(t, e, r2)

	list, err := e.Orders.ByOrder(ctx, order)
	if err != nil || len(list) != 1 || list[0] != r2 {
		t.Fatalf("by order: %+v %v", list, err)
	}
	// An amex, a mastercard and a discover card work too.
	for number, brand := range map[string]string{"3782 822463 10005": "amex", "2223 0031 2200 3222": "mastercard", "6011-1111-1111-1117": "discover"} {
		p := mustAuthorize(t, e, newKey(), authorizeReq(newOrderID(), 500, number))
		if p.Brand != brand || p.Last4 != strings.ReplaceAll(number, "-", "")[len(strings.ReplaceAll(number, "-", ""))-4:] {
			t.Errorf("%s: brand %s last4 %s", number, p.Brand, p.Last4)
		}
	}
}

func testIdempotency(t *testing.T, e *shop) {
	call := func(path, key string, body any) servicetest.Response {
		return servicetest.Call(t, "POST", e.URL+path, e.Token(t, "orders", "payments"), body, "Idempotency-Key", key)
	}
	order := newOrderID()
	req := authorizeReq(order, 990, payments.CardApproved)
	key := newKey()
	first := call("/internal/payments/authorize", key, req)
	if first.Status != http.StatusCreated || first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("authorize: %d %s", first.Status, first.Body)
	}
	// The same body, spaced differently and with the card number typed
	// with spaces, is the same request: the same answer, byte for byte.
	spaced := `{ "card": {"cvc":"123","exp_year":` + strconv.Itoa(req.Card.ExpYear) + `,"exp_month":12,"number":"4242 4242 4242 4242"},
		"currency":"EUR", "amount_cents":990, "order_id":"` + order + `" }`
	for _, body := range []any{req, spaced} {
		again := call("/internal/payments/authorize", key, body)
		if again.Status != first.Status || !bytes.Equal(again.Body, first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %d %s (replayed %q), want %d %s", again.Status, again.Body, again.Header.Get("Idempotent-Replayed"), first.Status, first.Body)
		}
	}
	// The same key with another request is refused.
	other := req
	other.AmountCents = 991
	otherCard := req
	otherCard.Card.Number = "5555 5555 5555 4444"
	for name, r := range map[string]servicetest.Response{
		"another amount":  call("/internal/payments/authorize", key, other),
		"another card":    call("/internal/payments/authorize", key, otherCard),
		"another route":   call("/internal/payments/void", key, paymentsapi.VoidRequest{OrderID: order}),
		"another payment": call("/internal/payments/"+paymentIDOf(t, first)+"/capture", key, map[string]any{}),
	} {
		p := r.Problem(t)
		if r.Status != http.StatusUnprocessableEntity || !strings.HasSuffix(p.Type, "/idempotency-key-reuse") {
			t.Errorf("%s under a used key: %d %s", name, r.Status, r.Body)
		}
	}
	if list, _ := e.Orders.ByOrder(context.Background(), order); len(list) != 1 {
		t.Fatalf("%d payments for one key", len(list))
	}

	// A decline is an answer too: replayed, not asked again.
	dorder := newOrderID()
	dkey := newKey()
	d1 := call("/internal/payments/authorize", dkey, authorizeReq(dorder, 700, payments.CardInsufficientFunds))
	d2 := call("/internal/payments/authorize", dkey, authorizeReq(dorder, 700, payments.CardInsufficientFunds))
	if d1.Status != http.StatusPaymentRequired || d2.Status != d1.Status || !bytes.Equal(d1.Body, d2.Body) {
		t.Fatalf("declined twice under one key: %d %s / %d %s", d1.Status, d1.Body, d2.Status, d2.Body)
	}
	if list, _ := e.Orders.ByOrder(context.Background(), dorder); len(list) != 1 || list[0].Status != paymentsapi.StatusDeclined {
		t.Fatalf("a replayed decline made payments: %+v", list)
	}

	// Writes without a usable key are refused, and store nothing.
	for name, k := range map[string]string{"no key": "", "long key": strings.Repeat("k", 256), "key with a space": "a b"} {
		r := call("/internal/payments/authorize", k, authorizeReq(newOrderID(), 100, payments.CardApproved))
		if p := r.Problem(t); r.Status != http.StatusBadRequest || !strings.HasSuffix(p.Type, "/idempotency-key-required") {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	if _, err := e.Orders.Authorize(context.Background(), "", req); err == nil {
		t.Error("the client sent a write without a key")
	}
}

// paymentIDOf returns the id of the payment in an answer.
func paymentIDOf(t *testing.T, r servicetest.Response) string {
	var p paymentsapi.Payment
	r.JSON(t, &p)
	return p.ID
}

func testDeclines(t *testing.T, e *shop) {
	ctx := context.Background()
	order := newOrderID()
	for number, reason := range map[string]string{
		"4000 0000 0000 0002": paymentsapi.ReasonCardDeclined,
		"4000-0000-0000-9995": paymentsapi.ReasonInsufficientFunds,
	} {
		_, err := e.Orders.Authorize(ctx, newKey(), authorizeReq(order, 4_200, number))
		var d *paymentsapi.DeclinedError
		if !errors.Is(err, paymentsapi.ErrDeclined) || !errors.As(err, &d) || d.Reason != reason || d.PaymentID == "" {
			t.Fatalf("%s: %v (%+v)", number, err, d)
		}
		if p := problem.From(err); p == nil || p.Status != http.StatusPaymentRequired || !strings.HasSuffix(p.Type, "/payment-declined") || p.Extensions["reason"] != reason {
			t.Fatalf("%s: problem %+v", number, p)
		}
		if _, err := e.Orders.Capture(ctx, newKey(), d.PaymentID, 0); !errors.Is(err, paymentsapi.ErrNotAuthorized) {
			t.Errorf("capturing a declined payment: %v", err)
		}
		if _, err := e.Orders.Refund(ctx, newKey(), d.PaymentID, 1); !errors.Is(err, paymentsapi.ErrNotCaptured) {
			t.Errorf("refunding a declined payment: %v", err)
		}
	}
	// The customer tries a third card, which works.
	ok := mustAuthorize(t, e, newKey(), authorizeReq(order, 4_200, "5555555555554444"))
	list, err := e.Orders.ByOrder(ctx, order)
	if err != nil || len(list) != 3 {
		t.Fatalf("by order: %+v %v", list, err)
	}
	if list[0].Status != paymentsapi.StatusDeclined || list[0].DeclineReason == "" || list[2].ID != ok.ID {
		t.Fatalf("by order, oldest first: %+v", list)
	}
	for _, p := range list {
		checkPaymentLedger(t, e, p)
	}
}

func testVoid(t *testing.T, e *shop) {
	ctx := context.Background()
	order := newOrderID()
	held := mustAuthorize(t, e, newKey(), authorizeReq(order, 1_000, payments.CardApproved))
	taken := mustAuthorize(t, e, newKey(), authorizeReq(order, 2_000, payments.CardApproved))
	if _, err := e.Orders.Capture(ctx, newKey(), taken.ID, 2_000); err != nil {
		t.Fatal(err)
	}
	v, err := e.Orders.Void(ctx, newKey(), order)
	want := paymentsapi.VoidResult{OrderID: order, Voided: []string{held.ID}, Captured: []string{taken.ID}}
	if err != nil || !sameVoid(v, want) {
		t.Fatalf("void: %+v %v, want %+v", v, err, want)
	}
	if again, err := e.Orders.Void(ctx, newKey(), order); err != nil || !sameVoid(again, want) {
		t.Fatalf("voiding again: %+v %v", again, err)
	}
	_, err = e.Orders.Authorize(ctx, newKey(), authorizeReq(order, 1_000, payments.CardApproved))
	if !errors.Is(err, paymentsapi.ErrOrderVoided) || problem.From(err).Status != http.StatusConflict {
		t.Fatalf("authorizing a voided order: %v", err)
	}
	if _, err := e.Orders.Capture(ctx, newKey(), held.ID, 0); !errors.Is(err, paymentsapi.ErrPaymentVoided) {
		t.Fatalf("capturing a voided payment: %v", err)
	}
	if _, err := e.Orders.Refund(ctx, newKey(), held.ID, 1); !errors.Is(err, paymentsapi.ErrNotCaptured) {
		t.Fatalf("refunding a voided payment: %v", err)
	}
	// The captured payment is untouched and can still be refunded.
	r, err := e.Orders.Refund(ctx, newKey(), taken.ID, 500)
	if err != nil || r.RefundedCents != 500 {
		t.Fatalf("refunding the captured payment of a voided order: %+v %v", r, err)
	}
	list, _ := e.Orders.ByOrder(ctx, order)
	for _, p := range list {
		checkPaymentLedger(t, e, p)
	}

	// Voiding an order payments never saw leaves a tombstone: the
	// authorization that arrives late (a retry racing a compensation) is
	// refused.
	late := newOrderID()
	if v, err := e.Orders.Void(ctx, newKey(), late); err != nil || len(v.Voided)+len(v.Captured) != 0 {
		t.Fatalf("voiding an unknown order: %+v %v", v, err)
	}
	if _, err := e.Orders.Authorize(ctx, newKey(), authorizeReq(late, 1_000, payments.CardApproved)); !errors.Is(err, paymentsapi.ErrOrderVoided) {
		t.Fatalf("a late authorization: %v", err)
	}
	if list, _ := e.Orders.ByOrder(ctx, late); len(list) != 0 {
		t.Fatalf("a refused authorization left payments: %+v", list)
	}
}

func sameVoid(a, b paymentsapi.VoidResult) bool {
	return a.OrderID == b.OrderID && strings.Join(a.Voided, ",") == strings.Join(b.Voided, ",") &&
		strings.Join(a.Captured, ",") == strings.Join(b.Captured, ",")
}

func testAccess(t *testing.T, e *shop) {
	p := mustAuthorize(t, e, newKey(), authorizeReq(newOrderID(), 100, payments.CardApproved))
	internal := []struct{ method, path string }{
		{"POST", "/internal/payments/authorize"},
		{"POST", "/internal/payments/" + p.ID + "/capture"},
		{"POST", "/internal/payments/void"},
		{"POST", "/internal/payments/" + p.ID + "/refund"},
		{"GET", "/internal/payments?order_id=" + p.OrderID},
	}
	callers := []struct {
		name, token string
		status      int
	}{
		{"no credential", "", http.StatusUnauthorized},
		{"a customer's token", e.Customer, http.StatusUnauthorized},
		{"an admin's token", e.Admin, http.StatusUnauthorized},
		{"a forged orders credential", e.Forged(t, "orders", "payments"), http.StatusUnauthorized},
		{"payments' own credential", e.Token(t, "payments", "payments"), http.StatusForbidden},
		{"orders' credential made for inventory", e.Token(t, "orders", "inventory"), http.StatusUnauthorized},
	}
	for _, rt := range internal {
		for _, c := range callers {
			var body any
			if rt.method == "POST" {
				body = map[string]any{}
			}
			r := servicetest.Call(t, rt.method, e.URL+rt.path, c.token, body, "Idempotency-Key", newKey())
			if r.Status != c.status {
				t.Errorf("%s %s with %s: %d %s, want %d", rt.method, rt.path, c.name, r.Status, r.Body, c.status)
			}
			r.Problem(t)
		}
	}
	for _, path := range []string{"/api/payments", "/api/payments/" + p.ID, "/api/payments/ledger"} {
		for _, c := range []struct {
			name, token string
			status      int
		}{
			{"no token", "", http.StatusUnauthorized},
			{"a customer", e.Customer, http.StatusForbidden},
			{"orders' service credential", e.Token(t, "orders", "payments"), http.StatusUnauthorized},
		} {
			if r := servicetest.Call(t, "GET", e.URL+path, c.token, nil); r.Status != c.status {
				t.Errorf("GET %s as %s: %d %s, want %d", path, c.name, r.Status, r.Body, c.status)
			}
		}
	}
	// Nothing those calls sent changed the payment.
	if got, err := e.Orders.ByOrder(context.Background(), p.OrderID); err != nil || len(got) != 1 || got[0] != p {
		t.Fatalf("after refused calls: %+v %v", got, err)
	}
}

func testBadInput(t *testing.T, e *shop) {
	ctx := context.Background()
	order := "bad-" + newOrderID()
	captured := mustAuthorize(t, e, newKey(), authorizeReq(newOrderID(), 1_000, payments.CardApproved))
	if _, err := e.Orders.Capture(ctx, newKey(), captured.ID, 0); err != nil {
		t.Fatal(err)
	}
	held := mustAuthorize(t, e, newKey(), authorizeReq(newOrderID(), 1_000, payments.CardApproved))
	before := ledger(t, e, "")

	year := time.Now().Year()
	now := time.Now().UTC()
	lastMonth, lastMonthYear := int(now.Month())-1, year
	if lastMonth == 0 {
		lastMonth, lastMonthYear = 12, year-1
	}
	card := func(number string, month, yr int, cvc string) map[string]any {
		return map[string]any{"order_id": order, "amount_cents": 100, "currency": "EUR",
			"card": map[string]any{"number": number, "exp_month": month, "exp_year": yr, "cvc": cvc}}
	}
	amount := func(v string) string {
		return `{"order_id":"` + order + `","amount_cents":` + v + `,"currency":"EUR","card":{"number":"4242424242424242","exp_month":12,"exp_year":` + strconv.Itoa(year+1) + `,"cvc":"123"}}`
	}
	const authorize = "/internal/payments/authorize"
	capture := "/internal/payments/" + held.ID + "/capture"
	refund := "/internal/payments/" + captured.ID + "/refund"
	cases := []struct {
		name, method, path string
		body               any
		status             int
		field              string // a field the problem must name
		slug               string // the problem type it must be
	}{
		{"letters in the number", "POST", authorize, card("4242 4242 abcd 4242", 12, year+1, "123"), 422, "card.number", "validation"},
		{"number too short", "POST", authorize, card("4242 4242 42", 12, year+1, "123"), 422, "card.number", ""},
		{"number too long", "POST", authorize, card("4242 4242 4242 4242 4242", 12, year+1, "123"), 422, "card.number", ""},
		{"number failing luhn", "POST", authorize, card("4242 4242 4242 4241", 12, year+1, "123"), 422, "card.number", ""},
		{"unsupported brand", "POST", authorize, card("3530 1113 3330 0000", 12, year+1, "123"), 422, "card.number", ""},
		{"number as a JSON number", "POST", authorize, `{"order_id":"x","amount_cents":1,"currency":"EUR","card":{"number":4242424242424242,"exp_month":1,"exp_year":2040,"cvc":"123"}}`, 422, "card.number", ""},
		{"expired last month", "POST", authorize, card("4242424242424242", lastMonth, lastMonthYear, "123"), 422, "card.exp_year", ""},
		{"expired last year", "POST", authorize, card("4242424242424242", 12, year-1, "123"), 422, "card.exp_year", ""},
		{"month 13", "POST", authorize, card("4242424242424242", 13, year+1, "123"), 422, "card.exp_month", ""},
		{"two-digit year", "POST", authorize, card("4242424242424242", 12, 30, "123"), 422, "card.exp_year", ""},
		{"too far ahead", "POST", authorize, card("4242424242424242", 12, year+21, "123"), 422, "card.exp_year", ""},
		{"cvc of 2", "POST", authorize, card("4242424242424242", 12, year+1, "12"), 422, "card.cvc", ""},
		{"cvc of 4 on a visa", "POST", authorize, card("4242424242424242", 12, year+1, "1234"), 422, "card.cvc", ""},
		{"cvc of 3 on an amex", "POST", authorize, card("378282246310005", 12, year+1, "123"), 422, "card.cvc", ""},
		{"amount 0", "POST", authorize, amount("0"), 422, "amount_cents", ""},
		{"negative amount", "POST", authorize, amount("-100"), 422, "amount_cents", ""},
		{"amount over the max", "POST", authorize, amount("1000000000001"), 422, "amount_cents", ""},
		{"amount overflowing int64", "POST", authorize, amount("99999999999999999999"), 422, "amount_cents", ""},
		{"fractional amount", "POST", authorize, amount("10.5"), 422, "amount_cents", ""},
		{"lower-case currency", "POST", authorize, strings.Replace(amount("100"), `"EUR"`, `"eur"`, 1), 422, "currency", ""},
		{"missing order id", "POST", authorize, strings.Replace(amount("100"), `"order_id":"`+order+`",`, "", 1), 422, "order_id", ""},
		{"unknown field", "POST", authorize, strings.Replace(amount("100"), `"currency"`, `"save_card":true,"currency"`, 1), 422, "save_card", ""},
		{"unknown card field", "POST", authorize, strings.Replace(amount("100"), `"cvc"`, `"pin":"1234","cvc"`, 1), 422, "", ""},
		{"missing card", "POST", authorize, `{"order_id":"` + order + `","amount_cents":100,"currency":"EUR"}`, 422, "card.number", ""},
		{"malformed json", "POST", authorize, `{"order_id":`, 400, "", "bad-request"},
		{"trailing data", "POST", authorize, amount("100") + "{}", 400, "", ""},
		{"empty body", "POST", authorize, ``, 400, "", ""},
		{"oversized body", "POST", authorize, `{"order_id":"` + strings.Repeat("a", 300<<10) + `"}`, 413, "", ""},
		{"capture of another amount", "POST", capture, `{"amount_cents":999}`, 422, "amount_cents", ""},
		{"capture of 0", "POST", capture, `{"amount_cents":0}`, 422, "amount_cents", ""},
		{"capture of an unknown payment", "POST", "/internal/payments/01j0000000000000000000000a/capture", `{}`, 404, "", "not-found"},
		{"capture of a malformed id", "POST", "/internal/payments/nope/capture", `{}`, 404, "", "not-found"},
		{"refund of 0", "POST", refund, `{"amount_cents":0}`, 422, "amount_cents", ""},
		{"negative refund", "POST", refund, `{"amount_cents":-5}`, 422, "amount_cents", ""},
		{"refund overflowing int64", "POST", refund, `{"amount_cents":1e30}`, 422, "amount_cents", ""},
		{"refund past the capture", "POST", refund, `{"amount_cents":1001}`, 422, "amount_cents", "refund-exceeds-captured"},
		{"refund of an uncaptured payment", "POST", "/internal/payments/" + held.ID + "/refund", `{"amount_cents":1}`, 409, "", "payment-not-captured"},
		{"refund of an unknown payment", "POST", "/internal/payments/01j0000000000000000000000a/refund", `{"amount_cents":1}`, 404, "", ""},
		{"void without an order", "POST", "/internal/payments/void", `{}`, 422, "order_id", ""},
		{"void with a spaced order id", "POST", "/internal/payments/void", `{"order_id":"a b"}`, 422, "order_id", ""},
		{"list without an order", "GET", "/internal/payments", nil, 422, "order_id", ""},
		{"admin list limit 0", "GET", "/api/payments?limit=0", nil, 422, "limit", ""},
		{"admin list limit not a number", "GET", "/api/payments?limit=ten", nil, 422, "limit", ""},
		{"admin list bad page token", "GET", "/api/payments?page_token=!!", nil, 422, "page_token", ""},
		{"admin unknown payment", "GET", "/api/payments/01j0000000000000000000000a", nil, 404, "", ""},
		{"admin ledger of a bad id", "GET", "/api/payments/ledger?payment_id=x", nil, 422, "payment_id", ""},
		{"unknown route", "GET", "/internal/nothing", nil, 404, "", ""},
		{"wrong method", "DELETE", "/internal/payments/void", nil, 405, "", ""},
	}
	keys := map[string]string{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			token := e.Token(t, "orders", "payments")
			if strings.HasPrefix(c.path, "/api/") {
				token = e.Admin
			}
			keys[c.name] = newKey()
			r := servicetest.Call(t, c.method, e.URL+c.path, token, c.body, "Idempotency-Key", keys[c.name])
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			p := r.Problem(t)
			if p.Detail == "" && len(p.Errors) == 0 {
				t.Fatalf("a problem without a reason: %s", r.Body)
			}
			if c.field != "" && !namesField(p, c.field) {
				t.Fatalf("want an error on %q: %s", c.field, r.Body)
			}
			if c.slug != "" && !strings.HasSuffix(p.Type, "/"+c.slug) {
				t.Fatalf("want a %s problem: %s", c.slug, r.Body)
			}
			for _, n := range []string{"4242424242424242", "4242 4242 abcd", "4242 4242 4242 4241", "378282246310005"} {
				if bytes.Contains(r.Body, []byte(n)) {
					t.Fatalf("the answer echoes the card number: %s", r.Body)
				}
			}
		})
	}
	r := servicetest.Call(t, "POST", e.URL+authorize, e.Token(t, "orders", "payments"), "order=1", "Idempotency-Key", newKey(), "Content-Type", "text/plain")
	if r.Status != http.StatusUnsupportedMediaType {
		t.Fatalf("a form body: %d %s", r.Status, r.Body)
	}

	// Nothing was stored: no payment for the order, no ledger entry, and
	// the keys of refused requests are still free.
	if list, err := e.Orders.ByOrder(ctx, order); err != nil || len(list) != 0 {
		t.Fatalf("refused authorizations stored payments: %+v %v", list, err)
	}
	if after := ledger(t, e, ""); after.Entries != before.Entries {
		t.Fatalf("refused requests wrote %d ledger entries", after.Entries-before.Entries)
	}
	if got, _ := e.Orders.ByOrder(ctx, held.OrderID); got[0].Status != paymentsapi.StatusAuthorized {
		t.Fatalf("a refused capture changed the payment: %+v", got[0])
	}
	if _, err := e.Orders.Authorize(ctx, keys["month 13"], authorizeReq(order, 100, payments.CardApproved)); err != nil {
		t.Fatalf("the key of a refused request is taken: %v", err)
	}
}

func namesField(p problem.Problem, field string) bool {
	for _, fe := range p.Errors {
		if fe.Field == field {
			return true
		}
	}
	return false
}

func testSlowCard(t *testing.T, e *shop) {
	req := authorizeReq(newOrderID(), 100, "4000 0000 0000 0077")
	key := newKey()
	// The caller allows 300ms (as the platform client tells it): the
	// service stops waiting for the processor and says so, at once.
	for range 2 {
		start := time.Now()
		r := servicetest.Call(t, "POST", e.URL+"/internal/payments/authorize", e.Token(t, "orders", "payments"), req,
			"Idempotency-Key", key, "Request-Timeout-Ms", "300")
		if r.Status != http.StatusServiceUnavailable || time.Since(start) > 3*time.Second {
			t.Fatalf("slow card with a 300ms deadline: %d after %s: %s", r.Status, time.Since(start), r.Body)
		}
		if p := r.Problem(t); !strings.HasSuffix(p.Type, "/processor-timeout") {
			t.Fatalf("slow card: %s", r.Body)
		}
	}
	if list, _ := e.Orders.ByOrder(context.Background(), req.OrderID); len(list) != 0 {
		t.Fatalf("an unanswered authorization stored payments: %+v", list)
	}

	// A caller that hangs up frees the handler. This goes to the service
	// directly: the checking proxy would answer the vanished caller a 502
	// of its own.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	body, _ := json.Marshal(req)
	hr, _ := http.NewRequestWithContext(ctx, "POST", e.Direct+"/internal/payments/authorize", bytes.NewReader(body))
	hr.Header.Set("Authorization", "Bearer "+e.Token(t, "orders", "payments"))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Idempotency-Key", key)
	if resp, err := http.DefaultClient.Do(hr); err == nil {
		resp.Body.Close()
		t.Fatalf("the slow card answered %d within 200ms", resp.StatusCode)
	}
	deadline := time.Now().Add(2 * time.Second)
	for inFlight(t, e) > 1 { // the /metrics request itself
		if time.Now().After(deadline) {
			t.Fatalf("the handler kept working 2s after its caller left")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inFlight reads payments' http_server_requests_in_flight.
func inFlight(t *testing.T, e *shop) int {
	resp, err := http.Get(e.Direct + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "http_server_requests_in_flight "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	t.Fatal("no http_server_requests_in_flight metric")
	return 0
}

func testAdmin(t *testing.T, e *shop) {
	order := newOrderID()
	var made []string
	for range 3 {
		made = append(made, mustAuthorize(t, e, newKey(), authorizeReq(order, 300, payments.CardApproved)).ID)
	}
	// By order, newest first.
	var page paymentPage
	r := servicetest.Call(t, "GET", e.URL+"/api/payments?order_id="+order, e.Admin, nil)
	r.JSON(t, &page)
	if r.Status != 200 || len(page.Items) != 3 || page.Items[0].ID != made[2] || page.Items[2].ID != made[0] || page.NextPageToken != "" {
		t.Fatalf("by order: %d %s", r.Status, r.Body)
	}
	// Paging through everything meets every payment once.
	seen := map[string]bool{}
	token := ""
	for pages := 0; ; pages++ {
		r := servicetest.Call(t, "GET", e.URL+"/api/payments?limit=2&page_token="+token, e.Admin, nil)
		var page paymentPage
		r.JSON(t, &page)
		if r.Status != 200 || len(page.Items) > 2 {
			t.Fatalf("page %d: %d %s", pages, r.Status, r.Body)
		}
		for _, p := range page.Items {
			if seen[p.ID] {
				t.Fatalf("payment %s on two pages", p.ID)
			}
			seen[p.ID] = true
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	for _, id := range made {
		if !seen[id] {
			t.Fatalf("payment %s not listed", id)
		}
	}
	r = servicetest.Call(t, "GET", e.URL+"/api/payments/"+made[1], e.Admin, nil)
	var one paymentsapi.Payment
	r.JSON(t, &one)
	if r.Status != 200 || one.ID != made[1] || one.Last4 != "4242" {
		t.Fatalf("one payment: %d %s", r.Status, r.Body)
	}
	if l := ledger(t, e, ""); !l.Balanced || l.TotalCents != 0 || l.Entries == 0 {
		t.Fatalf("ledger: %+v", l)
	}
	// The document the checker uses is the one the service serves.
	r = servicetest.Call(t, "GET", e.URL+"/openapi.json", "", nil)
	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	r.JSON(t, &doc)
	if r.Status != 200 || doc.Paths["/internal/payments/authorize"] == nil || len(doc.Paths) != len(payments.OpenAPI().T.Paths.Map()) {
		t.Fatalf("/openapi.json: %d, %d paths", r.Status, len(doc.Paths))
	}
}

type paymentPage struct {
	Items         []paymentsapi.Payment `json:"items"`
	NextPageToken string                `json:"next_page_token"`
}

func testConcurrency(t *testing.T, e *shop) {
	ctx := context.Background()

	// Twenty captures of one payment under different keys: one wins.
	p := mustAuthorize(t, e, newKey(), authorizeReq(newOrderID(), 5_000, payments.CardApproved))
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() { _, errs[i] = e.Orders.Capture(ctx, newKey(), p.ID, 0) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, paymentsapi.ErrAlreadyCaptured):
			t.Errorf("a losing capture: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of 20 concurrent captures succeeded, want 1", won)
	}
	got, _ := e.Orders.ByOrder(ctx, p.OrderID)
	checkPaymentLedger(t, e, got[0])

	// The same authorization five times at once under one key: one payment.
	req := authorizeReq(newOrderID(), 777, payments.CardApproved)
	key := newKey()
	ids := make([]string, 5)
	for i := range ids {
		wg.Go(func() {
			p, err := e.Orders.Authorize(ctx, key, req)
			if err != nil {
				t.Errorf("authorize %d: %v", i, err)
			}
			ids[i] = p.ID
		})
	}
	wg.Wait()
	list, _ := e.Orders.ByOrder(ctx, req.OrderID)
	if len(list) != 1 {
		t.Fatalf("5 concurrent authorizations under one key made %d payments", len(list))
	}
	for i, id := range ids {
		if id != list[0].ID {
			t.Errorf("authorize %d answered payment %q, want %q", i, id, list[0].ID)
		}
	}

	// Ten concurrent refunds of 150 from a capture of 1000: six fit.
	p = mustAuthorize(t, e, newKey(), authorizeReq(newOrderID(), 1_000, payments.CardApproved))
	if _, err := e.Orders.Capture(ctx, newKey(), p.ID, 0); err != nil {
		t.Fatal(err)
	}
	refunded := make([]error, 10)
	for i := range refunded {
		wg.Go(func() { _, refunded[i] = e.Orders.Refund(ctx, newKey(), p.ID, 150) })
	}
	wg.Wait()
	ok := 0
	for _, err := range refunded {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, paymentsapi.ErrRefundExceeds):
			t.Errorf("a refused refund: %v", err)
		}
	}
	got, _ = e.Orders.ByOrder(ctx, p.OrderID)
	if ok != 6 || got[0].RefundedCents != 900 {
		t.Fatalf("%d refunds of 150 succeeded, refunded %d; want 6 and 900", ok, got[0].RefundedCents)
	}
	checkPaymentLedger(t, e, got[0])

	// Authorize and void racing for the same orders: whatever the order,
	// no authorization survives its order's void.
	orders := make([]string, 10)
	for i := range orders {
		orders[i] = newOrderID()
		wg.Go(func() {
			_, err := e.Orders.Authorize(ctx, newKey(), authorizeReq(orders[i], 100, payments.CardApproved))
			if err != nil && !errors.Is(err, paymentsapi.ErrOrderVoided) {
				t.Errorf("authorize racing a void: %v", err)
			}
		})
		wg.Go(func() {
			if _, err := e.Orders.Void(ctx, newKey(), orders[i]); err != nil {
				t.Errorf("void racing an authorize: %v", err)
			}
		})
	}
	wg.Wait()
	for _, o := range orders {
		list, _ := e.Orders.ByOrder(ctx, o)
		for _, p := range list {
			if p.Status != paymentsapi.StatusVoided {
				t.Errorf("order %s was voided, yet payment %s is %s", o, p.ID, p.Status)
			}
			checkPaymentLedger(t, e, p)
		}
	}
}

// testReplicas sends the same keyed writes to two replicas at once, as a
// caller retrying through a balancer does: they share only the database,
// so the stored key decides, and both answer the same.
func testReplicas(t *testing.T, e *shop) {
	ctx := context.Background()
	other, otherURL := e.replica(t)
	clients := []*paymentsapi.Client{e.Orders, other}
	for round := range 5 {
		req := authorizeReq(newOrderID(), int64(100+round), payments.CardApproved)
		key := newKey()
		var wg sync.WaitGroup
		got := make([]paymentsapi.Payment, 2)
		for i, c := range clients {
			wg.Go(func() {
				var err error
				if got[i], err = c.Authorize(ctx, key, req); err != nil {
					t.Errorf("replica %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if list, _ := e.Orders.ByOrder(ctx, req.OrderID); len(list) != 1 || got[0] != got[1] || got[0].ID != list[0].ID {
			t.Fatalf("round %d: the replicas answered %+v and %+v; the order has %+v", round, got[0], got[1], list)
		}
		// The same capture at both: captured once, the same answer twice.
		ckey := newKey()
		for i, c := range clients {
			wg.Go(func() {
				var err error
				if got[i], err = c.Capture(ctx, ckey, got[i].ID, 0); err != nil {
					t.Errorf("capture at replica %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if got[0] != got[1] || got[0].Status != paymentsapi.StatusCaptured {
			t.Fatalf("round %d: captures answered %+v and %+v", round, got[0], got[1])
		}
		checkPaymentLedger(t, e, got[0])
	}
	// A replayed answer is byte for byte the first, whichever replica
	// answers it.
	req := authorizeReq(newOrderID(), 4_321, payments.CardDeclined)
	key := newKey()
	a := servicetest.Call(t, "POST", e.URL+"/internal/payments/authorize", e.Token(t, "orders", "payments"), req, "Idempotency-Key", key)
	b := servicetest.Call(t, "POST", otherURL+"/internal/payments/authorize", e.Token(t, "orders", "payments"), req, "Idempotency-Key", key)
	if a.Status != http.StatusPaymentRequired || b.Status != a.Status || !bytes.Equal(a.Body, b.Body) || b.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("a decline replayed by the other replica: %d %s / %d %s", a.Status, a.Body, b.Status, b.Body)
	}
}

// exercise runs many operations of every kind.
func exercise(t *testing.T, e *shop) {
	ctx := context.Background()
	for i := range 30 {
		order := newOrderID()
		amount := int64(1_000 + 37*i)
		switch i % 6 {
		case 0: // approved, left authorized
			mustAuthorize(t, e, newKey(), authorizeReq(order, amount, payments.CardApproved))
		case 1: // declined
			_, err := e.Orders.Authorize(ctx, newKey(), authorizeReq(order, amount, payments.CardDeclined))
			if !errors.Is(err, paymentsapi.ErrDeclined) {
				t.Fatalf("decline: %v", err)
			}
		case 2: // captured
			p := mustAuthorize(t, e, newKey(), authorizeReq(order, amount, "5555 5555 5555 4444"))
			if _, err := e.Orders.Capture(ctx, newKey(), p.ID, amount); err != nil {
				t.Fatal(err)
			}
		case 3: // captured, partly refunded twice
			p := mustAuthorize(t, e, newKey(), authorizeReq(order, amount, payments.CardApproved))
			if _, err := e.Orders.Capture(ctx, newKey(), p.ID, 0); err != nil {
				t.Fatal(err)
			}
			for _, part := range []int64{amount / 3, amount / 4} {
				if _, err := e.Orders.Refund(ctx, newKey(), p.ID, part); err != nil {
					t.Fatal(err)
				}
			}
		case 4: // captured, refunded in full
			p := mustAuthorize(t, e, newKey(), authorizeReq(order, amount, "3782 822463 10005"))
			if _, err := e.Orders.Capture(ctx, newKey(), p.ID, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Orders.Refund(ctx, newKey(), p.ID, amount); err != nil {
				t.Fatal(err)
			}
		case 5: // two authorized, one captured, the order voided
			mustAuthorize(t, e, newKey(), authorizeReq(order, amount, payments.CardApproved))
			p := mustAuthorize(t, e, newKey(), authorizeReq(order, amount+1, payments.CardApproved))
			if _, err := e.Orders.Capture(ctx, newKey(), p.ID, 0); err != nil {
				t.Fatal(err)
			}
			if v, err := e.Orders.Void(ctx, newKey(), order); err != nil || len(v.Voided) != 1 || len(v.Captured) != 1 {
				t.Fatalf("void: %+v %v", v, err)
			}
		}
	}
}

// allPayments pages through the admin list.
func allPayments(t *testing.T, e *shop) []paymentsapi.Payment {
	var all []paymentsapi.Payment
	token := ""
	for {
		r := servicetest.Call(t, "GET", e.URL+"/api/payments?limit=100&page_token="+token, e.Admin, nil)
		var page paymentPage
		r.JSON(t, &page)
		all = append(all, page.Items...)
		if token = page.NextPageToken; token == "" {
			return all
		}
	}
}

// checkBooks checks the whole ledger against every payment: it balances,
// each payment's entries match its amounts, every entry belongs to a
// payment, and the accounts' balances are the sums of what the payments
// say.
func checkBooks(t *testing.T, e *shop) {
	var held, revenue, entries int64
	for _, p := range allPayments(t, e) {
		l := checkPaymentLedger(t, e, p)
		entries += l.Entries
		switch p.Status {
		case paymentsapi.StatusAuthorized:
			held += p.AmountCents
		case paymentsapi.StatusCaptured:
			revenue += p.CapturedCents - p.RefundedCents
		}
	}
	l := ledger(t, e, "")
	if !l.Balanced || l.TotalCents != 0 {
		t.Fatalf("the books do not balance: %+v", l)
	}
	if got := balance(l, paymentsapi.AccountAuthorizationsHeld); got != held {
		t.Errorf("authorizations_held = %d, the payments hold %d", got, held)
	}
	if got := balance(l, paymentsapi.AccountMerchantRevenue); got != revenue {
		t.Errorf("merchant_revenue = %d, the payments kept %d", got, revenue)
	}
	if got := balance(l, paymentsapi.AccountCustomerCard); got != -(held + revenue) {
		t.Errorf("customer_card = %d, want %d", got, -(held + revenue))
	}
	if l.Entries != entries {
		t.Errorf("the ledger has %d entries, the payments %d", l.Entries, entries)
	}
}

// checkEvents checks the events against the payments: one
// payments.captured per captured payment, payments.refunded adding up to
// its refunds, one payments.failed per decline, each event once.
func checkEvents(t *testing.T, e *shop) {
	all := allPayments(t, e)
	var wantCaptured, wantFailed int
	var wantRefunded int64
	for _, p := range all {
		switch p.Status {
		case paymentsapi.StatusCaptured:
			wantCaptured++
			wantRefunded += p.RefundedCents
		case paymentsapi.StatusDeclined:
			wantFailed++
		}
	}
	// Wait for the relay to publish them all.
	evs := e.Events(t, "payments", func(evs []events.Event) bool {
		var c, f int
		var r int64
		for _, ev := range evs {
			var b paymentsapi.PaymentRefunded
			switch {
			case ev.Type == "payments.captured":
				c++
			case ev.Type == "payments.failed":
				f++
			case ev.Type == b.EventType() && ev.Decode(&b) == nil:
				r += b.AmountCents
			}
		}
		return c >= wantCaptured && f >= wantFailed && r >= wantRefunded
	})
	ids := map[string]bool{}
	captured := map[string]int{}
	refunded := map[string]int64{}
	failed := map[string]int{}
	for _, ev := range evs {
		if ids[ev.ID] {
			t.Errorf("event %s published twice", ev.ID)
		}
		ids[ev.ID] = true
		switch ev.Type {
		case "payments.captured":
			var b paymentsapi.PaymentCaptured
			if err := ev.Decode(&b); err != nil {
				t.Fatal(err)
			}
			captured[b.PaymentID]++
		case "payments.refunded":
			var b paymentsapi.PaymentRefunded
			if err := ev.Decode(&b); err != nil {
				t.Fatal(err)
			}
			refunded[b.PaymentID] += b.AmountCents
			if b.RefundedCentsTotal < b.AmountCents || b.Currency != "EUR" || b.OrderID == "" {
				t.Errorf("refund event %+v", b)
			}
		case "payments.failed":
			var b paymentsapi.PaymentFailed
			if err := ev.Decode(&b); err != nil {
				t.Fatal(err)
			}
			failed[b.PaymentID]++
			if b.Reason != paymentsapi.ReasonCardDeclined && b.Reason != paymentsapi.ReasonInsufficientFunds || b.AmountCents <= 0 || b.OrderID == "" {
				t.Errorf("failed event %+v", b)
			}
		default:
			t.Errorf("unexpected event type %s", ev.Type)
		}
	}
	for _, p := range all {
		wantCaptured, wantFailed := 0, 0
		if p.Status == paymentsapi.StatusCaptured {
			wantCaptured = 1
		}
		if p.Status == paymentsapi.StatusDeclined {
			wantFailed = 1
		}
		if captured[p.ID] != wantCaptured || failed[p.ID] != wantFailed || refunded[p.ID] != p.RefundedCents {
			t.Errorf("payment %s (%s, refunded %d): %d captured, %d failed events, %d refunded by events",
				p.ID, p.Status, p.RefundedCents, captured[p.ID], failed[p.ID], refunded[p.ID])
		}
	}
}
