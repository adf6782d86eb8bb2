package invariants

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	orders "github.com/microshop/microshop/services/orders/contract"
	payments "github.com/microshop/microshop/services/payments/contract"
)

// TestTheOldNameChecks: the alias is the checker (its own tests are in
// internal/invariants): a pending order through it is a violation.
func TestTheOldNameChecks(t *testing.T) {
	mux := http.NewServeMux()
	items := func(v any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]any{"items": v})
		}
	}
	mux.HandleFunc("GET /api/orders", items([]orders.Order{{ID: "o1", Status: orders.StatusPending}}))
	mux.HandleFunc("GET /api/inventory/stock", items([]any{}))
	mux.HandleFunc("GET /api/payments", items([]any{}))
	mux.HandleFunc("GET /api/payments/ledger", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(payments.Ledger{Balanced: true})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var chk *Checker = &Checker{Gateway: srv.URL, AdminToken: "admin"}
	var rep Report
	rep, err := chk.Check(context.Background(), Expect{Accepted: []string{"o1"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pending != 1 || !strings.Contains(strings.Join(rep.Violations, "\n"), "still PENDING") {
		t.Fatalf("report %+v", rep)
	}
}
