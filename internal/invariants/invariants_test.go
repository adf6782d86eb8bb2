package invariants

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// world is what a stand-in gateway answers; each test breaks one thing.
type world struct {
	orders   []ordersapi.Order
	stock    []inventoryapi.StockLevel
	payments []paymentsapi.Payment
	ledger   paymentsapi.Ledger
}

func (w *world) serve(t *testing.T) string {
	mux := http.NewServeMux()
	list := func(items any) http.HandlerFunc {
		return func(rw http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer admin" {
				http.Error(rw, "no", http.StatusUnauthorized)
				return
			}
			_ = json.NewEncoder(rw).Encode(map[string]any{"items": items})
		}
	}
	mux.HandleFunc("GET /api/orders", func(rw http.ResponseWriter, r *http.Request) { list(w.orders)(rw, r) })
	mux.HandleFunc("GET /api/inventory/stock", func(rw http.ResponseWriter, r *http.Request) { list(w.stock)(rw, r) })
	mux.HandleFunc("GET /api/payments", func(rw http.ResponseWriter, r *http.Request) { list(w.payments)(rw, r) })
	mux.HandleFunc("GET /api/payments/ledger", func(rw http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(rw).Encode(w.ledger)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// consistent is a small system where everything adds up.
func consistent() *world {
	line := []ordersapi.Line{{SKU: "mug", Quantity: 2, PriceCents: 500}}
	return &world{
		orders: []ordersapi.Order{
			{ID: "o1", Status: ordersapi.StatusConfirmed, Lines: line, TotalCents: 1000},
			{ID: "o2", Status: ordersapi.StatusRejected, Lines: line, TotalCents: 1000},
			{ID: "o3", Status: ordersapi.StatusCancelled, Lines: line, TotalCents: 1000},
		},
		stock: []inventoryapi.StockLevel{{SKU: "mug", Received: 10, Available: 8, Reserved: 0, Sold: 2}},
		payments: []paymentsapi.Payment{
			{ID: "p1", OrderID: "o1", Status: "captured", AmountCents: 1000, CapturedCents: 1000},
			{ID: "p2", OrderID: "o2", Status: "declined", AmountCents: 1000},
			{ID: "p3", OrderID: "o3", Status: "refunded", AmountCents: 1000, CapturedCents: 1000, RefundedCents: 1000},
		},
		ledger: paymentsapi.Ledger{Balanced: true},
	}
}

func TestCheckerFindsEachViolation(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(w *world, e *Expect)
		want   string
	}{
		{"nothing wrong", func(*world, *Expect) {}, ""},
		{"pending order", func(w *world, _ *Expect) { w.orders[0].Status = ordersapi.StatusPending }, "still PENDING"},
		{"lost accepted order", func(_ *world, e *Expect) { e.Accepted = append(e.Accepted, "o9") }, "accepted order o9 does not exist"},
		{"stock not conserved", func(w *world, _ *Expect) { w.stock[0].Available = 9 }, "not conserved"},
		{"stock left reserved", func(w *world, _ *Expect) { w.stock[0].Available, w.stock[0].Reserved = 7, 1 }, "units reserved"},
		{"sold differs from orders", func(w *world, _ *Expect) { w.stock[0].Available, w.stock[0].Sold = 7, 3 }, "confirmed orders hold 2"},
		{"received changed", func(_ *world, e *Expect) { e.Received = map[string]int64{"mug": 12} }, "received stock changed"},
		{"double capture", func(w *world, _ *Expect) {
			w.payments = append(w.payments, paymentsapi.Payment{ID: "p4", OrderID: "o1", CapturedCents: 1000})
		}, "has 2 captures"},
		{"wrong amount", func(w *world, _ *Expect) { w.payments[0].CapturedCents = 999 }, "captured 999"},
		{"rejected but captured", func(w *world, _ *Expect) { w.payments[1].CapturedCents = 1000 }, "rejected order o2 has 1 captures"},
		{"cancelled not refunded", func(w *world, _ *Expect) { w.payments[2].RefundedCents = 0 }, "refunded 0, want 1000"},
		{"orphan payment", func(w *world, _ *Expect) {
			w.payments = append(w.payments, paymentsapi.Payment{ID: "p5", OrderID: "ghost"})
		}, "order ghost"},
		{"ledger off", func(w *world, _ *Expect) { w.ledger = paymentsapi.Ledger{TotalCents: 5} }, "does not balance"},
		{"two orders for a key", func(_ *world, e *Expect) { e.Keys = map[string][]string{"k": {"o1", "o2"}} }, "made 2 orders"},
		{"bad total", func(w *world, _ *Expect) { w.orders[1].TotalCents = 7 }, "not the sum of its lines"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := consistent()
			exp := Expect{Accepted: []string{"o1", "o2", "o3"}}
			c.break_(w, &exp)
			chk := &Checker{Gateway: w.serve(t), AdminToken: "admin"}
			rep, err := chk.Check(context.Background(), exp)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(rep.Violations, "\n")
			if c.want == "" {
				if got != "" {
					t.Fatalf("a consistent system has violations:\n%s", got)
				}
				if rep.Confirmed != 1 || rep.Rejected != 1 || rep.Cancelled != 1 {
					t.Fatalf("counts %+v", rep)
				}
				return
			}
			if !strings.Contains(got, c.want) {
				t.Fatalf("want a violation containing %q, got:\n%s", c.want, got)
			}
		})
	}
}
