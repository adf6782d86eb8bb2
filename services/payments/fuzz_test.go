package payments

import (
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/services/payments/contract"
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
		var req contract.AuthorizeRequest
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
		if a.amount < contract.MinAmountCents || a.amount > contract.MaxAmountCents || currencyProblem(a.currency) != "" ||
			orderIDProblem(a.orderID) != "" || !luhn(a.card.number) || a.card.Brand() == "" || len(a.card.Last4()) != 4 {
			t.Fatalf("an invalid request was accepted: %+v", req)
		}
	})
}

// FuzzParseNumber: the parser never panics, and what it accepts is 12-19
// digits passing Luhn, made of the input's digits in order.
func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{CardApproved, "4242 4242 4242 4242", "4242-4242-4242-4242", "", "abc", "4242424242424241",
		"1234567890123", strings.Repeat("0", 19), strings.Repeat("0", 20), "4\u00a0242", "٤٢٤٢"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parseNumber(in)
		if err != nil {
			if got != "" {
				t.Fatalf("an error and a number: %q", got)
			}
			return
		}
		if len(got) < 12 || len(got) > 19 || !luhn(got) || got != onlyDigits(in) {
			t.Fatalf("parseNumber(%q) = %q", in, got)
		}
		if strings.Trim(in, "0123456789 -") != "" {
			t.Fatalf("parseNumber accepted %q, which holds other characters", in)
		}
	})
}

// FuzzLuhn checks luhn against a second, plainly written implementation,
// and that changing any one digit breaks a valid number.
func FuzzLuhn(f *testing.F) {
	for _, s := range []string{CardApproved, CardDeclined, "79927398713", "0", "", "x", "12345"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := luhn(s)
		if want := luhnReference(s); got != want {
			t.Fatalf("luhn(%q) = %v, the reference says %v", s, got, want)
		}
		if !got || len(s) > 30 {
			return
		}
		for i := range len(s) {
			b := []byte(s)
			b[i] = '0' + (b[i]-'0'+1)%10
			if luhn(string(b)) {
				t.Fatalf("changing digit %d of %q kept it valid", i, s)
			}
		}
	})
}

func luhnReference(s string) bool {
	if s == "" {
		return false
	}
	var sum int
	double := false
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		d := int(s[i] - '0')
		if double {
			d = d*2%10 + d*2/10
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
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
