package orders

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/httpjson"
)

// FuzzPlaceOrder feeds arbitrary bodies through the strict decoder and
// PlaceOrder.Valid, as POST /api/orders does: neither may panic, a body
// is either refused (a 4xx from the decoder, or a problem for each bad
// field) or is an order with 1 to 100 lines of 1 to 1000 units each, paid
// with a card that payments' Check accepts.
func FuzzPlaceOrder(f *testing.F) {
	year := time.Now().Year()
	body := func(lines, card string) string {
		return `{"lines":[` + lines + `],"shipping_address":{"name":"Ada Lovelace","street":"1 Analytical Way",` +
			`"city":"London","postal_code":"N1 7AA","country":"GB"},"card":` + card + `}`
	}
	card := func(number string, month, year int, cvc string) string {
		return fmt.Sprintf(`{"number":%q,"exp_month":%d,"exp_year":%d,"cvc":%q}`, number, month, year, cvc)
	}
	good := card("4242 4242 4242 4242", 12, year+1, "123")
	many := strings.Repeat(`{"sku":"a","quantity":1},`, 100) + `{"sku":"b","quantity":1}`
	for _, s := range []string{
		body(`{"sku":"tea","quantity":1},{"sku":"cup","quantity":1000}`, good),
		body(`{"sku":"tea","quantity":2}`, card("3782-822463-10005", 1, year+2, "1234")),
		body(`{"sku":"tea","quantity":2}`, card("2223 0031 2200 3222", 12, year, "123")),
		body(`{"sku":"tea","quantity":0},{"sku":"tea","quantity":1001}`, good),
		body(`{"sku":"tea","quantity":1e30}`, good),
		body(`{"sku":"tea","quantity":-1}`, good),
		body(`{"sku":"bad sku","quantity":1}`, good),
		body(many, good),
		body(``, good),
		body(`{"sku":"tea","quantity":1}`, card("4242 4242 4242 4241", 13, 26, "12")),
		body(`{"sku":"tea","quantity":1}`, card("3530 1113 3330 0000", 1, year+1, "123")),
		body(`{"sku":"tea","quantity":1}`, card("4242424242424242", 1, year-1, "123")),
		body(`{"sku":"tea","quantity":1}`, card("4242424242424242", 1, year+21, "123")),
		body(`{"sku":"tea","quantity":1}`, `{"number":4242424242424242}`),
		body(`{"sku":"tea","quantity":1}`, `{"number":"4242424242424242","pin":"1234"}`),
		body(`{"sku":"tea","quantity":1}`, `{}`),
		`{"lines":[{"sku":"tea","quantity":1}],"extra":true}`,
		`{}`, `[]`, `null`, `{}{}`, `{"lines":`, `{"lines":[{"sku":"\u0000","quantity":1}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req PlaceOrder
		if p := httpjson.DecodeBytes(strings.NewReader(body), &req); p != nil {
			if p.Status < 400 || p.Status > 499 {
				t.Fatalf("decode answered %d", p.Status)
			}
			return
		}
		if errs := req.Valid(); len(errs) > 0 {
			for _, e := range errs {
				if e.Field == "" || e.Reason == "" {
					t.Fatalf("a field error without field or reason: %+v", e)
				}
			}
			return
		}
		if len(req.Lines) < 1 || len(req.Lines) > maxLines {
			t.Fatalf("an order with %d lines passed", len(req.Lines))
		}
		for _, l := range req.Lines {
			if l.Quantity < 1 || l.Quantity > maxQuantity {
				t.Fatalf("a line of %d units passed", l.Quantity)
			}
		}
		if _, errs := req.Card.Check(time.Now()); len(errs) > 0 {
			t.Fatalf("a card payments refuses passed: %v", errs)
		}
	})
}
