package inventory_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/openapi/openapitest"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/inventory"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/users"
)

// shop is a servicetest.Shop with inventory running on it.
type shop struct {
	*servicetest.Shop
	// url reaches inventory through a proxy that checks every exchange
	// against its OpenAPI document.
	url     string
	checker *openapitest.Checker
	client  *inventoryapi.Client // orders' typed client
}

// startShop runs inventory with args and env on a shop whose services
// include orders, the caller inventory allows on /internal/.
func startShop(t *testing.T, args []string, env map[string]string) *shop {
	t.Helper()
	s := &shop{Shop: servicetest.NewShop(t, users.Spec(), servicetest.ShopOptions{Keys: []string{"orders", "inventory"}})}
	inv := s.Start(t, inventory.Spec(), args, env)
	s.url, s.checker = openapitest.Proxy(t, inventory.OpenAPI(), inv.URL)
	s.client = inventoryapi.NewClient(client.New("inventory", s.url, s.Credentials(t, "orders"), client.Options{}, nil))
	return s
}

func (s *shop) stock(t *testing.T) map[string]inventoryapi.StockLevel {
	t.Helper()
	r := servicetest.Call(t, "GET", s.url+"/api/inventory/stock", s.Admin, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("stock: %d %s", r.Status, r.Body)
	}
	var list httpjson.List[inventoryapi.StockLevel]
	r.JSON(t, &list)
	out := map[string]inventoryapi.StockLevel{}
	for _, l := range list.Items {
		if l.Received != l.Available+l.Reserved+l.Sold {
			t.Fatalf("stock of %s is not conserved: %+v", l.SKU, l)
		}
		out[l.SKU] = l
	}
	return out
}

func (s *shop) wantStock(t *testing.T, sku string, received, available, reserved, sold int64) {
	t.Helper()
	want := inventoryapi.StockLevel{SKU: sku, Received: received, Available: available, Reserved: reserved, Sold: sold}
	if got := s.stock(t)[sku]; got != want {
		t.Fatalf("stock of %s = %+v, want %+v", sku, got, want)
	}
}

func (s *shop) createProduct(t *testing.T, sku string, stock int64) {
	t.Helper()
	r := servicetest.Call(t, "POST", s.url+"/api/inventory/products", s.Admin, map[string]any{
		"sku": sku, "name": "Test " + sku, "description": "a product for tests", "price_cents": 1250, "currency": "USD", "stock": stock})
	if r.Status != http.StatusCreated {
		t.Fatalf("creating %s: %d %s", sku, r.Status, r.Body)
	}
}

func problemOf(t *testing.T, r servicetest.Response, status int) problem.Problem {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	return r.Problem(t)
}

func TestInventoryAPI(t *testing.T) {
	s := startShop(t, nil, nil)
	exerciseAPI(t, s)
}

func TestInventoryAPIOnPostgres(t *testing.T) {
	src := dbtest.PostgresURL(t)
	s := startShop(t, []string{"--db", src}, nil)
	exerciseAPI(t, s)
}

// exerciseAPI walks every route of inventory, the happy paths and the
// refusals, and requires that every documented operation was exercised.
func exerciseAPI(t *testing.T, s *shop) {
	t.Run("catalog", func(t *testing.T) { testCatalog(t, s) })
	t.Run("admin", func(t *testing.T) { testAdmin(t, s) })
	t.Run("bad input", func(t *testing.T) { testBadInput(t, s) })
	t.Run("internal auth", func(t *testing.T) { testInternalAuth(t, s) })
	t.Run("reservations", func(t *testing.T) { testReservations(t, s) })
	t.Run("race for the last units", func(t *testing.T) { testRace(t, s) })
	s.stock(t) // conservation of every product at the end
	if r := servicetest.Call(t, "GET", s.url+"/openapi.json", "", nil); r.Status != 200 || !strings.Contains(string(r.Body), "/internal/reservations") {
		t.Fatalf("openapi.json: %d", r.Status)
	}
	s.checker.RequireCoverage(inventory.OpenAPI())
}

func testCatalog(t *testing.T, s *shop) {
	var page httpjson.List[inventoryapi.Product]
	r := servicetest.Call(t, "GET", s.url+"/api/inventory/products", "", nil)
	r.JSON(t, &page)
	if r.Status != 200 || len(page.Items) != 20 || page.NextPageToken == "" {
		t.Fatalf("first page: %d, %d items, token %q", r.Status, len(page.Items), page.NextPageToken)
	}

	// Page through the seed catalog seven at a time.
	var skus []string
	tok := ""
	for range 20 {
		r := servicetest.Call(t, "GET", s.url+"/api/inventory/products?limit=7&page_token="+tok, "", nil)
		var p httpjson.List[inventoryapi.Product]
		r.JSON(t, &p)
		if r.Status != 200 || len(p.Items) > 7 {
			t.Fatalf("page: %d %s", r.Status, r.Body)
		}
		for _, it := range p.Items {
			skus = append(skus, it.SKU)
			if it.Currency != "USD" || it.PriceCents <= 0 || it.Available < 20 || it.Name == "" {
				t.Fatalf("seed product %+v", it)
			}
		}
		if tok = p.NextPageToken; tok == "" {
			break
		}
	}
	if len(skus) < 30 || !slices.IsSorted(skus) || len(slices.Compact(slices.Clone(skus))) != len(skus) {
		t.Fatalf("paged through %d skus: %v", len(skus), skus)
	}
	if len(s.stock(t)) != len(skus) {
		t.Fatalf("the pages hold %d products, the stock list %d", len(skus), len(s.stock(t)))
	}

	// Search, in any case, in names and descriptions.
	for _, q := range []string{"mug", "MUG", "Mug"} {
		r := servicetest.Call(t, "GET", s.url+"/api/inventory/products?q="+q, "", nil)
		var p httpjson.List[inventoryapi.Product]
		r.JSON(t, &p)
		if r.Status != 200 || len(p.Items) != 2 || p.Items[0].SKU != "MUG-CERAMIC-12" || p.Items[1].SKU != "MUG-TRAVEL-16" {
			t.Fatalf("q=%s: %s", q, r.Body)
		}
	}
	r = servicetest.Call(t, "GET", s.url+"/api/inventory/products?q=teleporter", "", nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"items":[]`) {
		t.Fatalf("a search with no match: %s", r.Body)
	}
	r = servicetest.Call(t, "GET", s.url+"/api/inventory/products?q=bergamot&limit=1", "", nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), "BEANS-ETHIOPIA-340") || strings.Contains(string(r.Body), "next_page_token") {
		t.Fatalf("a search in descriptions: %s", r.Body)
	}

	r = servicetest.Call(t, "GET", s.url+"/api/inventory/products/MUG-CERAMIC-12", "", nil)
	var p inventoryapi.Product
	r.JSON(t, &p)
	if r.Status != 200 || p.SKU != "MUG-CERAMIC-12" || p.PriceCents != 1400 {
		t.Fatalf("one product: %d %s", r.Status, r.Body)
	}

	// Catalog reads carry a weak ETag and Cache-Control: no-cache; a
	// client holding a current copy gets a 304 with no body; HEAD answers
	// GET's headers; a change to the product (its stock) makes a new tag.
	for _, path := range []string{"/api/inventory/products/MUG-CERAMIC-12", "/api/inventory/products?q=mug"} {
		r := servicetest.Call(t, "GET", s.url+path, "", nil)
		etag := r.Header.Get("ETag")
		if !strings.HasPrefix(etag, `W/"`) || r.Header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("GET %s: ETag %q, Cache-Control %q", path, etag, r.Header.Get("Cache-Control"))
		}
		if again := servicetest.Call(t, "GET", s.url+path, "", nil, "If-None-Match", etag); again.Status != http.StatusNotModified || len(again.Body) != 0 {
			t.Fatalf("GET %s with its ETag: %d %s, want 304 with no body", path, again.Status, again.Body)
		}
		if head := servicetest.Call(t, "HEAD", s.url+path, "", nil); head.Status != http.StatusOK || len(head.Body) != 0 || head.Header.Get("ETag") != etag {
			t.Fatalf("HEAD %s: %d, ETag %q, %d bytes", path, head.Status, head.Header.Get("ETag"), len(head.Body))
		}
		if head := servicetest.Call(t, "HEAD", s.url+path, "", nil, "If-None-Match", etag); head.Status != http.StatusNotModified {
			t.Fatalf("HEAD %s with its ETag: %d, want 304", path, head.Status)
		}
	}
	before := servicetest.Call(t, "GET", s.url+"/api/inventory/products/MUG-CERAMIC-12", "", nil).Header.Get("ETag")
	if r := servicetest.Call(t, "POST", s.url+"/api/inventory/products/MUG-CERAMIC-12/restock", s.Admin, map[string]any{"quantity": 1}); r.Status != http.StatusOK {
		t.Fatalf("restock: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "GET", s.url+"/api/inventory/products/MUG-CERAMIC-12", "", nil, "If-None-Match", before); r.Status != http.StatusOK || r.Header.Get("ETag") == before {
		t.Fatalf("after a restock, the old ETag: %d, ETag %q", r.Status, r.Header.Get("ETag"))
	}
	if r := servicetest.Call(t, "HEAD", s.url+"/api/inventory/products/NO-SUCH-SKU", "", nil); r.Status != http.StatusNotFound {
		t.Fatalf("HEAD of an unknown product: %d", r.Status)
	}

	for _, sku := range []string{"NO-SUCH-SKU", "bad%20sku", strings.Repeat("x", 65)} {
		p := problemOf(t, servicetest.Call(t, "GET", s.url+"/api/inventory/products/"+sku, "", nil), 404)
		if !strings.HasSuffix(p.Type, "/not-found") {
			t.Fatalf("unknown product: %+v", p)
		}
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=-1", "limit=ten", "limit=99999999999999999999",
		"page_token=%21%21%21", "page_token=" + base64.RawURLEncoding.EncodeToString([]byte("not a sku")),
		"q=" + strings.Repeat("q", 201), "q=%00", "q=%ff%fe", "q=a%0Ab"} {
		p := problemOf(t, servicetest.Call(t, "GET", s.url+"/api/inventory/products?"+q, "", nil), 422)
		field, _, _ := strings.Cut(q, "=")
		if len(p.Errors) != 1 || p.Errors[0].Field != field {
			t.Fatalf("%s: %+v", q, p)
		}
	}
}

func testAdmin(t *testing.T, s *shop) {
	body := map[string]any{"sku": "DESK-OAK", "name": "Oak Desk", "description": "A solid oak desk.", "price_cents": 45000, "currency": "USD", "stock": 3}
	problemOf(t, servicetest.Call(t, "POST", s.url+"/api/inventory/products", "", body), 401)
	problemOf(t, servicetest.Call(t, "POST", s.url+"/api/inventory/products", "not-a-token", body), 401)
	problemOf(t, servicetest.Call(t, "POST", s.url+"/api/inventory/products", s.Customer, body), 403)
	problemOf(t, servicetest.Call(t, "POST", s.url+"/api/inventory/products", s.Token(t, "orders", "inventory"), body), 401)

	r := servicetest.Call(t, "POST", s.url+"/api/inventory/products", s.Admin, body)
	var p inventoryapi.Product
	r.JSON(t, &p)
	if r.Status != 201 || r.Header.Get("Location") != "/api/inventory/products/DESK-OAK" || p.Available != 3 || p.Name != "Oak Desk" {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	problemOf(t, servicetest.Call(t, "POST", s.url+"/api/inventory/products", s.Admin, body), 409)
	s.wantStock(t, "DESK-OAK", 3, 3, 0, 0)

	patch := map[string]any{"price_cents": 39900, "description": "A solid oak desk, oiled."}
	problemOf(t, servicetest.Call(t, "PATCH", s.url+"/api/inventory/products/DESK-OAK", "", patch), 401)
	problemOf(t, servicetest.Call(t, "PATCH", s.url+"/api/inventory/products/DESK-OAK", s.Customer, patch), 403)
	problemOf(t, servicetest.Call(t, "PATCH", s.url+"/api/inventory/products/NO-SUCH", s.Admin, patch), 404)
	r = servicetest.Call(t, "PATCH", s.url+"/api/inventory/products/DESK-OAK", s.Admin, patch)
	r.JSON(t, &p)
	if r.Status != 200 || p.PriceCents != 39900 || p.Name != "Oak Desk" || p.Description != "A solid oak desk, oiled." {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	r = servicetest.Call(t, "GET", s.url+"/api/inventory/products?q=OILED", "", nil)
	if !strings.Contains(string(r.Body), "DESK-OAK") {
		t.Fatalf("search after an edit: %s", r.Body)
	}

	qty := map[string]any{"quantity": 7}
	problemOf(t, servicetest.Call(t, "POST", s.url+"/api/inventory/products/DESK-OAK/restock", "", qty), 401)
	problemOf(t, servicetest.Call(t, "POST", s.url+"/api/inventory/products/DESK-OAK/restock", s.Customer, qty), 403)
	problemOf(t, servicetest.Call(t, "POST", s.url+"/api/inventory/products/NO-SUCH/restock", s.Admin, qty), 404)
	r = servicetest.Call(t, "POST", s.url+"/api/inventory/products/DESK-OAK/restock", s.Admin, qty)
	var st inventoryapi.StockLevel
	r.JSON(t, &st)
	if r.Status != 200 || st != (inventoryapi.StockLevel{SKU: "DESK-OAK", Received: 10, Available: 10}) {
		t.Fatalf("restock: %d %s", r.Status, r.Body)
	}

	problemOf(t, servicetest.Call(t, "GET", s.url+"/api/inventory/stock", "", nil), 401)
	problemOf(t, servicetest.Call(t, "GET", s.url+"/api/inventory/stock", s.Customer, nil), 403)
	s.wantStock(t, "DESK-OAK", 10, 10, 0, 0)
}

func testBadInput(t *testing.T, s *shop) {
	const create, restock, patch = "/api/inventory/products", "/api/inventory/products/MUG-CERAMIC-12/restock", "/api/inventory/products/MUG-CERAMIC-12"
	good := func(change func(m map[string]any)) map[string]any {
		m := map[string]any{"sku": "NEW-1", "name": "New", "description": "", "price_cents": 100, "currency": "USD", "stock": 1}
		change(m)
		return m
	}
	cases := []struct {
		name, method, path string
		body               any
		status             int
		field              string
	}{
		{"malformed json", "POST", create, `{"sku":`, 400, ""},
		{"not an object", "POST", create, `[1,2]`, 400, ""},
		{"trailing data", "POST", create, `{"sku":"NEW-1","name":"n","price_cents":1,"currency":"USD"} {}`, 400, ""},
		{"empty body", "POST", create, ``, 400, ""},
		{"unknown field", "POST", create, good(func(m map[string]any) { m["colour"] = "red" }), 422, "colour"},
		{"price as a string", "POST", create, good(func(m map[string]any) { m["price_cents"] = "100" }), 422, "price_cents"},
		{"price with a fraction", "POST", create, `{"sku":"NEW-1","name":"n","price_cents":12.5,"currency":"USD"}`, 422, "price_cents"},
		{"price overflowing int64", "POST", create, `{"sku":"NEW-1","name":"n","price_cents":99999999999999999999,"currency":"USD"}`, 422, "price_cents"},
		{"price in exponent form", "POST", create, `{"sku":"NEW-1","name":"n","price_cents":1e30,"currency":"USD"}`, 422, "price_cents"},
		{"zero price", "POST", create, good(func(m map[string]any) { m["price_cents"] = 0 }), 422, "price_cents"},
		{"negative price", "POST", create, good(func(m map[string]any) { m["price_cents"] = -5 }), 422, "price_cents"},
		{"price over the limit", "POST", create, good(func(m map[string]any) { m["price_cents"] = 1_000_000_001 }), 422, "price_cents"},
		{"missing sku", "POST", create, good(func(m map[string]any) { delete(m, "sku") }), 422, "sku"},
		{"sku with a space", "POST", create, good(func(m map[string]any) { m["sku"] = "NEW 1" }), 422, "sku"},
		{"sku with a slash", "POST", create, good(func(m map[string]any) { m["sku"] = "NEW/1" }), 422, "sku"},
		{"sku too long", "POST", create, good(func(m map[string]any) { m["sku"] = strings.Repeat("S", 65) }), 422, "sku"},
		{"blank name", "POST", create, good(func(m map[string]any) { m["name"] = "   " }), 422, "name"},
		{"name too long", "POST", create, good(func(m map[string]any) { m["name"] = strings.Repeat("n", 201) }), 422, "name"},
		{"name with a line break", "POST", create, good(func(m map[string]any) { m["name"] = "two\nlines" }), 422, "name"},
		{"description too long", "POST", create, good(func(m map[string]any) { m["description"] = strings.Repeat("d", 2001) }), 422, "description"},
		{"lower-case currency", "POST", create, good(func(m map[string]any) { m["currency"] = "usd" }), 422, "currency"},
		{"two-letter currency", "POST", create, good(func(m map[string]any) { m["currency"] = "US" }), 422, "currency"},
		{"missing currency", "POST", create, good(func(m map[string]any) { delete(m, "currency") }), 422, "currency"},
		{"three letters that are no currency", "POST", create, good(func(m map[string]any) { m["currency"] = "XYZ" }), 422, "currency"},
		{"a currency not the shop's", "POST", create, good(func(m map[string]any) { m["currency"] = "EUR" }), 422, "currency"},
		{"negative stock", "POST", create, good(func(m map[string]any) { m["stock"] = -1 }), 422, "stock"},
		{"stock too large", "POST", create, good(func(m map[string]any) { m["stock"] = 1_000_001 }), 422, "stock"},
		{"wrong content type", "POST", create, "sku=NEW-1", 415, ""},
		{"oversized body", "POST", create, `{"name":"` + strings.Repeat("a", 300<<10) + `"}`, 413, ""},
		{"zero restock", "POST", restock, map[string]any{"quantity": 0}, 422, "quantity"},
		{"negative restock", "POST", restock, map[string]any{"quantity": -3}, 422, "quantity"},
		{"restock too large", "POST", restock, map[string]any{"quantity": 1_000_001}, 422, "quantity"},
		{"restock overflowing", "POST", restock, `{"quantity":18446744073709551616}`, 422, "quantity"},
		{"restock without quantity", "POST", restock, `{}`, 422, "quantity"},
		{"empty patch", "PATCH", patch, `{}`, 422, "name"},
		{"patch of the currency", "PATCH", patch, map[string]any{"currency": "EUR"}, 422, "currency"},
		{"patch of the sku", "PATCH", patch, map[string]any{"sku": "OTHER"}, 422, "sku"},
		{"patch to a zero price", "PATCH", patch, map[string]any{"price_cents": 0}, 422, "price_cents"},
		{"patch to an empty name", "PATCH", patch, map[string]any{"name": ""}, 422, "name"},
		{"unknown route", "GET", "/api/inventory/nope", nil, 404, ""},
		{"wrong method", "DELETE", patch, nil, 405, ""},
	}
	before := s.stock(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.status == 415 {
				headers = []string{"Content-Type", "text/plain"}
			}
			p := problemOf(t, servicetest.Call(t, c.method, s.url+c.path, s.Admin, c.body, headers...), c.status)
			if p.Detail == "" && len(p.Errors) == 0 {
				t.Fatalf("a problem without a reason: %+v", p)
			}
			if c.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != c.field) {
				t.Fatalf("want an error on %q: %+v", c.field, p)
			}
		})
	}
	after := s.stock(t)
	if len(after) != len(before) || after["MUG-CERAMIC-12"] != before["MUG-CERAMIC-12"] {
		t.Fatal("a refused request changed the catalog")
	}
	r := servicetest.Call(t, "GET", s.url+"/api/inventory/products/MUG-CERAMIC-12", "", nil)
	if !strings.Contains(string(r.Body), `"price_cents":1400`) || !strings.Contains(string(r.Body), `"name":"Ceramic Coffee Mug, 12 oz"`) {
		t.Fatalf("a refused patch changed the product: %s", r.Body)
	}
}

func testInternalAuth(t *testing.T, s *shop) {
	reserve := map[string]any{"order_id": "auth-check", "lines": []map[string]any{{"sku": "MUG-CERAMIC-12", "quantity": 1}}}
	paths := []struct {
		path string
		body any
	}{
		{"/internal/quotes", map[string]any{"lines": reserve["lines"]}},
		{"/internal/reservations", reserve},
		{"/internal/reservations/auth-check/commit", nil},
		{"/internal/reservations/auth-check/release", nil},
	}
	for _, p := range paths {
		for _, c := range []struct {
			who, token string
			status     int
		}{
			{"no credential", "", 401},
			{"garbage", "garbage", 401},
			{"a customer's token", s.Customer, 401},
			{"an admin's token", s.Admin, 401},
			{"a forged orders credential", s.Forged(t, "orders", "inventory"), 401},
			{"another service's credential", s.Token(t, "inventory", "inventory"), 403},
		} {
			r := servicetest.Call(t, "POST", s.url+p.path, c.token, p.body)
			if r.Status != c.status {
				t.Fatalf("%s on %s: %d, want %d: %s", c.who, p.path, r.Status, c.status, r.Body)
			}
			r.Problem(t)
		}
	}
	// Nothing was reserved by the refused calls.
	if _, err := s.client.Commit(context.Background(), "auth-check"); !errors.Is(err, inventoryapi.ErrNotFound) {
		t.Fatalf("a refused reserve left a reservation: %v", err)
	}
}

func testReservations(t *testing.T, s *shop) {
	ctx := context.Background()
	s.createProduct(t, "R-A", 10)
	s.createProduct(t, "R-B", 2)
	orders := s.Token(t, "orders", "inventory")
	call := func(path string, body any) servicetest.Response {
		return servicetest.Call(t, "POST", s.url+path, orders, body)
	}

	// First time 201, again 200 with the same reservation, nothing moves.
	req := map[string]any{"order_id": "ord-1", "lines": []map[string]any{{"sku": "R-A", "quantity": 3}, {"sku": "R-B", "quantity": 1}}}
	r := call("/internal/reservations", req)
	var first, again inventoryapi.Reservation
	r.JSON(t, &first)
	if r.Status != 201 || first.Status != "held" || first.TotalCents != 4*1250 || first.Currency != "USD" || len(first.Lines) != 2 ||
		first.Lines[0] != (inventoryapi.ReservationLine{SKU: "R-A", Quantity: 3, PriceCents: 1250, Currency: "USD"}) ||
		first.ExpiresAt.Sub(first.CreatedAt) != 15*time.Minute {
		t.Fatalf("reserve: %d %s", r.Status, r.Body)
	}
	r = call("/internal/reservations", req)
	r.JSON(t, &again)
	if r.Status != 200 || !again.ExpiresAt.Equal(first.ExpiresAt) || again.TotalCents != first.TotalCents {
		t.Fatalf("reserve again: %d %s", r.Status, r.Body)
	}
	s.wantStock(t, "R-A", 10, 7, 3, 0)
	p := problemOf(t, call("/internal/reservations", map[string]any{"order_id": "ord-1", "lines": []map[string]any{{"sku": "R-A", "quantity": 4}}}), 409)
	if !strings.HasSuffix(p.Type, "/reservation-mismatch") {
		t.Fatalf("same order, other lines: %+v", p)
	}

	// All or nothing: R-B is short, so R-A is not reserved either.
	p = problemOf(t, call("/internal/reservations", map[string]any{"order_id": "ord-2", "lines": []map[string]any{{"sku": "R-A", "quantity": 1}, {"sku": "R-B", "quantity": 2}}}), 409)
	if !strings.HasSuffix(p.Type, "/out-of-stock") || !strings.Contains(p.Detail, "R-B") || strings.Contains(p.Detail, "R-A") ||
		len(p.Errors) != 1 || p.Errors[0].Field != "lines[1].quantity" || fmt.Sprint(p.Extensions["skus"]) != "[R-B]" {
		t.Fatalf("out of stock: %+v", p)
	}
	s.wantStock(t, "R-A", 10, 7, 3, 0)
	s.wantStock(t, "R-B", 2, 1, 1, 0)

	// The typed client orders will use: the same answers, as Go errors.
	q, err := s.client.Quote(ctx, []inventoryapi.ReserveLine{{SKU: "R-B", Quantity: 5}, {SKU: "R-A", Quantity: 2}})
	if err != nil || q.TotalCents != 7*1250 || q.Currency != "USD" || len(q.Lines) != 2 || q.Lines[0].SKU != "R-B" || q.Lines[0].PriceCents != 1250 {
		t.Fatalf("quote: %+v %v", q, err)
	}
	_, err = s.client.Quote(ctx, []inventoryapi.ReserveLine{{SKU: "R-A", Quantity: 1}, {SKU: "GHOST", Quantity: 1}})
	if p := problem.From(err); p == nil || p.Status != 422 || p.Errors[0].Field != "lines[1].sku" {
		t.Fatalf("quote of an unknown sku: %v", err)
	}
	p = problemOf(t, call("/internal/quotes", map[string]any{"lines": []any{}}), 422)
	if p.Errors[0].Field != "lines" {
		t.Fatalf("quote without lines: %+v", p)
	}
	s.wantStock(t, "R-B", 2, 1, 1, 0) // quotes reserve nothing
	_, err = s.client.Reserve(ctx, inventoryapi.ReserveRequest{OrderID: "ord-3", Lines: []inventoryapi.ReserveLine{{SKU: "R-A", Quantity: 1}, {SKU: "R-B", Quantity: 5}}})
	var oos *inventoryapi.OutOfStockError
	if !errors.Is(err, inventoryapi.ErrOutOfStock) || !errors.As(err, &oos) || !slices.Equal(oos.SKUs, []string{"R-B"}) {
		t.Fatalf("client out of stock: %v", err)
	}
	_, err = s.client.Reserve(ctx, inventoryapi.ReserveRequest{OrderID: "ord-3", Lines: []inventoryapi.ReserveLine{{SKU: "R-A", Quantity: 1}, {SKU: "GHOST", Quantity: 1}}})
	if p := problem.From(err); p == nil || p.Status != 422 || p.Errors[0].Field != "lines[1].sku" {
		t.Fatalf("client unknown sku: %v", err)
	}
	res, err := s.client.Reserve(ctx, inventoryapi.ReserveRequest{OrderID: "ord-3", Lines: []inventoryapi.ReserveLine{{SKU: "R-A", Quantity: 2}}})
	if err != nil || res.Status != "held" || res.TotalCents != 2500 {
		t.Fatalf("client reserve: %+v %v", res, err)
	}
	if _, err := s.client.Reserve(ctx, inventoryapi.ReserveRequest{OrderID: "ord-3", Lines: []inventoryapi.ReserveLine{{SKU: "R-A", Quantity: 1}}}); !errors.Is(err, inventoryapi.ErrReservationMismatch) {
		t.Fatalf("client mismatch: %v", err)
	}
	s.wantStock(t, "R-A", 10, 5, 5, 0)

	// Commit moves reserved to sold, once.
	for range 2 {
		res, err := s.client.Commit(ctx, "ord-1")
		if err != nil || res.Status != "committed" {
			t.Fatalf("commit: %+v %v", res, err)
		}
		s.wantStock(t, "R-A", 10, 5, 2, 3)
	}
	// Release of a committed order (cancelled) moves sold back, once.
	for range 2 {
		r := call("/internal/reservations/ord-1/release", nil)
		var res inventoryapi.Reservation
		r.JSON(t, &res)
		if r.Status != 200 || res.Status != "released" || res.ReleaseReason != "released" {
			t.Fatalf("release: %d %s", r.Status, r.Body)
		}
		s.wantStock(t, "R-A", 10, 8, 2, 0)
		s.wantStock(t, "R-B", 2, 2, 0, 0)
	}
	p = problemOf(t, call("/internal/reservations/ord-1/commit", nil), 409)
	if !strings.HasSuffix(p.Type, "/reservation-released") {
		t.Fatalf("commit after release: %+v", p)
	}
	// Release of a held one moves reserved back.
	if _, err := s.client.Release(ctx, "ord-3"); err != nil {
		t.Fatal(err)
	}
	s.wantStock(t, "R-A", 10, 10, 0, 0)
	if _, err := s.client.Commit(ctx, "ord-3"); !errors.Is(err, inventoryapi.ErrReservationReleased) {
		t.Fatalf("client commit after release: %v", err)
	}
	for _, f := range []func(context.Context, string) (inventoryapi.Reservation, error){s.client.Commit, s.client.Release} {
		if _, err := f(ctx, "never-reserved"); !errors.Is(err, inventoryapi.ErrNotFound) {
			t.Fatalf("unknown order: %v", err)
		}
	}
	problemOf(t, call("/internal/reservations/bad%20id/commit", nil), 404)
	problemOf(t, call("/internal/reservations/"+strings.Repeat("x", 65)+"/release", nil), 404)

	// Bad reservation requests: 4xx problems, nothing reserved.
	lines := func(n int) []map[string]any {
		var out []map[string]any
		for i := range n {
			out = append(out, map[string]any{"sku": fmt.Sprintf("S-%d", i), "quantity": 1})
		}
		return out
	}
	for _, c := range []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"malformed", `{"order_id":`, 400, ""},
		{"missing order id", map[string]any{"lines": lines(1)}, 422, "order_id"},
		{"bad order id", map[string]any{"order_id": "a b", "lines": lines(1)}, 422, "order_id"},
		{"long order id", map[string]any{"order_id": strings.Repeat("o", 65), "lines": lines(1)}, 422, "order_id"},
		{"no lines", map[string]any{"order_id": "bad-1", "lines": []any{}}, 422, "lines"},
		{"null lines", map[string]any{"order_id": "bad-1"}, 422, "lines"},
		{"101 lines", map[string]any{"order_id": "bad-1", "lines": lines(101)}, 422, "lines"},
		{"zero quantity", map[string]any{"order_id": "bad-1", "lines": []map[string]any{{"sku": "R-A", "quantity": 0}}}, 422, "lines[0].quantity"},
		{"quantity over 1000", map[string]any{"order_id": "bad-1", "lines": []map[string]any{{"sku": "R-A", "quantity": 1001}}}, 422, "lines[0].quantity"},
		{"overflowing quantity", `{"order_id":"bad-1","lines":[{"sku":"R-A","quantity":1e99}]}`, 422, "lines.quantity"},
		{"bad sku", map[string]any{"order_id": "bad-1", "lines": []map[string]any{{"sku": "R A", "quantity": 1}}}, 422, "lines[0].sku"},
		{"duplicate sku", map[string]any{"order_id": "bad-1", "lines": []map[string]any{{"sku": "R-A", "quantity": 1}, {"sku": "R-A", "quantity": 1}}}, 422, "lines[1].sku"},
		{"unknown sku", map[string]any{"order_id": "bad-1", "lines": []map[string]any{{"sku": "R-A", "quantity": 1}, {"sku": "NOPE", "quantity": 1}}}, 422, "lines[1].sku"},
		{"unknown field", map[string]any{"order_id": "bad-1", "lines": lines(1), "priority": true}, 422, "priority"},
	} {
		p := problemOf(t, call("/internal/reservations", c.body), c.status)
		if c.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != c.field) {
			t.Fatalf("%s: want an error on %q: %+v", c.name, c.field, p)
		}
	}
	if _, err := s.client.Release(ctx, "bad-1"); !errors.Is(err, inventoryapi.ErrNotFound) {
		t.Fatalf("a refused reservation was stored: %v", err)
	}
	s.wantStock(t, "R-A", 10, 10, 0, 0)
}

// testRace sends 50 reservations at once for a product with 10 units:
// exactly 10 win, on every dialect.
func testRace(t *testing.T, s *shop) {
	s.createProduct(t, "LAST-TEN", 10)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		won, oos int
	)
	for i := range 50 {
		wg.Go(func() {
			_, err := s.client.Reserve(context.Background(), inventoryapi.ReserveRequest{
				OrderID: fmt.Sprintf("race-%02d", i), Lines: []inventoryapi.ReserveLine{{SKU: "LAST-TEN", Quantity: 1}}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, inventoryapi.ErrOutOfStock):
				oos++
			default:
				t.Errorf("reservation %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if won != 10 || oos != 40 {
		t.Fatalf("%d won, %d out of stock; want 10 and 40", won, oos)
	}
	s.wantStock(t, "LAST-TEN", 10, 0, 10, 0)
}

// TestExpiryAndEvents runs inventory with a short reservation TTL (from
// the environment, as a deployment sets it) and reads what it publishes
// from the NATS stream: the expiry gives the stock back and announces it,
// and low stock is announced once per crossing.
func TestExpiryAndEvents(t *testing.T) {
	s := startShop(t, nil, map[string]string{"MICROSHOP_RESERVATION_TTL": "400ms", "MICROSHOP_LOW_STOCK_THRESHOLD": "5"})
	ctx := context.Background()
	s.createProduct(t, "EXP", 8)

	r1, err := s.client.Reserve(ctx, inventoryapi.ReserveRequest{OrderID: "exp-1", Lines: []inventoryapi.ReserveLine{{SKU: "EXP", Quantity: 2}}}) // 8 -> 6
	if err != nil {
		t.Fatal(err)
	}
	if d := r1.ExpiresAt.Sub(r1.CreatedAt); d != 400*time.Millisecond {
		t.Fatalf("the reservation lives %s, want the configured 400ms", d)
	}
	if _, err := s.client.Reserve(ctx, inventoryapi.ReserveRequest{OrderID: "exp-2", Lines: []inventoryapi.ReserveLine{{SKU: "EXP", Quantity: 2}}}); err != nil { // 6 -> 4: low
		t.Fatal(err)
	}
	if _, err := s.client.Reserve(ctx, inventoryapi.ReserveRequest{OrderID: "exp-3", Lines: []inventoryapi.ReserveLine{{SKU: "EXP", Quantity: 1}}}); err != nil { // 4 -> 3
		t.Fatal(err)
	}
	if _, err := s.client.Commit(ctx, "exp-3"); err != nil {
		t.Fatal(err)
	}
	s.wantStock(t, "EXP", 8, 3, 4, 1)

	// The sweeper gives the held units back.
	deadline := time.Now().Add(10 * time.Second)
	for s.stock(t)["EXP"].Reserved != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the reservations did not expire: %+v", s.stock(t)["EXP"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.wantStock(t, "EXP", 8, 7, 0, 1)
	if _, err := s.client.Commit(ctx, "exp-1"); !errors.Is(err, inventoryapi.ErrReservationReleased) {
		t.Fatalf("commit of an expired reservation: %v", err)
	}
	// 7 -> 4 crosses the threshold again: a second low_stock.
	if _, err := s.client.Reserve(ctx, inventoryapi.ReserveRequest{OrderID: "exp-4", Lines: []inventoryapi.ReserveLine{{SKU: "EXP", Quantity: 3}}}); err != nil {
		t.Fatal(err)
	}

	// A last reservation marks the end: events arrive in outbox order, so
	// everything before it has been read once its event is.
	s.createProduct(t, "MARKER", 100)
	if _, err := s.client.Reserve(ctx, inventoryapi.ReserveRequest{OrderID: "marker", Lines: []inventoryapi.ReserveLine{{SKU: "MARKER", Quantity: 1}}}); err != nil {
		t.Fatal(err)
	}
	evs := s.Events(t, "inventory", func(evs []events.Event) bool {
		return slices.ContainsFunc(evs, func(e events.Event) bool {
			return e.Type == "inventory.reserved" && strings.Contains(string(e.Data), `"marker"`)
		})
	})
	var (
		released []string
		lows     []int64
		reserved int
	)
	for _, e := range evs {
		switch e.Type {
		case "inventory.released":
			var b inventoryapi.StockReleased
			if err := e.Decode(&b); err != nil {
				t.Fatal(err)
			}
			released = append(released, b.OrderID+":"+b.Reason)
		case "inventory.low_stock":
			var b inventoryapi.LowStock
			if err := e.Decode(&b); err != nil || b.SKU != "EXP" || b.Threshold != 5 || b.Name != "Test EXP" {
				t.Fatalf("low_stock %+v %v", b, err)
			}
			lows = append(lows, b.Available)
		case "inventory.reserved":
			reserved++
		}
	}
	slices.Sort(released)
	if !slices.Equal(released, []string{"exp-1:expired", "exp-2:expired"}) {
		t.Fatalf("released events %v", released)
	}
	if !slices.Equal(lows, []int64{4, 4}) || reserved != 5 {
		t.Fatalf("low_stock at %v, %d reserved events", lows, reserved)
	}
}
