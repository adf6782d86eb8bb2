package inventory

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/microshop/microshop/internal/platform/httpjson"
)

// The fuzz targets feed arbitrary bodies through the strict decoder and
// the validators: nothing may panic, a refusal is always a 4xx, and
// whatever passes satisfies every rule the store relies on. With their
// seeds they run as ordinary tests; `go test -fuzz FuzzReserveRequest`
// explores further.

func decodes(t *testing.T, body string, v any) bool {
	t.Helper()
	if p := httpjson.DecodeBytes(strings.NewReader(body), v); p != nil {
		if p.Status < 400 || p.Status > 499 {
			t.Fatalf("decode answered %d for %q", p.Status, body)
		}
		return false
	}
	return true
}

func FuzzNewProduct(f *testing.F) {
	for _, s := range []string{
		`{"sku":"MUG-1","name":"Mug","description":"A mug.","price_cents":1400,"currency":"USD","stock":10}`,
		`{"sku":"MUG-1","name":"Mug","price_cents":1000000000,"currency":"USD"}`,
		`{"sku":"MUG-1","name":"Mug","price_cents":1000000001,"currency":"USD"}`,
		`{"sku":"MUG-1","name":"Mug","price_cents":99999999999999999999,"currency":"USD"}`,
		`{"sku":"MUG-1","name":"Mug","price_cents":1e30,"currency":"USD"}`,
		`{"sku":"MUG-1","name":"Mug","price_cents":-1,"currency":"usd","stock":-1}`,
		`{"sku":"mug 1","name":"\u0000","price_cents":"1","currency":"USD"}`,
		`{"sku":"","name":"","price_cents":0,"currency":""}`,
		`{"sku":"ÄÖ","name":"\ud800","price_cents":1,"currency":"ÜSD"}`,
		`{"sku":"A","name":"B","price_cents":1,"currency":"USD","extra":1}`,
		`[]`, `null`, `{}{}`, `"x"`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var p NewProduct
		if !decodes(t, body, &p) || len(p.Valid()) > 0 {
			return
		}
		if skuProblem(p.SKU) != "" || !skuPattern.MatchString(p.SKU) || len(p.SKU) > maxSKU {
			t.Fatalf("accepted sku %q", p.SKU)
		}
		if p.PriceCents < 1 || p.PriceCents > maxPriceCents || p.Stock < 0 || p.Stock > maxStock {
			t.Fatalf("accepted price %d, stock %d", p.PriceCents, p.Stock)
		}
		if len(p.Currency) != 3 || strings.ToUpper(p.Currency) != p.Currency {
			t.Fatalf("accepted currency %q", p.Currency)
		}
		if !utf8.ValidString(p.Name) || strings.TrimSpace(p.Name) == "" || utf8.RuneCountInString(p.Name) > maxName ||
			!utf8.ValidString(p.Description) || utf8.RuneCountInString(p.Description) > maxDescription {
			t.Fatalf("accepted name %q or description of %d bytes", p.Name, len(p.Description))
		}
	})
}

func FuzzProductUpdate(f *testing.F) {
	for _, s := range []string{
		`{"name":"New name"}`, `{"price_cents":5}`, `{"description":""}`, `{}`, `{"name":null}`,
		`{"currency":"EUR"}`, `{"price_cents":0}`, `{"name":"  "}`, `{"price_cents":1.5}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var u ProductUpdate
		if !decodes(t, body, &u) || len(u.Valid()) > 0 {
			return
		}
		if u.Name == nil && u.Description == nil && u.PriceCents == nil {
			t.Fatal("accepted an update that changes nothing")
		}
		if (u.Name != nil && nameProblem(*u.Name) != "") || (u.PriceCents != nil && priceProblem(*u.PriceCents) != "") ||
			(u.Description != nil && descriptionProblem(*u.Description) != "") {
			t.Fatalf("accepted %+v", u)
		}
	})
}

func FuzzRestock(f *testing.F) {
	for _, s := range []string{`{"quantity":1}`, `{"quantity":0}`, `{"quantity":1000001}`, `{"quantity":-1}`, `{"quantity":1e3}`, `{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var r Restock
		if decodes(t, body, &r) && len(r.Valid()) == 0 && (r.Quantity < 1 || r.Quantity > maxRestock) {
			t.Fatalf("accepted quantity %d", r.Quantity)
		}
	})
}

func FuzzReserveRequest(f *testing.F) {
	for _, s := range []string{
		`{"order_id":"01jabc","lines":[{"sku":"MUG-1","quantity":2},{"sku":"PEN","quantity":1000}]}`,
		`{"order_id":"o","lines":[{"sku":"A","quantity":1},{"sku":"A","quantity":1}]}`,
		`{"order_id":"o","lines":[{"sku":"A","quantity":0}]}`,
		`{"order_id":"o","lines":[{"sku":"A","quantity":1001}]}`,
		`{"order_id":"o","lines":[{"sku":"A","quantity":1e99}]}`,
		`{"order_id":"o","lines":[]}`, `{"order_id":"o"}`, `{"lines":[{"sku":"A","quantity":1}]}`,
		`{"order_id":"a/b","lines":[{"sku":"A B","quantity":1}]}`,
		`{"order_id":"o","lines":[{"sku":"A","quantity":1,"price_cents":1}]}`,
		`{"order_id":"o","lines":[null]}`, `{"order_id":"o","lines":{}}`,
		`{"order_id":"o","lines":[` + strings.Repeat(`{"sku":"A","quantity":1},`, 100) + `{"sku":"B","quantity":1}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var r ReserveRequest
		if !decodes(t, body, &r) || len(r.Valid()) > 0 {
			return
		}
		if orderIDProblem(r.OrderID) != "" || len(r.Lines) < 1 || len(r.Lines) > maxLines {
			t.Fatalf("accepted order %q with %d lines", r.OrderID, len(r.Lines))
		}
		seen := map[string]bool{}
		for _, l := range r.Lines {
			if skuProblem(l.SKU) != "" || seen[l.SKU] || l.Quantity < 1 || l.Quantity > maxLineQty {
				t.Fatalf("accepted line %+v", l)
			}
			seen[l.SKU] = true
		}
	})
}

func FuzzListQuery(f *testing.F) {
	for _, s := range []string{"", "limit=5", "limit=0", "limit=101", "limit=x", "q=mug&limit=100",
		"page_token=TVVHLTE", "page_token=!!", "page_token=YSBi", "q=%ff", "limit=9223372036854775808"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, after, limit, errs := listQuery(v)
		if len(errs) > 0 {
			return
		}
		if limit < 1 || limit > maxLimit || (after != "" && skuProblem(after) != "") || utf8.RuneCountInString(q) > maxQuery ||
			!utf8.ValidString(q) || strings.ContainsFunc(q, unicode.IsControl) {
			t.Fatalf("accepted %q: q %q, after %q, limit %d", raw, q, after, limit)
		}
	})
}
