package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
)

// These tests drive the service and its store against a real database of
// each dialect: SQLite always, Postgres when MICROSHOP_TEST_POSTGRES_URL
// is set. They read the outbox table directly to see which events each
// change wrote, since no relay runs here.

func newService(t *testing.T, db *database.DB, cfg Config) *Service {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if err := db.Migrate(ctx, log, "events", events.Migrations()); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, log, "inventory", Spec().Migrations()); err != nil {
		t.Fatal(err)
	}
	if cfg.ReservationTTL == 0 {
		cfg.ReservationTTL = time.Minute
	}
	s, err := New(ctx, cfg, Deps{DB: db, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkConservation(t, s) })
	return s
}

func addProduct(t *testing.T, s *Service, sku string, stock, price int64, currency string) {
	t.Helper()
	np := NewProduct{SKU: sku, Name: "Product " + sku, Description: "about " + sku, PriceCents: price, Currency: currency, Stock: stock}
	if errs := np.Valid(); len(errs) > 0 {
		t.Fatalf("test product %s is invalid: %v", sku, errs)
	}
	if _, err := s.CreateProduct(context.Background(), np); err != nil {
		t.Fatalf("creating %s: %v", sku, err)
	}
}

func stockOf(t *testing.T, s *Service, sku string) inventoryapi.StockLevel {
	t.Helper()
	levels, err := s.Stock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range levels {
		if l.SKU == sku {
			return l
		}
	}
	t.Fatalf("no stock level for %s", sku)
	return inventoryapi.StockLevel{}
}

func wantStock(t *testing.T, s *Service, sku string, received, available, reserved, sold int64) {
	t.Helper()
	got := stockOf(t, s, sku)
	want := inventoryapi.StockLevel{SKU: sku, Received: received, Available: available, Reserved: reserved, Sold: sold}
	if got != want {
		t.Fatalf("stock of %s = %+v, want %+v", sku, got, want)
	}
}

// checkConservation asserts received = available + reserved + sold for
// every product: the invariant no operation may break.
func checkConservation(t *testing.T, s *Service) {
	t.Helper()
	levels, err := s.Stock(context.Background())
	if err != nil {
		t.Errorf("reading stock: %v", err)
		return
	}
	for _, l := range levels {
		if l.Received != l.Available+l.Reserved+l.Sold || l.Available < 0 || l.Reserved < 0 || l.Sold < 0 {
			t.Errorf("stock of %s is not conserved: %+v", l.SKU, l)
		}
	}
}

// outbox returns the events waiting in the outbox, in order.
func outbox(t *testing.T, db *database.DB) []events.Event {
	t.Helper()
	rows, err := db.Query(`SELECT event_id, event_type, version, data FROM outbox ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []events.Event
	for rows.Next() {
		var e events.Event
		var data string
		if err := rows.Scan(&e.ID, &e.Type, &e.Version, &data); err != nil {
			t.Fatal(err)
		}
		e.Data = json.RawMessage(data)
		out = append(out, e)
	}
	return out
}

func eventsOfType(t *testing.T, db *database.DB, typ string) []events.Event {
	var out []events.Event
	for _, e := range outbox(t, db) {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func reserve(s *Service, orderID string, lines ...inventoryapi.ReserveLine) (inventoryapi.Reservation, bool, error) {
	return s.Reserve(context.Background(), ReserveRequest{OrderID: orderID, Lines: lines})
}

func line(sku string, qty int64) inventoryapi.ReserveLine {
	return inventoryapi.ReserveLine{SKU: sku, Quantity: qty}
}

func TestSeedCatalog(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		s := newService(t, db, Config{SeedCatalog: true})
		levels, err := s.Stock(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(levels) < 30 {
			t.Fatalf("the seed catalog has %d products, want at least 30", len(levels))
		}
		for _, l := range levels {
			p, err := s.Product(context.Background(), l.SKU)
			if err != nil {
				t.Fatal(err)
			}
			if l.Received < 20 || l.Received > 200 || l.Available != l.Received || p.Currency != "USD" || p.PriceCents <= 0 || p.Name == "" {
				t.Errorf("seed product %+v %+v", p, l)
			}
		}
		// A second start leaves the catalog alone, edits included.
		if _, err := s.Restock(context.Background(), levels[0].SKU, 5); err != nil {
			t.Fatal(err)
		}
		s2, err := New(context.Background(), s.cfg, Deps{DB: db, Log: s.log})
		if err != nil {
			t.Fatal(err)
		}
		again, _ := s2.Stock(context.Background())
		if len(again) != len(levels) || again[0].Received != levels[0].Received+5 {
			t.Fatalf("the seed ran again: %d products, first %+v", len(again), again[0])
		}
	})
}

func TestSeedSkipsAStockedCatalog(t *testing.T) {
	db := dbtest.SQLite(t)
	s := newService(t, db, Config{})
	addProduct(t, s, "ONLY-ONE", 3, 100, "USD")
	if _, err := New(context.Background(), Config{ReservationTTL: time.Minute, SeedCatalog: true}, Deps{DB: db, Log: s.log}); err != nil {
		t.Fatal(err)
	}
	if levels, _ := s.Stock(context.Background()); len(levels) != 1 {
		t.Fatalf("the seed was loaded into a catalog that had products: %d", len(levels))
	}
}

func TestListSearchAndPages(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		s := newService(t, db, Config{})
		ctx := context.Background()
		// Skus whose byte order differs from a locale's order.
		skus := []string{"b1", "A_1", "a-2", "B-1", "A-1", "Z9", "a_1", "0-x", "A1"}
		for _, sku := range skus {
			addProduct(t, s, sku, 1, 100, "USD")
		}
		set := func(sku, name, desc string) {
			if _, err := s.UpdateProduct(ctx, sku, ProductUpdate{Name: &name, Description: &desc}); err != nil {
				t.Fatal(err)
			}
		}
		set("b1", "Ünïcode Mug", "a mug")
		set("B-1", "Cotton Tee", "100% cotton")
		set("Z9", "snake_case sticker", "vinyl")
		set("A1", "Plain mug", "MUG for tea")

		var all []string
		after := ""
		for pages := 0; ; pages++ {
			page, more, err := s.Products(ctx, "", after, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page {
				all = append(all, p.SKU)
			}
			if !more {
				break
			}
			after = page[len(page)-1].SKU
			if pages > 10 {
				t.Fatal("paging does not end")
			}
		}
		want := slices.Clone(skus)
		slices.Sort(want) // byte order
		if !slices.Equal(all, want) {
			t.Fatalf("paged through %v, want %v", all, want)
		}

		for _, c := range []struct {
			q    string
			want []string
		}{
			{"mug", []string{"A1", "b1"}},
			{"MUG", []string{"A1", "b1"}},
			{"ÜNÏ", []string{"b1"}},     // case folding beyond ASCII, on SQLite too
			{"100%", []string{"B-1"}},   // % is literal
			{"%", []string{"B-1"}},      // and matches only itself
			{"e_c", []string{"Z9"}},     // _ is literal
			{`\`, nil},                  // the escape character is literal too
			{"for tea", []string{"A1"}}, // descriptions are searched
			{"nothing like it", nil},
		} {
			page, more, err := s.Products(ctx, c.q, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range page {
				got = append(got, p.SKU)
			}
			if !slices.Equal(got, c.want) || more {
				t.Errorf("q=%q: %v (more %v), want %v", c.q, got, more, c.want)
			}
		}
	})
}

func TestCreateUpdateRestock(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		s := newService(t, db, Config{})
		ctx := context.Background()
		addProduct(t, s, "LAMP", 4, 4900, "USD")
		if _, err := s.CreateProduct(ctx, NewProduct{SKU: "LAMP", Name: "x", PriceCents: 1, Currency: "USD"}); !errors.Is(err, ErrSKUTaken) {
			t.Fatalf("duplicate sku: %v", err)
		}
		price := int64(5900)
		p, err := s.UpdateProduct(ctx, "LAMP", ProductUpdate{PriceCents: &price})
		if err != nil || p.PriceCents != 5900 || p.Name != "Product LAMP" || p.Available != 4 {
			t.Fatalf("update: %+v %v", p, err)
		}
		if _, err := s.UpdateProduct(ctx, "NOPE", ProductUpdate{PriceCents: &price}); !errors.Is(err, ErrProductNotFound) {
			t.Fatalf("update of an unknown sku: %v", err)
		}
		st, err := s.Restock(ctx, "LAMP", 6)
		if err != nil || st != (inventoryapi.StockLevel{SKU: "LAMP", Received: 10, Available: 10}) {
			t.Fatalf("restock: %+v %v", st, err)
		}
		if _, err := s.Restock(ctx, "NOPE", 1); !errors.Is(err, ErrProductNotFound) {
			t.Fatalf("restock of an unknown sku: %v", err)
		}
		// Concurrent edits of different fields both land.
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				name, desc := fmt.Sprintf("Lamp %d", i), fmt.Sprintf("desc %d", i)
				u := ProductUpdate{Name: &name}
				if i%2 == 1 {
					u = ProductUpdate{Description: &desc}
				}
				if _, err := s.UpdateProduct(ctx, "LAMP", u); err != nil {
					t.Errorf("concurrent update: %v", err)
				}
			})
		}
		wg.Wait()
		final, err := s.Product(ctx, "LAMP")
		if err != nil || !strings.HasPrefix(final.Name, "Lamp ") || !strings.HasPrefix(final.Description, "desc ") || final.PriceCents != 5900 {
			t.Fatalf("an edit was lost: %+v %v", final, err)
		}
		if len(outbox(t, db)) != 0 {
			t.Fatal("catalog edits wrote events")
		}
	})
}

func TestReserveAllOrNothing(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		s := newService(t, db, Config{})
		addProduct(t, s, "A", 5, 250, "USD")
		addProduct(t, s, "B", 2, 1000, "USD")
		addProduct(t, s, "C", 2, 1000, "USD")
		// A product of before the shop's currency was changed: the
		// shop refuses new ones in another currency, and an order still
		// cannot mix it with today's.
		addProduct(t, newService(t, db, Config{Currency: "EUR"}), "E", 9, 700, "EUR")

		// B and C are short; A alone could be reserved but is not.
		_, _, err := reserve(s, "o1", line("C", 3), line("A", 3), line("B", 3))
		var oos *OutOfStockError
		if !errors.As(err, &oos) || !errors.Is(err, ErrOutOfStock) {
			t.Fatalf("want out of stock, got %v", err)
		}
		want := []Shortage{{Line: 0, SKU: "C", Requested: 3, Available: 2}, {Line: 2, SKU: "B", Requested: 3, Available: 2}}
		if !slices.Equal(oos.Short, want) {
			t.Fatalf("shortages %+v, want %+v", oos.Short, want)
		}
		wantStock(t, s, "A", 5, 5, 0, 0)
		wantStock(t, s, "B", 2, 2, 0, 0)

		_, _, err = reserve(s, "o1", line("A", 1), line("GHOST", 1), line("B", 1), line("GONE", 1))
		var invalid validation.Errors
		if !errors.As(err, &invalid) || len(invalid) != 2 || invalid[0].Field != "lines[1].sku" || invalid[1].Field != "lines[3].sku" {
			t.Fatalf("unknown skus: %v", err)
		}
		_, _, err = reserve(s, "o1", line("A", 1), line("E", 1))
		if invalid := invalidFields(err); len(invalid) == 0 || invalid[0].Field != "lines" {
			t.Fatalf("mixed currencies: %v", err)
		}
		wantStock(t, s, "A", 5, 5, 0, 0)
		if _, err := s.Commit(context.Background(), "o1"); !errors.Is(err, ErrReservationNotFound) {
			t.Fatalf("a refused reservation was stored: %v", err)
		}
		if n := len(outbox(t, db)); n != 0 {
			t.Fatalf("refused reservations wrote %d events", n)
		}

		r, created, err := reserve(s, "o1", line("B", 2), line("A", 3))
		if err != nil || !created {
			t.Fatalf("reserve: %v %v", created, err)
		}
		if r.Status != "held" || r.TotalCents != 2*1000+3*250 || r.Currency != "USD" || len(r.Lines) != 2 ||
			r.Lines[0] != (inventoryapi.ReservationLine{SKU: "B", Quantity: 2, PriceCents: 1000, Currency: "USD"}) ||
			r.ExpiresAt.Sub(r.CreatedAt) != time.Minute {
			t.Fatalf("reservation %+v", r)
		}
		wantStock(t, s, "A", 5, 2, 3, 0)
		wantStock(t, s, "B", 2, 0, 2, 0)
		evs := eventsOfType(t, db, "inventory.reserved")
		var body inventoryapi.StockReserved
		if len(evs) != 1 || evs[0].Decode(&body) != nil || body.OrderID != "o1" || body.TotalCents != r.TotalCents || len(body.Lines) != 2 {
			t.Fatalf("reserved events %+v", evs)
		}
	})
}

func TestReserveIsIdempotent(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		s := newService(t, db, Config{})
		addProduct(t, s, "A", 10, 100, "USD")
		addProduct(t, s, "B", 10, 100, "USD")
		first, created, err := reserve(s, "o1", line("A", 2), line("B", 1))
		if err != nil || !created {
			t.Fatal(created, err)
		}
		// Again, lines in another order: the same reservation, nothing moves.
		again, created, err := reserve(s, "o1", line("B", 1), line("A", 2))
		if err != nil || created || !again.ExpiresAt.Equal(first.ExpiresAt) || again.TotalCents != first.TotalCents {
			t.Fatalf("repeat: %+v %v %v", again, created, err)
		}
		wantStock(t, s, "A", 10, 8, 2, 0)
		if _, _, err := reserve(s, "o1", line("A", 3)); !errors.Is(err, ErrReservationMismatch) {
			t.Fatalf("same order, other lines: %v", err)
		}
		if _, err := s.Commit(context.Background(), "o1"); err != nil {
			t.Fatal(err)
		}
		after, created, err := reserve(s, "o1", line("A", 2), line("B", 1))
		if err != nil || created || after.Status != "committed" {
			t.Fatalf("repeat after commit: %+v %v %v", after, created, err)
		}
		wantStock(t, s, "A", 10, 8, 0, 2)
		if n := len(eventsOfType(t, db, "inventory.reserved")); n != 1 {
			t.Fatalf("%d reserved events, want 1", n)
		}

		// The same new order sent by many callers at once is reserved once.
		var wg sync.WaitGroup
		var mu sync.Mutex
		createdCount := 0
		for range 10 {
			wg.Go(func() {
				_, created, err := reserve(s, "o2", line("B", 3))
				if err != nil {
					t.Errorf("concurrent repeat: %v", err)
				}
				if created {
					mu.Lock()
					createdCount++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if createdCount != 1 {
			t.Fatalf("%d calls created the reservation, want 1", createdCount)
		}
		wantStock(t, s, "B", 10, 6, 3, 1)
	})
}

func TestConcurrentReservationsNeverOversell(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		s := newService(t, db, Config{})
		addProduct(t, s, "LAST", 10, 100, "USD")
		addProduct(t, s, "MORE", 1000, 100, "USD")
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			won, oos int
		)
		for i := range 50 {
			wg.Go(func() {
				// Half also take a product with plenty, in the other
				// order, so rows are locked in both orders of the request.
				lines := []inventoryapi.ReserveLine{line("LAST", 1)}
				if i%2 == 0 {
					lines = []inventoryapi.ReserveLine{line("MORE", 1), line("LAST", 1)}
				}
				_, _, err := reserve(s, fmt.Sprintf("race-%d", i), lines...)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case errors.Is(err, ErrOutOfStock):
					oos++
				default:
					t.Errorf("reservation %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if won != 10 || oos != 40 {
			t.Fatalf("%d reservations won and %d were out of stock; want 10 and 40", won, oos)
		}
		wantStock(t, s, "LAST", 10, 0, 10, 0)
		m := stockOf(t, s, "MORE")
		if m.Reserved > 10 || m.Received != m.Available+m.Reserved {
			t.Fatalf("MORE: %+v", m)
		}
	})
}

func TestCommitAndRelease(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		s := newService(t, db, Config{})
		ctx := context.Background()
		addProduct(t, s, "A", 10, 100, "USD")
		addProduct(t, s, "B", 10, 100, "USD")

		// held -> committed: reserved becomes sold, once.
		if _, _, err := reserve(s, "buy", line("B", 1), line("A", 4)); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			r, err := s.Commit(ctx, "buy")
			if err != nil || r.Status != "committed" {
				t.Fatalf("commit: %+v %v", r, err)
			}
			wantStock(t, s, "A", 10, 6, 0, 4)
		}
		// committed -> released (a cancelled order): sold becomes available, once.
		for range 2 {
			r, err := s.Release(ctx, "buy")
			if err != nil || r.Status != "released" || r.ReleaseReason != "released" {
				t.Fatalf("release: %+v %v", r, err)
			}
			wantStock(t, s, "A", 10, 10, 0, 0)
			wantStock(t, s, "B", 10, 10, 0, 0)
		}
		if _, err := s.Commit(ctx, "buy"); !errors.Is(err, ErrReservationReleased) {
			t.Fatalf("commit after release: %v", err)
		}

		// held -> released: reserved becomes available.
		if _, _, err := reserve(s, "drop", line("A", 3)); err != nil {
			t.Fatal(err)
		}
		wantStock(t, s, "A", 10, 7, 3, 0)
		for range 2 {
			if _, err := s.Release(ctx, "drop"); err != nil {
				t.Fatal(err)
			}
			wantStock(t, s, "A", 10, 10, 0, 0)
		}
		if _, err := s.Commit(ctx, "drop"); !errors.Is(err, ErrReservationReleased) {
			t.Fatalf("commit after release: %v", err)
		}
		for _, f := range []func(context.Context, string) (inventoryapi.Reservation, error){s.Commit, s.Release} {
			if _, err := f(ctx, "never-reserved"); !errors.Is(err, ErrReservationNotFound) {
				t.Fatalf("unknown order: %v", err)
			}
		}

		rel := eventsOfType(t, db, "inventory.released")
		if len(rel) != 2 {
			t.Fatalf("%d released events, want 2 (one per release)", len(rel))
		}
		var first, second inventoryapi.StockReleased
		if rel[0].Decode(&first) != nil || rel[1].Decode(&second) != nil ||
			first.OrderID != "buy" || first.PreviousStatus != "committed" || first.Reason != "released" || len(first.Lines) != 2 ||
			second.OrderID != "drop" || second.PreviousStatus != "held" {
			t.Fatalf("released events %+v %+v", first, second)
		}

		// Commits and releases racing on one reservation leave it in one
		// state and the stock where that state says.
		if _, _, err := reserve(s, "race", line("A", 5)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				var err error
				if i%2 == 0 {
					_, err = s.Commit(ctx, "race")
				} else {
					_, err = s.Release(ctx, "race")
				}
				if err != nil && !errors.Is(err, ErrReservationReleased) {
					t.Errorf("racing: %v", err)
				}
			})
		}
		wg.Wait()
		r, _, _ := reserve(s, "race", line("A", 5))
		st := stockOf(t, s, "A")
		if r.Status != "released" || st.Available != 10 {
			t.Fatalf("after the race: %s, %+v", r.Status, st)
		}
	})
}

func TestExpiry(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		s := newService(t, db, Config{ReservationTTL: time.Minute})
		ctx := context.Background()
		addProduct(t, s, "A", 10, 100, "USD")
		now := time.Now()
		s.now = func() time.Time { return now }

		for _, id := range []string{"late", "lazy", "kept"} {
			if _, _, err := reserve(s, id, line("A", 2)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Commit(ctx, "kept"); err != nil {
			t.Fatal(err)
		}
		if n, err := s.ExpireHeld(ctx); err != nil || n != 0 {
			t.Fatalf("nothing is due yet: %d %v", n, err)
		}

		now = now.Add(time.Minute)
		// A commit past the time releases instead, on the spot.
		if _, err := s.Commit(ctx, "late"); !errors.Is(err, ErrReservationReleased) {
			t.Fatalf("commit after expiry: %v", err)
		}
		wantStock(t, s, "A", 10, 6, 2, 2)
		if n, err := s.ExpireHeld(ctx); err != nil || n != 1 {
			t.Fatalf("sweep: %d %v", n, err)
		}
		wantStock(t, s, "A", 10, 8, 0, 2)
		if n, _ := s.ExpireHeld(ctx); n != 0 {
			t.Fatalf("a second sweep released %d", n)
		}
		r, _, _ := reserve(s, "lazy", line("A", 2))
		if r.Status != "released" || r.ReleaseReason != "expired" {
			t.Fatalf("expired reservation %+v", r)
		}
		var reasons []string
		for _, e := range eventsOfType(t, db, "inventory.released") {
			var b inventoryapi.StockReleased
			if err := e.Decode(&b); err != nil {
				t.Fatal(err)
			}
			reasons = append(reasons, b.OrderID+":"+b.Reason)
		}
		if !slices.Equal(reasons, []string{"late:expired", "lazy:expired"}) {
			t.Fatalf("released events %v", reasons)
		}
	})
}

func TestLowStockOncePerCrossing(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		s := newService(t, db, Config{LowStockThreshold: 5})
		ctx := context.Background()
		addProduct(t, s, "A", 10, 100, "USD")
		addProduct(t, s, "B", 100, 100, "USD")
		step := func(id string, qty int64) {
			t.Helper()
			if _, _, err := reserve(s, id, line("B", 1), line("A", qty)); err != nil {
				t.Fatal(err)
			}
		}
		lows := func() []inventoryapi.LowStock {
			var out []inventoryapi.LowStock
			for _, e := range eventsOfType(t, db, "inventory.low_stock") {
				var b inventoryapi.LowStock
				if err := e.Decode(&b); err != nil {
					t.Fatal(err)
				}
				out = append(out, b)
			}
			return out
		}
		step("r1", 3) // 10 -> 7
		step("r2", 2) // 7 -> 5: still at the threshold
		if n := len(lows()); n != 0 {
			t.Fatalf("%d low-stock events above the threshold", n)
		}
		step("r3", 1) // 5 -> 4: crosses
		step("r4", 1) // 4 -> 3: already below
		want := []inventoryapi.LowStock{{SKU: "A", Name: "Product A", Available: 4, Threshold: 5}}
		if got := lows(); !slices.Equal(got, want) {
			t.Fatalf("low-stock events %+v, want %+v", got, want)
		}
		// Back above the threshold, a new crossing is announced again.
		for _, id := range []string{"r1", "r2", "r3", "r4"} {
			if _, err := s.Release(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		step("r5", 9) // 10 -> 1 in one go
		want = append(want, inventoryapi.LowStock{SKU: "A", Name: "Product A", Available: 1, Threshold: 5})
		if got := lows(); !slices.Equal(got, want) {
			t.Fatalf("low-stock events %+v, want %+v", got, want)
		}
	})
}

func TestConfigIsChecked(t *testing.T) {
	db := dbtest.SQLite(t)
	log := slog.New(slog.DiscardHandler)
	if _, err := New(context.Background(), Config{}, Deps{DB: db, Log: log}); err == nil {
		t.Error("a zero reservation ttl was accepted")
	}
	if _, err := New(context.Background(), Config{ReservationTTL: time.Second, LowStockThreshold: -1}, Deps{DB: db, Log: log}); err == nil {
		t.Error("a negative threshold was accepted")
	}
	if d := sweepInterval(15 * time.Minute); d != 5*time.Second {
		t.Errorf("sweep interval for 15m: %s", d)
	}
	if d := sweepInterval(time.Millisecond); d != 50*time.Millisecond {
		t.Errorf("sweep interval for 1ms: %s", d)
	}
}

func TestQuote(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		s := newService(t, db, Config{})
		ctx := context.Background()
		addProduct(t, s, "A", 1, 250, "USD")
		addProduct(t, s, "B", 0, 1000, "USD")
		addProduct(t, newService(t, db, Config{Currency: "EUR"}), "E", 9, 700, "EUR") // of a former shop currency
		// Prices only: B has no stock and is quoted all the same.
		q, err := s.Quote(ctx, QuoteRequest{Lines: []inventoryapi.ReserveLine{line("B", 3), line("A", 2)}})
		if err != nil || q.TotalCents != 3500 || q.Currency != "USD" ||
			!slices.Equal(q.Lines, []inventoryapi.ReservationLine{{SKU: "B", Quantity: 3, PriceCents: 1000, Currency: "USD"}, {SKU: "A", Quantity: 2, PriceCents: 250, Currency: "USD"}}) {
			t.Fatalf("quote: %+v %v", q, err)
		}
		_, err = s.Quote(ctx, QuoteRequest{Lines: []inventoryapi.ReserveLine{line("NOPE", 1), line("A", 1)}})
		if invalid := invalidFields(err); len(invalid) == 0 || invalid[0].Field != "lines[0].sku" {
			t.Fatalf("unknown sku: %v", err)
		}
		_, err = s.Quote(ctx, QuoteRequest{Lines: []inventoryapi.ReserveLine{line("A", 1), line("E", 1)}})
		if invalid := invalidFields(err); len(invalid) == 0 || invalid[0].Field != "lines" {
			t.Fatalf("mixed currencies: %v", err)
		}
		wantStock(t, s, "A", 1, 1, 0, 0)
		if n := len(outbox(t, db)); n != 0 {
			t.Fatalf("quotes wrote %d events", n)
		}
	})
}

// invalidFields returns the fields err refuses, or none when it is not a
// validation error.
func invalidFields(err error) validation.Errors {
	var invalid validation.Errors
	errors.As(err, &invalid)
	return invalid
}
