package reports_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/openapi/openapitest"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/reports"
	"github.com/microshop/microshop/services/reports/reportsapi"
	"github.com/microshop/microshop/services/users"
)

// shop is reports as it runs, on a servicetest.Shop: the streams of
// orders, payments and inventory on its NATS, and a real reports service.
// The test publishes events the way the producers' relays do (the
// envelope as body, its id as Nats-Msg-Id) and talks to reports through
// a proxy that checks every exchange against its OpenAPI document.
type shop struct {
	*servicetest.Shop
	js      jetstream.JetStream
	svc     *servicetest.Service
	url     string // reports, through the OpenAPI checker
	checker *openapitest.Checker
	source  string // reports' database
}

func start(t *testing.T, postgres bool) *shop {
	t.Helper()
	h := &shop{Shop: servicetest.NewShop(t, users.Spec(), servicetest.ShopOptions{})}
	h.js = h.JetStream(t, "orders", "payments", "inventory")
	data := t.TempDir()
	h.source = filepath.Join(data, "reports.db")
	args := []string{"--data", data, "--rebuild-stale-after", "1s"}
	if postgres {
		h.source = dbtest.PostgresURL(t)
		args = append(args, "--db", h.source)
	}
	h.svc = h.Start(t, reports.Spec(), args, nil)
	h.url, h.checker = openapitest.Proxy(t, reports.OpenAPI(), h.svc.URL)
	return h
}

// publish sends events as a producer's relay does.
func (h *shop) publish(t *testing.T, es ...events.Event) {
	t.Helper()
	for _, e := range es {
		msg, err := events.NewMsg(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatalf("publishing %s: %v", e.Type, err)
		}
	}
}

// publishCopy sends e again under another message id, so the broker's
// de-duplication cannot drop it: a relay that republished after the
// duplicate window, and the consumer gets the same event twice.
func (h *shop) publishCopy(t *testing.T, e events.Event) {
	t.Helper()
	msg, err := events.NewMsg(e)
	if err != nil {
		t.Fatal(err)
	}
	msg.Header.Set(jetstream.MsgIDHeader, e.ID+"-again")
	if _, err := h.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

func (h *shop) get(t *testing.T, path string, headers ...string) servicetest.Response {
	t.Helper()
	r := servicetest.Call(t, "GET", h.url+path, h.Admin, nil, headers...)
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
	}
	return r
}

func (h *shop) summary(t *testing.T) reportsapi.Summary {
	t.Helper()
	var s reportsapi.Summary
	h.get(t, "/api/reports/summary").JSON(t, &s)
	return s
}

// explain logs what may say why events did not arrive: reports' warnings
// and errors, and where each durable consumer stands.
func (h *shop) explain(t *testing.T) {
	t.Helper()
	for _, line := range strings.Split(h.svc.Logs.String(), "\n") {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			t.Log(line)
		}
	}
	for _, name := range []string{"ORDERS", "PAYMENTS", "INVENTORY"} {
		stream, err := h.js.Stream(context.Background(), name)
		if err != nil {
			t.Logf("stream %s: %v", name, err)
			continue
		}
		ls := stream.ListConsumers(context.Background())
		for ci := range ls.Info() {
			t.Logf("%s: delivered %d, ack floor %d, pending %d, ack pending %d, redelivered %d",
				ci.Name, ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumPending, ci.NumAckPending, ci.NumRedelivered)
		}
	}
}

// waitApplied waits until the model holds applied events.
func (h *shop) waitApplied(t *testing.T, applied int64) reportsapi.Summary {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := h.summary(t)
		if s.EventsApplied == applied && !s.Rebuilding {
			return s
		}
		if time.Now().After(deadline) {
			h.explain(t)
			t.Fatalf("the model holds %d events after 20s, want %d: %+v", s.EventsApplied, applied, s)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (h *shop) waitRebuilt(t *testing.T, id string) reportsapi.Rebuild {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var rb reportsapi.Rebuild
		h.get(t, "/api/reports/rebuild").JSON(t, &rb)
		if rb.ID == id && rb.State != reportsapi.RebuildRunning {
			return rb
		}
		if time.Now().After(deadline) {
			t.Fatalf("rebuild %s not done after 15s: %+v", id, rb)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// figures reads every report of the scenario's week, as raw bodies.
func (h *shop) figures(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, path := range []string{
		"/api/reports/summary",
		"/api/reports/sales?from=2025-03-03&to=2025-03-16&bucket=day",
		"/api/reports/sales?from=2025-03-03&to=2025-03-16&bucket=week",
		"/api/reports/sales?from=2025-03-03T00:00:00Z&to=2025-03-04T00:00:00Z&bucket=hour",
		"/api/reports/top-products?from=2025-03-03&to=2025-03-16&limit=100",
		"/api/reports/low-stock",
	} {
		b.WriteString(path + "\n")
		b.Write(h.get(t, path).Body)
	}
	return b.String()
}

func readCSV(t *testing.T, r servicetest.Response) [][]string {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Fatalf("Content-Type %q, want text/csv: %s", ct, r.Body)
	}
	if cd := r.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment; filename=") {
		t.Errorf("Content-Disposition %q", cd)
	}
	rows, err := csv.NewReader(bytes.NewReader(r.Body)).ReadAll()
	if err != nil {
		t.Fatalf("reading CSV: %v\n%s", err, r.Body)
	}
	return rows
}

func TestReports(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			h := start(t, dialect == "postgres")
			testReports(t, h)
			h.checker.RequireCoverage(reports.OpenAPI())
		})
	}
}

func testReports(t *testing.T, h *shop) {
	sc := reports.NewScenario()
	routes := []struct{ method, path string }{
		{"GET", "/api/reports/sales"}, {"GET", "/api/reports/top-products"}, {"GET", "/api/reports/summary"},
		{"GET", "/api/reports/low-stock"}, {"GET", "/api/reports/rebuild"}, {"POST", "/api/reports/rebuild"},
	}

	t.Run("admins only", func(t *testing.T) {
		for _, rt := range routes {
			for _, c := range []struct {
				token string
				want  int
			}{{"", http.StatusUnauthorized}, {"not.a.token", http.StatusUnauthorized}, {h.Customer, http.StatusForbidden}} {
				r := servicetest.Call(t, rt.method, h.url+rt.path, c.token, nil)
				if r.Status != c.want {
					t.Errorf("%s %s with token %.10q: %d, want %d", rt.method, rt.path, c.token, r.Status, c.want)
					continue
				}
				r.Problem(t)
			}
		}
		r := servicetest.Call(t, "GET", h.url+"/openapi.json", "", nil)
		if r.Status != http.StatusOK {
			t.Errorf("/openapi.json: %d", r.Status)
		}
	})

	t.Run("empty", func(t *testing.T) {
		var s reportsapi.Sales
		h.get(t, "/api/reports/sales").JSON(t, &s)
		if s.Bucket != "day" || s.Currency != "USD" || len(s.Buckets) < 30 || len(s.Buckets) > 31 || s.Totals != (reportsapi.Figures{}) {
			t.Errorf("default sales report: %d buckets, %+v", len(s.Buckets), s)
		}
		if got := s.To.Sub(s.From); got != reports.DefaultRange {
			t.Errorf("default range %s", got)
		}
		var rb reportsapi.Rebuild
		h.get(t, "/api/reports/rebuild").JSON(t, &rb)
		if rb.State != reportsapi.RebuildIdle || rb.ID != "" {
			t.Errorf("rebuild before any: %+v", rb)
		}
	})

	// The events come out of order across streams and subjects: o3's
	// refund and cancellation before its confirmation. One is delivered
	// twice, one has a version reports does not know.
	h.publish(t, sc.Events...)
	h.publishCopy(t, sc.Redelivered)
	h.publish(t, sc.Unknown)
	// published counts the streams' messages; want is the summary.
	published := int64(len(sc.Events) + 2)
	want := reports.WantSummary
	want.EventsDeadLettered = 1

	t.Run("figures", func(t *testing.T) {
		got := h.waitApplied(t, reports.WantSummary.EventsApplied)
		// The unknown version is dead-lettered, the copy counted once.
		deadline := time.Now().Add(10 * time.Second)
		for got.EventsDeadLettered == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			got = h.summary(t)
		}
		if got != want {
			t.Fatalf("summary\n got %+v\nwant %+v", got, want)
		}
		var eur reportsapi.Summary
		h.get(t, "/api/reports/summary?currency=EUR").JSON(t, &eur)
		if eur.RevenueCents != 999 || eur.CapturedCents != 999 || eur.OrdersConfirmed != 5 {
			t.Errorf("EUR summary %+v", eur)
		}

		var days reportsapi.Sales
		h.get(t, "/api/reports/sales?from=2025-03-03&to=2025-03-10&bucket=day").JSON(t, &days)
		var figs []reportsapi.Figures
		for i, b := range days.Buckets {
			if want := reports.Monday.AddDate(0, 0, i); !b.Start.Equal(want) {
				t.Errorf("bucket %d starts %s, want %s", i, b.Start, want)
			}
			figs = append(figs, b.Figures)
		}
		if !reflect.DeepEqual(figs, reports.WantDays) {
			t.Errorf("days\n got %+v\nwant %+v", figs, reports.WantDays)
		}
		if want := (reportsapi.Figures{Orders: 5, RevenueCents: 2850, RefundsCents: 900, NetCents: 1950}); days.Totals != want {
			t.Errorf("totals %+v, want %+v", days.Totals, want)
		}

		// Weeks start on Monday: o4, at the last millisecond of Sunday, is
		// in the first; o5, at midnight, in the second. A range that starts
		// mid-week lists that week's bucket with only what is in range.
		var weeks reportsapi.Sales
		h.get(t, "/api/reports/sales?from=2025-03-05T00:00:00Z&to=2025-03-12T00:00:00Z&bucket=week").JSON(t, &weeks)
		wantWeeks := []reportsapi.Bucket{
			{Start: reports.Monday, Figures: reportsapi.Figures{Orders: 1, RevenueCents: 400, RefundsCents: 900, NetCents: -500}},
			{Start: reports.Monday.AddDate(0, 0, 7), Figures: reportsapi.Figures{Orders: 1, RevenueCents: 250, NetCents: 250}},
		}
		if !reflect.DeepEqual(weeks.Buckets, wantWeeks) {
			t.Errorf("weeks\n got %+v\nwant %+v", weeks.Buckets, wantWeeks)
		}

		var hours reportsapi.Sales
		h.get(t, "/api/reports/sales?from=2025-03-03T10:30:00%2B01:00&to=2025-03-03T12:00:00Z&bucket=hour").JSON(t, &hours)
		if len(hours.Buckets) != 3 || hours.Buckets[1].Orders != 2 || hours.Buckets[1].RevenueCents != 1500 ||
			hours.Buckets[2].Orders != 1 || !hours.Buckets[0].Start.Equal(reports.Monday.Add(9*time.Hour)) {
			t.Errorf("hours: %+v", hours.Buckets)
		}

		var top reportsapi.TopProducts
		h.get(t, "/api/reports/top-products?from=2025-03-03&to=2025-03-09").JSON(t, &top)
		if !reflect.DeepEqual(top.Items, reports.WantTop) {
			t.Errorf("top products\n got %+v\nwant %+v", top.Items, reports.WantTop)
		}
		h.get(t, "/api/reports/top-products?from=2025-03-03&to=2025-03-09&limit=1").JSON(t, &top)
		if len(top.Items) != 1 || top.Items[0].SKU != "SKU-B" {
			t.Errorf("limit=1: %+v", top.Items)
		}

		var low reportsapi.LowStock
		h.get(t, "/api/reports/low-stock").JSON(t, &low)
		if len(low.Items) != 2 || low.Items[0].SKU != "SKU-D" || low.Items[1].SKU != "SKU-A" || low.Items[1].Available != 3 {
			t.Errorf("low stock: %+v", low.Items)
		}
	})

	t.Run("csv", func(t *testing.T) {
		rows := readCSV(t, h.get(t, "/api/reports/sales?from=2025-03-03&to=2025-03-10&format=csv"))
		if len(rows) != 9 || strings.Join(rows[0], ",") != "start,orders,revenue_cents,refunds_cents,net_cents,currency" ||
			strings.Join(rows[1], ",") != "2025-03-03T00:00:00Z,3,2200,0,2200,USD" ||
			strings.Join(rows[3], ",") != "2025-03-05T00:00:00Z,0,0,700,-700,USD" {
			t.Errorf("sales CSV: %q", rows)
		}
		rows = readCSV(t, h.get(t, "/api/reports/top-products?from=2025-03-03&to=2025-03-09", "Accept", "text/csv"))
		if len(rows) != 4 || strings.Join(rows[0], ",") != "sku,units,cancelled_units,revenue_cents,currency" ||
			strings.Join(rows[1], ",") != "SKU-B,2,1,800,USD" {
			t.Errorf("top-products CSV: %q", rows)
		}
		rows = readCSV(t, h.get(t, "/api/reports/low-stock", "Accept", "application/json;q=0.5, text/csv"))
		// A name a spreadsheet would run as a formula is quoted.
		if len(rows) != 3 || rows[0][1] != "sku" || rows[1][1] != "SKU-D" || rows[1][2] != `'=HYPERLINK("x")` {
			t.Errorf("low-stock CSV: %q", rows)
		}
		rows = readCSV(t, h.get(t, "/api/reports/summary?format=csv"))
		if len(rows) != 2 || rows[0][1] != "orders_confirmed" || rows[1][1] != "5" || len(rows[0]) != len(rows[1]) {
			t.Errorf("summary CSV: %q", rows)
		}
		// ?format=json wins over Accept.
		r := h.get(t, "/api/reports/summary?format=json", "Accept", "text/csv")
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("format=json answered %q", ct)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, c := range []struct{ path, field string }{
			{"/api/reports/sales?from=2025-03-10&to=2025-03-01", "from"},
			{"/api/reports/sales?from=2024-01-01&to=2025-01-01", "to"},
			{"/api/reports/sales?bucket=month", "bucket"},
			{"/api/reports/sales?from=last+week", "from"},
			{"/api/reports/sales?to=2025-02-30", "to"},
			{"/api/reports/sales?currency=dollars", "currency"},
			{"/api/reports/sales?format=xml", "format"},
			{"/api/reports/top-products?limit=0", "limit"},
			{"/api/reports/top-products?limit=101", "limit"},
			{"/api/reports/top-products?limit=ten", "limit"},
			{"/api/reports/top-products?from=2025-03-10&to=2025-03-01", "from"},
			{"/api/reports/summary?currency=usd", "currency"},
			{"/api/reports/low-stock?limit=1001", "limit"},
			{"/api/reports/low-stock?format=pdf", "format"},
		} {
			r := servicetest.Call(t, "GET", h.url+c.path, h.Admin, nil)
			if r.Status != http.StatusUnprocessableEntity {
				t.Errorf("%s: %d %s, want 422", c.path, r.Status, r.Body)
				continue
			}
			if p := r.Problem(t); len(p.Errors) != 1 || p.Errors[0].Field != c.field {
				t.Errorf("%s: errors %+v, want one on %s", c.path, p.Errors, c.field)
			}
		}
		r := servicetest.Call(t, "GET", h.url+"/api/reports/nothing", h.Admin, nil)
		if r.Status != http.StatusNotFound {
			t.Errorf("unknown report: %d", r.Status)
		}
		r.Problem(t)
	})

	t.Run("rebuild gives the same figures, events arriving meanwhile included", func(t *testing.T) {
		before := h.figures(t)
		r := servicetest.Call(t, "POST", h.url+"/api/reports/rebuild", h.Admin, nil)
		if r.Status != http.StatusAccepted || r.Header.Get("Location") != "/api/reports/rebuild" {
			t.Fatalf("POST rebuild: %d %s", r.Status, r.Body)
		}
		var rb reportsapi.Rebuild
		r.JSON(t, &rb)
		if rb.ID == "" || rb.State != reportsapi.RebuildRunning {
			t.Fatalf("rebuild %+v", rb)
		}
		rb = h.waitRebuilt(t, rb.ID)
		// The streams hold every message: the scenario, the copy, the
		// unknown version.
		if rb.State != reportsapi.RebuildDone || rb.Applied != published || rb.Total != published || rb.FinishedAt == nil || rb.Error != "" {
			t.Fatalf("rebuild ended %+v, want done with %d of %d", rb, published, published)
		}
		if after := h.figures(t); after != before {
			t.Fatalf("figures changed by the rebuild\nbefore:\n%s\nafter:\n%s", before, after)
		}

		// Again, on a larger model, with events published on every stream
		// while it runs: each one is applied once, whether the durable
		// consumers or the replay gets it first.
		early, during := reports.Burst("early", 150), reports.Burst("during", 60)
		h.publish(t, early...)
		h.waitApplied(t, want.EventsApplied+int64(len(early)))
		r = servicetest.Call(t, "POST", h.url+"/api/reports/rebuild", h.Admin, nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("POST rebuild: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &rb)
		var wg sync.WaitGroup
		wg.Go(func() { h.publish(t, append(during, sc.During...)...) })
		var partial bool
		for {
			r := h.get(t, "/api/reports/summary")
			var s reportsapi.Summary
			r.JSON(t, &s)
			if s.Rebuilding && r.Header.Get(reportsapi.RebuildingHeader) == rb.ID {
				partial = true
			}
			if !s.Rebuilding {
				break
			}
		}
		wg.Wait()
		if !partial {
			t.Log("the rebuild ended before a report could see it running")
		}
		if rb = h.waitRebuilt(t, rb.ID); rb.State != reportsapi.RebuildDone || rb.Applied != rb.Total || rb.Total < int64(len(sc.Events)+len(early)) {
			t.Fatalf("rebuild ended %+v", rb)
		}
		burst := int64(len(early)+len(during)) / 3
		want.EventsApplied += int64(len(early) + len(during) + len(sc.During))
		want.OrdersConfirmed += burst + 1
		want.RevenueCents += 300*burst + 250
		want.CapturedCents += 300*burst + 250
		want.NetCents += 300*burst + 250
		want.LowStockAlerts += burst
		if got := h.waitApplied(t, want.EventsApplied); got != want {
			t.Fatalf("summary after a rebuild with events meanwhile\n got %+v\nwant %+v", got, want)
		}
		published += int64(len(early) + len(during) + len(sc.During))
	})

	t.Run("a dead process's rebuild is taken over; reports meanwhile say they are partial", func(t *testing.T) {
		before := h.figures(t)
		// Play a reports process that started a rebuild and died.
		db, err := database.Open(context.Background(), h.source)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		now := time.Now().UnixMilli()
		if _, err := db.Writer().Exec(`UPDATE report_rebuild SET rebuild_id = 'dead-one', state = 'running', owner = 'dead-process',
			applied = 3, total = 30, started_at = $1, finished_at = 0, heartbeat_at = $1, error = '' WHERE id = 1`, now); err != nil {
			t.Fatal(err)
		}
		r := h.get(t, "/api/reports/summary")
		var s reportsapi.Summary
		r.JSON(t, &s)
		if r.Header.Get(reportsapi.RebuildingHeader) != "dead-one" || !s.Rebuilding {
			t.Errorf("summary during a rebuild: header %q, rebuilding %v", r.Header.Get(reportsapi.RebuildingHeader), s.Rebuilding)
		}
		r = h.get(t, "/api/reports/sales?format=csv")
		if r.Header.Get(reportsapi.RebuildingHeader) != "dead-one" {
			t.Errorf("CSV during a rebuild: no %s header", reportsapi.RebuildingHeader)
		}
		r = servicetest.Call(t, "POST", h.url+"/api/reports/rebuild", h.Admin, nil)
		if r.Status != http.StatusConflict || r.Problem(t).Extensions["rebuild_id"] != "dead-one" {
			t.Fatalf("POST rebuild while one runs: %d %s", r.Status, r.Body)
		}
		// No heartbeat for a second (--rebuild-stale-after): reports runs it.
		rb := h.waitRebuilt(t, "dead-one")
		if rb.State != reportsapi.RebuildDone || rb.Applied != rb.Total || rb.Total != published {
			t.Fatalf("taken-over rebuild ended %+v", rb)
		}
		r = h.get(t, "/api/reports/summary")
		if r.Header.Get(reportsapi.RebuildingHeader) != "" {
			t.Errorf("rebuilding header after the rebuild: %q", r.Header.Get(reportsapi.RebuildingHeader))
		}
		if after := h.figures(t); after != before {
			t.Fatalf("figures changed by the rebuild\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("down while events are published, then caught up", func(t *testing.T) {
		h.svc.Stop()
		h.publish(t, sc.Later...)
		h.svc = h.svc.Restart(t)
		want.EventsApplied += int64(len(sc.Later))
		want.OrdersConfirmed++
		want.RevenueCents += 300
		want.CapturedCents += 300
		want.NetCents += 300
		if got := h.waitApplied(t, want.EventsApplied); got != want {
			t.Fatalf("after the restart\n got %+v\nwant %+v", got, want)
		}
	})
}
