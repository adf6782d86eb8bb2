package payments

import (
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// FuzzAuthorizeRequest feeds arbitrary bodies through the strict decoder
// and the validator: neither may panic, a body is either refused with a
// 4xx or yields an authorization whose every field holds, and no reason
// given for a refusal echoes the card number.
func FuzzAuthorizeRequest(f *testing.F) {
	for _, s := range []string{
		`{"order_id":"o1","amount_cents":1999,"currency":"EUR","card":{"number":"4242 4242 4242 4242","exp_month":12,"exp_year":2030,"cvc":"123"}}`,
		`{"order_id":"o1","amount_cents":1999,"currency":"EUR","card":{"number":"3782-822463-10005","exp_month":1,"exp_year":2031,"cvc":"1234"}}`,
		`{"order_id":"o1","amount_cents":0,"currency":"eur","card":{"number":"4242424242424241","exp_month":13,"exp_year":26,"cvc":"12"}}`,
		`{"order_id":"o1","amount_cents":99999999999999999999,"currency":"EUR","card":{}}`,
		`{"order_id":"o1","amount_cents":-5,"currency":"EUR","card":{"number":4242}}`,
		`{"order_id":"o1","amount_cents":1.5}`,
		`{"order_id":"o1","extra":true}`,
		`{"card":{"number":"4242424242424242","pin":"1234"}}`,
		`{}`, `[]`, `null`, `{}{}`, `{"order_id":"\u0000"}`, `{"order_id":"` + strings.Repeat("x", 200) + `"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req paymentsapi.AuthorizeRequest
		if p := httpjson.DecodeBytes(strings.NewReader(body), &req); p != nil {
			if p.Status < 400 || p.Status > 499 {
				t.Fatalf("decode answered %d", p.Status)
			}
			return
		}
		_ = fingerprintOf(req) // must not panic either
		a, errs := newAuthorization(req, testNow)
		if len(errs) > 0 {
			for _, e := range errs {
				if e.Field == "" || e.Reason == "" {
					t.Fatalf("a field error without field or reason: %+v", e)
				}
				if digits := onlyDigits(req.Card.Number); len(digits) >= 8 && strings.Contains(e.Reason, digits) {
					t.Fatalf("the reason %q echoes the card number", e.Reason)
				}
			}
			return
		}
		if a.amount < paymentsapi.MinAmountCents || a.amount > paymentsapi.MaxAmountCents || validation.Currency(a.currency) != "" ||
			orderIDProblem(a.orderID) != "" || !checksAgain(a.card, req.Card) || a.card.Brand() == "" || len(a.card.Last4()) != 4 {
			t.Fatalf("an invalid request was accepted: %+v", req)
		}
	})
}

// checksAgain reports whether the number the processor gets, digits only,
// passes the contract's check again (12-19 digits, Luhn, an accepted
// brand) and comes out as the same card.
func checksAgain(c paymentsapi.Checked, in paymentsapi.Card) bool {
	again, errs := paymentsapi.Card{Number: c.Number(), ExpMonth: in.ExpMonth, ExpYear: in.ExpYear, CVC: in.CVC}.Check(testNow)
	return len(errs) == 0 && again == c
}

func onlyDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
