package orders_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/microshop/microshop/internal/invariants"
	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/orders"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

func TestCheckout(t *testing.T) {
	s := startShop(t, shopOptions{})
	received := s.received(t)
	ada := s.NewCustomer(t, "ada")
	p := s.products(t, 3)
	before := s.stock(t)

	var accepted []string
	t.Run("three products, confirmed", func(t *testing.T) {
		r, o := s.place(t, ada, "k-three", orderBody(goodCard, p[0].SKU, 1, p[1].SKU, 2, p[2].SKU, 3))
		if r.Status != http.StatusCreated || o.Status != ordersapi.StatusConfirmed {
			t.Fatalf("checkout: %d %s", r.Status, r.Body)
		}
		accepted = append(accepted, o.ID)
		want := p[0].PriceCents + 2*p[1].PriceCents + 3*p[2].PriceCents
		if o.TotalCents != want || o.Currency != p[0].Currency || o.Card.Last4 != "4242" || o.Card.Brand != "visa" || o.PaymentID == "" {
			t.Fatalf("order %+v, want total %d", o, want)
		}
		if loc := r.Header.Get("Location"); loc != "/api/orders/"+o.ID {
			t.Fatalf("Location %q", loc)
		}
		// A customer's order is kept by no cache, shared or the browser's.
		for _, r := range []servicetest.Response{r, servicetest.Call(t, "GET", s.orders+"/api/orders/"+o.ID, ada, nil)} {
			if cc := r.Header.Get("Cache-Control"); cc != "private, no-store" {
				t.Errorf("an order's answer: Cache-Control %q, want private, no-store", cc)
			}
		}
		after := s.stock(t)
		for i, l := range []int64{1, 2, 3} {
			if got := before[p[i].SKU].Available - after[p[i].SKU].Available; got != l {
				t.Errorf("%s: available fell by %d, want %d", p[i].SKU, got, l)
			}
			if got := after[p[i].SKU].Sold - before[p[i].SKU].Sold; got != l {
				t.Errorf("%s: sold rose by %d, want %d", p[i].SKU, got, l)
			}
		}
		// The saga log shows every step before and after it ran.
		r = servicetest.Call(t, "GET", s.orders+"/api/orders/"+o.ID+"/saga", ada, nil)
		var log struct{ Items []ordersapi.SagaEntry }
		r.JSON(t, &log)
		var steps []string
		for _, e := range log.Items {
			if e.Event == "succeeded" {
				steps = append(steps, e.Step)
			}
		}
		if strings.Join(steps, ",") != "create,reserve,authorize,commit,capture" {
			t.Fatalf("saga log: %s", r.Body)
		}
	})

	t.Run("declined card: stock released, rejected", func(t *testing.T) {
		r, o := s.place(t, ada, "k-decline", orderBody("4000 0000 0000 0002", p[0].SKU, 1))
		if r.Status != http.StatusCreated || o.Status != ordersapi.StatusRejected || o.Reason != ordersapi.ReasonPaymentDeclined {
			t.Fatalf("declined checkout: %d %s", r.Status, r.Body)
		}
		accepted = append(accepted, o.ID)
		r, o = s.place(t, ada, "k-funds", orderBody("4000 0000 0000 9995", p[0].SKU, 1))
		if o.Status != ordersapi.StatusRejected || o.Reason != ordersapi.ReasonPaymentDeclined {
			t.Fatalf("insufficient funds: %d %s", r.Status, r.Body)
		}
		accepted = append(accepted, o.ID)
	})

	t.Run("out of stock: rejected, nothing held", func(t *testing.T) {
		r, o := s.place(t, ada, "k-oos", orderBody(goodCard, p[1].SKU, 1000))
		if r.Status != http.StatusCreated || o.Status != ordersapi.StatusRejected || o.Reason != ordersapi.ReasonOutOfStock {
			t.Fatalf("out of stock: %d %s", r.Status, r.Body)
		}
		accepted = append(accepted, o.ID)
	})

	keys := map[string][]string{}
	t.Run("a retried POST makes one order", func(t *testing.T) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, o := s.place(t, ada, "k-retry", orderBody(goodCard, p[2].SKU, 1))
				if r.Status != http.StatusCreated && r.Status != http.StatusAccepted {
					t.Errorf("retry: %d %s", r.Status, r.Body)
					return
				}
				mu.Lock()
				keys["k-retry"] = append(keys["k-retry"], o.ID)
				mu.Unlock()
			}()
		}
		wg.Wait()
		accepted = append(accepted, keys["k-retry"]...)
		// The same key with another body is refused.
		r, _ := s.place(t, ada, "k-retry", orderBody(goodCard, p[2].SKU, 2))
		if r.Status != http.StatusUnprocessableEntity {
			t.Fatalf("same key, other body: %d %s", r.Status, r.Body)
		}
	})

	t.Run("another customer's order is a 404", func(t *testing.T) {
		grace := s.NewCustomer(t, "grace")
		r := servicetest.Call(t, "GET", s.orders+"/api/orders/"+accepted[0], grace, nil)
		if r.Status != http.StatusNotFound {
			t.Fatalf("other customer's order: %d", r.Status)
		}
		if r := servicetest.Call(t, "POST", s.orders+"/api/orders/"+accepted[0]+"/cancel", grace, nil); r.Status != http.StatusNotFound {
			t.Fatalf("cancelling another customer's order: %d", r.Status)
		}
		r = servicetest.Call(t, "GET", s.orders+"/api/orders", grace, nil)
		var list struct{ Items []ordersapi.Order }
		r.JSON(t, &list)
		if len(list.Items) != 0 {
			t.Fatalf("grace sees %d orders", len(list.Items))
		}
		if r := servicetest.Call(t, "GET", s.orders+"/api/orders?all=true", grace, nil); r.Status != http.StatusForbidden {
			t.Fatalf("a customer listing everyone's orders: %d", r.Status)
		}
	})

	t.Run("history is paginated, newest first", func(t *testing.T) {
		r := servicetest.Call(t, "GET", s.orders+"/api/orders?limit=2", ada, nil)
		var page struct {
			Items         []ordersapi.Order
			NextPageToken string `json:"next_page_token"`
		}
		r.JSON(t, &page)
		if len(page.Items) != 2 || page.NextPageToken == "" || page.Items[0].ID < page.Items[1].ID {
			t.Fatalf("first page: %s", r.Body)
		}
		seen := len(page.Items)
		for page.NextPageToken != "" {
			r = servicetest.Call(t, "GET", s.orders+"/api/orders?limit=2&page_token="+page.NextPageToken, ada, nil)
			page.Items, page.NextPageToken = nil, ""
			r.JSON(t, &page)
			seen += len(page.Items)
		}
		if seen != 5 {
			t.Fatalf("ada has %d orders in her history, want 5", seen)
		}
	})

	t.Run("cancel a confirmed order: refunded, stock back", func(t *testing.T) {
		_, o := s.place(t, ada, "k-cancel", orderBody(goodCard, p[0].SKU, 2))
		if o.Status != ordersapi.StatusConfirmed {
			t.Fatalf("order to cancel: %+v", o)
		}
		accepted = append(accepted, o.ID)
		beforeCancel := s.stock(t)[p[0].SKU]
		r := servicetest.Call(t, "POST", s.orders+"/api/orders/"+o.ID+"/cancel", ada, nil)
		var c ordersapi.Order
		r.JSON(t, &c)
		if r.Status != http.StatusOK || c.Status != ordersapi.StatusCancelled {
			t.Fatalf("cancel: %d %s", r.Status, r.Body)
		}
		if got := s.stock(t)[p[0].SKU].Available - beforeCancel.Available; got != 2 {
			t.Fatalf("cancelling returned %d units, want 2", got)
		}
		if r := servicetest.Call(t, "POST", s.orders+"/api/orders/"+o.ID+"/cancel", ada, nil); r.Status != http.StatusOK {
			t.Fatalf("cancelling twice: %d", r.Status)
		}
		if r := servicetest.Call(t, "POST", s.orders+"/api/orders/"+accepted[1]+"/cancel", ada, nil); r.Status != http.StatusConflict {
			t.Fatalf("cancelling a rejected order: %d %s", r.Status, r.Body)
		}
	})

	rep := s.check(t, invariants.Expect{Received: received, Accepted: accepted, Keys: keys})
	if rep.Confirmed != 2 || rep.Rejected != 3 || rep.Cancelled != 1 {
		t.Fatalf("report %+v", rep)
	}
	s.checker.RequireCoverage(orders.OpenAPI())
}

func TestLastUnitsRace(t *testing.T) {
	s := startShop(t, shopOptions{})
	received := s.received(t)
	sku := s.products(t, 1)[0].SKU
	// Leave exactly 10 units: restocking is not needed, buying is.
	have := s.stock(t)[sku].Available
	admin := s.Admin
	if have > 10 {
		_, o := s.place(t, admin, "drain", orderBody(goodCard, sku, have-10))
		if o.Status != ordersapi.StatusConfirmed {
			t.Fatalf("draining stock: %+v", o)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var accepted []string
	confirmed := 0
	// The racers sign up first, a few at a time: 50 password hashes at
	// once on a busy machine outlast the client's timeout, and signing up
	// is not what races.
	tokens := make([]string, 50)
	signup := make(chan struct{}, 4)
	for i := range tokens {
		wg.Add(1)
		signup <- struct{}{}
		go func() {
			defer func() { <-signup; wg.Done() }()
			tokens[i] = s.NewCustomer(t, fmt.Sprintf("racer%d", i))
		}()
	}
	wg.Wait()
	for i, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, o := s.place(t, tok, "race", orderBody(goodCard, sku, 1))
			if r.Status != http.StatusCreated && r.Status != http.StatusAccepted {
				t.Errorf("racer %d: %d %s", i, r.Status, r.Body)
				return
			}
			if o.Status == ordersapi.StatusPending {
				o = s.await(t, tok, o.ID)
			}
			mu.Lock()
			defer mu.Unlock()
			accepted = append(accepted, o.ID)
			if o.Status == ordersapi.StatusConfirmed {
				confirmed++
			} else if o.Reason != ordersapi.ReasonOutOfStock {
				t.Errorf("racer %d rejected for %q", i, o.Reason)
			}
		}()
	}
	wg.Wait()
	if confirmed != 10 {
		t.Fatalf("%d racers confirmed, want exactly 10", confirmed)
	}
	if s.stock(t)[sku].Available != 0 {
		t.Fatalf("%s has %d left", sku, s.stock(t)[sku].Available)
	}
	s.check(t, invariants.Expect{Received: received, Accepted: accepted})
}

func TestSlowPaymentIsCompensated(t *testing.T) {
	// The slow card answers after 4s; a step may retry for only 1s.
	s := startShop(t, shopOptions{stepTimeout: "1s", slowCard: "4s"})
	received := s.received(t)
	ada := s.NewCustomer(t, "ada")
	sku := s.products(t, 1)[0].SKU
	r, o := s.place(t, ada, "slow", orderBody("4000 0000 0000 0077", sku, 1))
	if r.Status != http.StatusCreated && r.Status != http.StatusAccepted {
		t.Fatalf("slow checkout: %d %s", r.Status, r.Body)
	}
	o = s.await(t, ada, o.ID)
	if o.Status != ordersapi.StatusRejected || o.Reason != ordersapi.ReasonPaymentUnavailable {
		t.Fatalf("slow payment: %+v", o)
	}
	s.check(t, invariants.Expect{Received: received, Accepted: []string{o.ID}})
}

func TestPaymentsDownIsCompensated(t *testing.T) {
	s := startShop(t, shopOptions{stepTimeout: "1s"})
	received := s.received(t)
	ada := s.NewCustomer(t, "ada")
	sku := s.products(t, 1)[0].SKU
	before := s.stock(t)[sku]
	s.Service("payments").Stop()
	r, o := s.place(t, ada, "down", orderBody(goodCard, sku, 1))
	if r.Status != http.StatusCreated && r.Status != http.StatusAccepted {
		t.Fatalf("checkout with payments down: %d %s", r.Status, r.Body)
	}
	// Authorization gives up after its step timeout; the saga then must
	// void the order's payments (payments may have authorized before it
	// went away), which waits for payments to return, stock still held.
	if o.Status != ordersapi.StatusPending {
		t.Fatalf("with payments down the order cannot end yet: %+v", o)
	}
	if held := s.stock(t)[sku]; held.Reserved != before.Reserved+1 {
		t.Fatalf("reserved %d, want %d while compensating", held.Reserved, before.Reserved+1)
	}
	s.Service("payments").Restart(t)
	o = s.await(t, ada, o.ID)
	if o.Status != ordersapi.StatusRejected || o.Reason != ordersapi.ReasonPaymentUnavailable {
		t.Fatalf("after payments returned: %+v", o)
	}
	s.check(t, invariants.Expect{Received: received, Accepted: []string{o.ID}})
}

func TestBadOrders(t *testing.T) {
	s := startShop(t, shopOptions{})
	ada := s.NewCustomer(t, "ada")
	sku := s.products(t, 1)[0].SKU
	many := []any{}
	for i := range 101 {
		many = append(many, fmt.Sprintf("sku-%d", i), 1)
	}
	expired := orderBody(goodCard, sku, 1)
	expired["card"] = map[string]any{"number": goodCard, "exp_month": 1, "exp_year": 2020, "cvc": "123"}
	cases := []struct {
		name   string
		key    string
		body   any
		status int
		field  string
	}{
		{"no lines", "k1", orderBody(goodCard), 422, "lines"},
		{"over 100 lines", "k2", orderBody(goodCard, many...), 422, "lines"},
		{"unknown sku", "k3", orderBody(goodCard, "no-such-sku", 1), 422, "lines"},
		{"quantity zero", "k4", orderBody(goodCard, sku, 0), 422, "lines[0].quantity"},
		{"negative quantity", "k5", orderBody(goodCard, sku, -3), 422, "lines[0].quantity"},
		{"quantity over 1000", "k6", orderBody(goodCard, sku, 1001), 422, "lines[0].quantity"},
		{"quantity overflows", "k7", strings.Replace(mustJSON(orderBody(goodCard, sku, 1)), `"quantity":1`, `"quantity":1e30`, 1), 422, "lines.quantity"},
		{"letters in card", "k8", orderBody("4242 4242 4242 abcd", sku, 1), 422, "card.number"},
		{"luhn fails", "k9", orderBody("4242 4242 4242 4241", sku, 1), 422, "card.number"},
		{"expired card", "k10", expired, 422, "card.exp_year"},
		{"missing key", "", orderBody(goodCard, sku, 1), 400, ""},
		{"unknown field", "k11", `{"lines":[],"coupon":"FREE"}`, 422, "coupon"},
		{"malformed", "k12", `{"lines":[`, 400, ""},
		{"client sends a price", "k13", `{"lines":[{"sku":"x","quantity":1,"price_cents":1}]}`, 422, "price_cents"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := servicetest.Call(t, "POST", s.orders+"/api/orders", ada, c.body, "Idempotency-Key", c.key)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			p := r.Problem(t)
			if c.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != c.field) {
				t.Fatalf("want an error on %q: %s", c.field, r.Body)
			}
		})
	}
	if r := servicetest.Call(t, "POST", s.orders+"/api/orders", "", orderBody(goodCard, sku, 1), "Idempotency-Key", "x"); r.Status != 401 {
		t.Fatalf("no token: %d", r.Status)
	}
	// Nothing was stored.
	r := servicetest.Call(t, "GET", s.orders+"/api/orders", ada, nil)
	if !strings.Contains(string(r.Body), `"items":[]`) {
		t.Fatalf("refused orders were stored: %s", r.Body)
	}
}

func TestOnPostgres(t *testing.T) {
	dbtest.PostgresURL(t) // skips without Postgres
	s := startShop(t, shopOptions{db: func(string) []string { return []string{"--db", dbtest.PostgresURL(t)} }})
	received := s.received(t)
	ada := s.NewCustomer(t, "ada")
	p := s.products(t, 2)
	r, o := s.place(t, ada, "pg", orderBody(goodCard, p[0].SKU, 1, p[1].SKU, 1))
	if r.Status != http.StatusCreated || o.Status != ordersapi.StatusConfirmed {
		t.Fatalf("checkout on postgres: %d %s", r.Status, r.Body)
	}
	_, d := s.place(t, ada, "pg-decline", orderBody("4000 0000 0000 0002", p[0].SKU, 1))
	s.check(t, invariants.Expect{Received: received, Accepted: []string{o.ID, d.ID}})
}
