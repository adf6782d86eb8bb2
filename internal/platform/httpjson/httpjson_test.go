package httpjson_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/problem"
)

type address struct {
	City    string `json:"city"`
	Country string `json:"country"`
}

type order struct {
	SKU      string            `json:"sku"`
	Quantity int64             `json:"quantity"`
	Price    uint32            `json:"price"`
	Ratio    float64           `json:"ratio"`
	Gift     bool              `json:"gift"`
	Tags     []string          `json:"tags"`
	Address  *address          `json:"address"`
	Meta     map[string]string `json:"meta"`
}

// Valid makes order a Validator.
func (o *order) Valid() []problem.FieldError {
	var errs []problem.FieldError
	if o.SKU == "" {
		errs = append(errs, problem.FieldError{Field: "sku", Reason: "required"})
	}
	if o.Quantity < 1 {
		errs = append(errs, problem.FieldError{Field: "quantity", Reason: "must be at least 1"})
	}
	return errs
}

func request(body, contentType string) (*httptest.ResponseRecorder, *http.Request) {
	r := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return httptest.NewRecorder(), r
}

func TestDecodeAccepts(t *testing.T) {
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", ""} {
		w, r := request(`{"sku":"A-1","quantity":2,"tags":["x"],"address":{"city":"Paris"}}  `+"\n", ct)
		var o order
		if p := httpjson.Decode(w, r, &o); p != nil {
			t.Fatalf("Content-Type %q: Decode = %v, want nil", ct, p)
		}
		if o.SKU != "A-1" || o.Quantity != 2 || len(o.Tags) != 1 || o.Address == nil || o.Address.City != "Paris" {
			t.Errorf("decoded %+v", o)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, body, contentType string
		status                  int
		field                   string // the field a 422 must name
	}{
		{name: "malformed", body: `{"sku":`, status: 400},
		{name: "not json", body: `sku=A-1`, status: 400},
		{name: "bad token inside", body: `{"sku": nope}`, status: 400},
		{name: "empty body", body: ``, status: 400},
		{name: "only whitespace", body: " \n\t", status: 400},
		{name: "two values", body: `{}{}`, status: 400},
		{name: "trailing garbage", body: `{} x`, status: 400},
		{name: "trailing array", body: `{"sku":"a","quantity":1}[]`, status: 400},
		{name: "array instead of object", body: `[1,2]`, status: 400},
		{name: "number instead of object", body: `42`, status: 400},
		{name: "unknown field", body: `{"sku":"a","quantity":1,"admin":true}`, status: 422, field: "admin"},
		{name: "unknown nested field", body: `{"sku":"a","quantity":1,"address":{"planet":"Mars"}}`, status: 422, field: "planet"},
		{name: "string for int", body: `{"sku":"a","quantity":"2"}`, status: 422, field: "quantity"},
		{name: "int for string", body: `{"sku":5,"quantity":1}`, status: 422, field: "sku"},
		{name: "object for bool", body: `{"sku":"a","quantity":1,"gift":{}}`, status: 422, field: "gift"},
		{name: "string for array", body: `{"sku":"a","quantity":1,"tags":"x"}`, status: 422, field: "tags"},
		{name: "wrong nested type", body: `{"sku":"a","quantity":1,"address":{"city":7}}`, status: 422, field: "address.city"},
		{name: "int64 overflow", body: `{"sku":"a","quantity":1e30}`, status: 422, field: "quantity"},
		{name: "int64 overflow digits", body: `{"sku":"a","quantity":99999999999999999999999}`, status: 422, field: "quantity"},
		{name: "fraction for int", body: `{"sku":"a","quantity":1.5}`, status: 422, field: "quantity"},
		{name: "negative for uint", body: `{"sku":"a","quantity":1,"price":-1}`, status: 422, field: "price"},
		{name: "uint32 overflow", body: `{"sku":"a","quantity":1,"price":4294967296}`, status: 422, field: "price"},
		{name: "float overflow", body: `{"sku":"a","quantity":1,"ratio":1e400}`, status: 422, field: "ratio"},
		{name: "validator", body: `{"quantity":0}`, status: 422, field: "sku"},
		{name: "text/plain", body: `{"sku":"a","quantity":1}`, contentType: "text/plain", status: 415},
		{name: "form", body: `sku=a`, contentType: "application/x-www-form-urlencoded", status: 415},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			w, r := request(tc.body, ct)
			var o order
			p := httpjson.Decode(w, r, &o)
			if p == nil {
				t.Fatalf("Decode(%q) accepted the body: %+v", tc.body, o)
			}
			if p.Status != tc.status {
				t.Errorf("Decode(%q) status = %d (%s), want %d", tc.body, p.Status, p.Detail, tc.status)
			}
			if p.Title == "" || p.Type == "" || p.Detail == "" {
				t.Errorf("problem lacks type, title or detail: %+v", p)
			}
			if tc.field != "" && !hasField(p, tc.field) {
				t.Errorf("Decode(%q) errors = %+v, want one naming %q", tc.body, p.Errors, tc.field)
			}
		})
	}
}

func hasField(p *problem.Problem, field string) bool {
	for _, e := range p.Errors {
		if e.Field == field && e.Reason != "" {
			return true
		}
	}
	return false
}

func TestDecodeValidatorReportsEveryField(t *testing.T) {
	w, r := request(`{}`, "application/json")
	p := httpjson.Decode(w, r, &order{})
	if p == nil || p.Status != http.StatusUnprocessableEntity {
		t.Fatalf("Decode = %v, want a 422", p)
	}
	if !hasField(p, "sku") || !hasField(p, "quantity") {
		t.Errorf("errors = %+v, want sku and quantity", p.Errors)
	}
}

func TestDecodeOversizedBody(t *testing.T) {
	big := `{"sku":"` + strings.Repeat("a", httpjson.MaxBody) + `","quantity":1}`
	w, r := request(big, "application/json")
	p := httpjson.Decode(w, r, &order{})
	if p == nil || p.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("Decode of a %d-byte body = %v, want a 413", len(big), p)
	}
}

// A body whose one value fits but whose trailing bytes pass the limit is
// still too large, not "malformed".
func TestDecodeOversizedTrailer(t *testing.T) {
	big := `{"sku":"a","quantity":1}` + strings.Repeat(" ", httpjson.MaxBody)
	w, r := request(big, "application/json")
	p := httpjson.Decode(w, r, &order{})
	if p == nil || p.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("Decode = %v, want a 413", p)
	}
}

func TestDecodeBytesTooLarge(t *testing.T) {
	rd := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(`{"sku":"abcdefghijkl"}`)), 8)
	p := httpjson.DecodeBytes(rd, &order{})
	if p == nil || p.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("DecodeBytes = %v, want a 413", p)
	}
	if !strings.Contains(p.Detail, "8 bytes") {
		t.Errorf("detail %q should name the limit", p.Detail)
	}
}

func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	httpjson.Write(w, http.StatusCreated, httpjson.List[string]{Items: []string{"a"}})
	if w.Code != http.StatusCreated {
		t.Errorf("status = %d, want 201", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if got := strings.TrimSpace(w.Body.String()); got != `{"items":["a"]}` {
		t.Errorf("body = %s", got)
	}
}

// FuzzDecodeBytes checks that no body makes the decoder panic, and that
// every refusal is a client error. Its seeds run with plain `go test`.
func FuzzDecodeBytes(f *testing.F) {
	for _, s := range []string{
		``, ` `, `{}`, `null`, `[]`, `"x"`, `1e30`, `{}{}`, `{} x`, `{`, `}`, `{"sku":`,
		`{"sku":"a","quantity":2}`,
		`{"quantity":1e30}`, `{"quantity":-1e400}`, `{"quantity":99999999999999999999}`,
		`{"price":-1}`, `{"ratio":1e999}`, `{"tags":[1,2,{}]}`, `{"meta":{"a":1}}`,
		`{"address":{"city":["x"]}}`, `{"address":null}`, `{"address":{"planet":1}}`,
		`{"unknown":1}`, `{"sku":"\ud800"}`, `{"sku":"\u0000"}`, "{\"sku\":\"\xff\"}",
		`{"sku":"a","sku":"b"}`, `[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]`,
		strings.Repeat(`{"address":`, 100) + strings.Repeat(`}`, 100),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var o order
		p := httpjson.DecodeBytes(bytes.NewReader(body), &o)
		if p == nil {
			// Accepted bodies are exactly one valid JSON value.
			if !json.Valid(body) {
				t.Fatalf("DecodeBytes accepted invalid JSON %q", body)
			}
			return
		}
		if p.Status < 400 || p.Status > 499 {
			t.Fatalf("DecodeBytes(%q) status = %d (%s), want 4xx", body, p.Status, p.Detail)
		}
		if p.Type == "" || p.Title == "" {
			t.Fatalf("DecodeBytes(%q) returned an incomplete problem %+v", body, p)
		}
	})
}
