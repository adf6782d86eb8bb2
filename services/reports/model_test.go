package reports

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/reports/reportsapi"
)

// newModel is reports over a fresh, migrated db, without a broker: tests
// hand events to its consumers directly.
func newModel(t *testing.T, db *database.DB) *Service {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if err := db.Migrate(ctx, log, "events", events.Migrations()); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, log, "reports", Spec().Migrations()); err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, Config{}, Deps{DB: db, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// apply hands each event to the consumer of its subject, as the broker
// would, and returns how many were applied (not duplicates).
func (s *Service) apply(t *testing.T, es ...events.Event) int {
	t.Helper()
	byType := map[string]*events.Consumer{}
	for _, c := range s.Consumers() {
		byType[c.Subjects[0]] = c
	}
	n := 0
	for _, e := range es {
		outcome, err := byType[e.Type].HandleEvent(context.Background(), e)
		if err != nil {
			t.Fatalf("applying %s %s: %v", e.Type, e.ID, err)
		}
		if outcome == "handled" {
			n++
		}
	}
	return n
}

// figures are everything reports answer about the scenario.
type figures struct {
	Summary reportsapi.Summary
	Days    []reportsapi.Figures
	Hours   []reportsapi.Bucket
	Weeks   []reportsapi.Bucket
	Top     []reportsapi.Product
}

func (s *Service) figures(t *testing.T) figures {
	t.Helper()
	ctx := context.Background()
	var f figures
	var err error
	if f.Summary, err = s.Summary(ctx, "USD"); err != nil {
		t.Fatal(err)
	}
	sales := func(from, to time.Time, bucket string) reportsapi.Sales {
		out, err := s.Sales(ctx, SalesQuery{Range: Range{From: from, To: to}, Bucket: bucket, Currency: "USD"})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, b := range sales(Monday, Monday.AddDate(0, 0, 8), reportsapi.BucketDay).Buckets {
		f.Days = append(f.Days, b.Figures)
	}
	f.Hours = sales(Monday.Add(10*time.Hour), Monday.Add(12*time.Hour), reportsapi.BucketHour).Buckets
	f.Weeks = sales(Monday, Monday.AddDate(0, 0, 14), reportsapi.BucketWeek).Buckets
	top, err := s.TopProducts(ctx, TopQuery{Range: Range{From: Monday, To: Monday.AddDate(0, 0, 7)}, Currency: "USD", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	f.Top = top.Items
	return f
}

func (f figures) check(t *testing.T) {
	t.Helper()
	if f.Summary != WantSummary {
		t.Errorf("summary\n got %+v\nwant %+v", f.Summary, WantSummary)
	}
	if !reflect.DeepEqual(f.Days, WantDays) {
		t.Errorf("days\n got %+v\nwant %+v", f.Days, WantDays)
	}
	wantHours := []reportsapi.Bucket{
		{Start: Monday.Add(10 * time.Hour), Figures: reportsapi.Figures{Orders: 2, RevenueCents: 1500, NetCents: 1500}},
		{Start: Monday.Add(11 * time.Hour), Figures: reportsapi.Figures{Orders: 1, RevenueCents: 700, NetCents: 700}},
	}
	if !reflect.DeepEqual(f.Hours, wantHours) {
		t.Errorf("hours\n got %+v\nwant %+v", f.Hours, wantHours)
	}
	wantWeeks := []reportsapi.Bucket{
		{Start: Monday, Figures: reportsapi.Figures{Orders: 4, RevenueCents: 2600, RefundsCents: 900, NetCents: 1700}},
		{Start: Monday.AddDate(0, 0, 7), Figures: reportsapi.Figures{Orders: 1, RevenueCents: 250, NetCents: 250}},
	}
	if !reflect.DeepEqual(f.Weeks, wantWeeks) {
		t.Errorf("weeks\n got %+v\nwant %+v", f.Weeks, wantWeeks)
	}
	if !reflect.DeepEqual(f.Top, WantTop) {
		t.Errorf("top products\n got %+v\nwant %+v", f.Top, WantTop)
	}
}

// TestAnyOrderSameFigures applies the scenario's events in many orders,
// each event on its own as consumers of different subjects would, and
// every order must give the same figures.
func TestAnyOrderSameFigures(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		s := newModel(t, db)
		sc := NewScenario()
		orders := map[string][]events.Event{
			"as published": sc.Events,
			"reversed":     reversed(sc.Events),
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 6 {
			es := append([]events.Event(nil), sc.Events...)
			rng.Shuffle(len(es), func(a, b int) { es[a], es[b] = es[b], es[a] })
			orders["shuffle "+string(rune('a'+i))] = es
		}
		for name, es := range orders {
			t.Run(name, func(t *testing.T) {
				if err := s.store.wipe(context.Background(), s.rebuilds.names); err != nil {
					t.Fatal(err)
				}
				if n := s.apply(t, es...); n != len(es) {
					t.Fatalf("applied %d of %d events", n, len(es))
				}
				// Delivered again, in another order: nothing changes.
				if n := s.apply(t, reversed(es)...); n != 0 {
					t.Fatalf("%d redelivered events were applied again", n)
				}
				s.figures(t).check(t)
			})
		}
	})
}

func reversed(es []events.Event) []events.Event {
	out := make([]events.Event, len(es))
	for i, e := range es {
		out[len(es)-1-i] = e
	}
	return out
}

// TestBadEventsArePermanent: events no retry can fix go to the dead
// letters instead of blocking their stream.
func TestBadEventsArePermanent(t *testing.T) {
	s := newModel(t, dbtest.SQLite(t))
	sc := NewScenario()
	byType := map[string]*events.Consumer{}
	for _, c := range s.Consumers() {
		byType[c.Subjects[0]] = c
	}
	noID := confirmed("", "USD", Monday)
	garbled := confirmed("o1", "USD", Monday)
	garbled.Data = []byte(`{"order_id": 12}`)
	for name, e := range map[string]events.Event{"unknown version": sc.Unknown, "no order id": noID, "garbled body": garbled} {
		outcome, err := byType[e.Type].HandleEvent(context.Background(), e)
		if outcome != "dead_letter" || !events.IsPermanent(err) {
			t.Errorf("%s: outcome %s, err %v; want a dead letter", name, outcome, err)
		}
	}
	if sum, err := s.Summary(context.Background(), "USD"); err != nil || sum.EventsApplied != 0 || sum.RevenueCents != 0 {
		t.Errorf("summary %+v, %v: want nothing applied", sum, err)
	}
}

// TestOrdersVersion1StillApplied: orders.* events of version 1 (with the
// email) stay in the stream until they age out, so reports applies them
// as it does version 2.
func TestOrdersVersion1StillApplied(t *testing.T) {
	s := newModel(t, dbtest.SQLite(t))
	ls, total := lines("SKU-A", 1)
	es := []events.Event{
		envelope(ordersapi.OrderConfirmedV1{OrderID: "o1", UserID: "u-o1", Email: "a@example.com", Lines: ls,
			TotalCents: total, Currency: "USD", PaymentID: "pay-o1", ConfirmedAt: Monday}, Monday),
		envelope(ordersapi.OrderRejectedV1{OrderID: "o2", UserID: "u-o2", Email: "b@example.com", Reason: "out of stock",
			Lines: ls, TotalCents: total, Currency: "USD", RejectedAt: Monday}, Monday),
		envelope(ordersapi.OrderCancelledV1{OrderID: "o3", UserID: "u-o3", Email: "c@example.com", Lines: ls,
			TotalCents: total, RefundedCents: total, Currency: "USD", CancelledAt: Monday}, Monday),
	}
	if n := s.apply(t, es...); n != len(es) {
		t.Fatalf("applied %d of %d version 1 events", n, len(es))
	}
	sum, err := s.Summary(context.Background(), "USD")
	if err != nil || sum.OrdersConfirmed != 1 || sum.OrdersRejected != 1 || sum.OrdersCancelled != 1 || sum.EventsApplied != 3 {
		t.Errorf("summary %+v, %v: want one order confirmed, one rejected, one cancelled", sum, err)
	}
}

// TestOneRebuildAtATime: a second rebuild is refused while one runs, and
// taken over once its owner stops beating.
func TestOneRebuildAtATime(t *testing.T) {
	ctx := context.Background()
	s := newModel(t, dbtest.SQLite(t))
	if st, err := s.RebuildStatus(ctx); err != nil || st.State != reportsapi.RebuildIdle || st.ID != "" {
		t.Fatalf("before any rebuild: %+v, %v", st, err)
	}
	first, err := s.StartRebuild(ctx)
	if err != nil || first.State != reportsapi.RebuildRunning || first.ID == "" || first.StartedAt == nil {
		t.Fatalf("first rebuild: %+v, %v", first, err)
	}
	second, err := s.StartRebuild(ctx)
	if err == nil || second.ID != first.ID {
		t.Fatalf("second rebuild: %+v, %v; want ErrRebuildRunning naming the first", second, err)
	}
	if id, _ := s.Rebuilding(ctx); id != first.ID {
		t.Fatalf("Rebuilding = %q, want %q", id, first.ID)
	}
	// Another process sees a live owner and leaves it; a dead one (no
	// heartbeat for longer than StaleRebuild) is taken over.
	now := time.Now()
	if id, err := s.store.takeRebuild(ctx, "other", now.UnixMilli(), now.Add(-time.Minute).UnixMilli()); err != nil || id != "" {
		t.Fatalf("took a live rebuild: %q, %v", id, err)
	}
	if id, err := s.store.takeRebuild(ctx, "other", now.UnixMilli(), now.Add(time.Second).UnixMilli()); err != nil || id != first.ID {
		t.Fatalf("did not take a dead rebuild: %q, %v", id, err)
	}
	if ok, err := s.store.beat(ctx, first.ID, s.rebuilds.owner, 0, 0, now.UnixMilli()); err != nil || ok {
		t.Fatalf("the first owner still beats: %v, %v", ok, err)
	}
}
