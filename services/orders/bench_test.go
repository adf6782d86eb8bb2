package orders

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// Hot paths of a checkout in orders, measured alone:
//
//	go test -run '^$' -bench . -benchmem ./services/orders
//
// The saga benchmarks use a real SQLite database (WAL, one writer, as in
// production) and STUB inventory and payments that answer at once, so
// they measure orders' own work (its transactions, saga log and outbox)
// without the hops; bench/run measures the whole system.

// orderJSON is a checkout body as the load generator sends it.
var orderJSON = []byte(`{"lines":[{"sku":"MUG-CERAMIC-12","quantity":1},{"sku":"TEE-ORGANIC-M","quantity":2}],` +
	`"shipping_address":{"name":"Ada Lovelace","street":"1 Analytical Way","city":"London","postal_code":"N1 7AA","country":"GB"},` +
	`"card":{"number":"4242 4242 4242 4242","exp_month":12,"exp_year":2035,"cvc":"123"}}`)

// BenchmarkDecodeOrder: the strict decode of POST /api/orders' body and
// its validation, as the handler runs them.
func BenchmarkDecodeOrder(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var p PlaceOrder
		if prob := httpjson.DecodeBytes(bytes.NewReader(orderJSON), &p); prob != nil {
			b.Fatal(prob)
		}
		if errs := p.Valid(); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

// stubInventory prices every line at 1000 cents and holds stock at once.
type stubInventory struct{}

func (stubInventory) Quote(_ context.Context, lines []LineRequest) ([]ordersapi.Line, int64, string, error) {
	return priced(lines)
}

func (stubInventory) Reserve(_ context.Context, _ string, lines []LineRequest) ([]ordersapi.Line, int64, string, error) {
	return priced(lines)
}
func (stubInventory) Commit(context.Context, string) error  { return nil }
func (stubInventory) Release(context.Context, string) error { return nil }

func priced(lines []LineRequest) ([]ordersapi.Line, int64, string, error) {
	out := make([]ordersapi.Line, len(lines))
	var total int64
	for i, l := range lines {
		out[i] = ordersapi.Line{SKU: l.SKU, Quantity: l.Quantity, PriceCents: 1000}
		total += 1000 * l.Quantity
	}
	return out, total, "EUR", nil
}

// stubPayments approves every card at once.
type stubPayments struct{}

func (stubPayments) Authorize(_ context.Context, _, orderID string, _ int64, _ string, _ paymentsapi.Card) (string, error) {
	return "pay-" + orderID, nil
}
func (stubPayments) Capture(context.Context, string, string, int64) error { return nil }
func (stubPayments) Void(context.Context, string, string) error           { return nil }
func (stubPayments) Refund(context.Context, string, string, int64) error  { return nil }
func (stubPayments) Authorized(context.Context, string) (string, error)   { return "", nil }

// benchService is orders on a fresh SQLite file with stub neighbours.
func benchService(b *testing.B) *Service {
	b.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	db, err := database.Open(ctx, filepath.Join(b.TempDir(), "orders.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, log, "events", events.Migrations()); err != nil {
		b.Fatal(err)
	}
	if err := db.Migrate(ctx, log, "orders", Spec().Migrations()); err != nil {
		b.Fatal(err)
	}
	s, err := New(ctx, Config{StepTimeout: 5 * time.Second, Wait: 5 * time.Second, Owner: "bench"},
		Deps{DB: db, Inventory: stubInventory{}, Payments: stubPayments{}, Registry: prometheus.NewRegistry(), Log: log})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchClaims() *auth.Claims {
	return &auth.Claims{Email: "ada@example.com", Roles: []string{auth.RoleCustomer},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "user-1"}}
}

func benchOrder(b *testing.B) PlaceOrder {
	var p PlaceOrder
	if prob := httpjson.DecodeBytes(bytes.NewReader(orderJSON), &p); prob != nil {
		b.Fatal(prob)
	}
	return p
}

// BenchmarkCheckoutSaga: Place with STUB inventory and payments: the
// order's insert, the four steps (reserve, authorize, commit, capture),
// the confirmation with its outbox event, and the final read.
func BenchmarkCheckoutSaga(b *testing.B) {
	s := benchService(b)
	req := benchOrder(b)
	c := benchClaims()
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		o, _, err := s.Place(ctx, c, fmt.Sprintf("key-%d", i), req)
		if err != nil {
			b.Fatal(err)
		}
		if o.Status != ordersapi.StatusConfirmed {
			b.Fatalf("order %s is %s", o.ID, o.Status)
		}
	}
}

// BenchmarkSagaStep: one step, reserve, against a STUB inventory that
// answers at once: the call and the transaction that records its result,
// moves the saga on and reads the order back. Each order is placed at
// the reserve step outside the timer.
func BenchmarkSagaStep(b *testing.B) {
	s := benchService(b)
	req := benchOrder(b)
	ctx := context.Background()
	lines, total, cur, _ := priced(req.Lines)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		now := time.Now()
		o := order{ID: fmt.Sprintf("bench-%08d", i), UserID: "user-1", IdempotencyKey: fmt.Sprint("k", i),
			RequestHash: "h", Status: ordersapi.StatusPending, Lines: lines, TotalCents: total, Currency: cur,
			Shipping: req.ShippingAddress, SagaStep: stepReserve, StepDeadline: now.Add(time.Minute), CreatedAt: now, UpdatedAt: now}
		if err := s.db.InTx(ctx, func(tx *sql.Tx) error { return s.store.insert(ctx, tx, o, "bench", now.Add(time.Minute)) }); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		next, err := s.sagas.step(ctx, o, &req.Card)
		if err != nil {
			b.Fatal(err)
		}
		if next.SagaStep != stepAuthorize {
			b.Fatalf("after reserve the saga is at %q", next.SagaStep)
		}
	}
}
