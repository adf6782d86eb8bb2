package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/collector"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// The scenarios themselves run in test/demo, each on a real system. These
// are the parts that need none.

func TestEveryScenarioIsDescribed(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Scenarios() {
		if s.Name == "" || (s.run == nil) == (s.alone == nil) || len(s.Summary) < 40 || seen[s.Name] {
			t.Errorf("scenario %+v: want a unique name, one way to run and a sentence or two", s)
		}
		seen[s.Name] = true
		if got, ok := Find(s.Name); !ok || got.Name != s.Name {
			t.Errorf("Find(%q) = %v", s.Name, ok)
		}
	}
	for _, want := range []string{"isolated-failure", "independent-scaling", "rolling-deploy", "saga-compensation", "tracing", "monolith-vs-microservices"} {
		if !seen[want] {
			t.Errorf("no %s scenario", want)
		}
	}
	if _, err := Run(context.Background(), "no-such-demo", Options{Exe: "x", Out: &bytes.Buffer{}}); err == nil || !strings.Contains(err.Error(), "tracing") {
		t.Errorf("an unknown demo: %v, want the list of demos", err)
	}
	if _, err := Run(context.Background(), "tracing", Options{Out: &bytes.Buffer{}}); err == nil {
		t.Error("a demo without a binary to run")
	}
}

func TestVerdictPrintsPassOrFailWithFigures(t *testing.T) {
	var v Verdict
	v.figure("checkouts", "%d", 12)
	v.figure("failed requests", "%d", 0)
	v.check(true, "never shown")
	v.decide("all good", "not good")
	var b bytes.Buffer
	v.print(&b)
	want := "\nPASS: all good\n  checkouts:        12\n  failed requests:  0\n"
	if b.String() != want {
		t.Errorf("printed %q, want %q", b.String(), want)
	}

	v.check(false, "%d requests failed", 3)
	v.decide("all good", "not good")
	b.Reset()
	v.print(&b)
	if v.Pass || !strings.HasPrefix(b.String(), "\nFAIL: not good\n") || !strings.Contains(b.String(), "problem: 3 requests failed") {
		t.Errorf("a failed check printed %q", b.String())
	}
}

func TestSagaChain(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := func(ms int, step, event, detail string) ordersapi.SagaEntry {
		return ordersapi.SagaEntry{Step: step, Event: event, Detail: detail, At: at.Add(time.Duration(ms) * time.Millisecond)}
	}
	got := sagaChain([]ordersapi.SagaEntry{
		e(0, "create", "succeeded", ""), e(1, "reserve", "started", ""), e(2, "reserve", "succeeded", ""),
		e(3, "authorize", "started", ""), e(4, "authorize", "retrying", "x"), e(5, "authorize", "retrying", "x"),
		e(6, "authorize", "failed", "payment_unavailable: too slow"), e(7, "void", "started", ""), e(8, "void", "succeeded", ""),
		e(9, "release", "started", ""), e(10, "release", "succeeded", ""),
	})
	want := "create ok -> reserve ok -> authorize FAILED (payment_unavailable) after 2 retries -> void ok -> release ok"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestSpanTree(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sp := func(id, parent, service, name, kind string, start, end int) collector.Span {
		return collector.Span{TraceID: "t", SpanID: id, ParentSpanID: parent, Service: service, Name: name, Kind: kind,
			Start: t0.Add(time.Duration(start) * time.Millisecond), End: t0.Add(time.Duration(end) * time.Millisecond)}
	}
	spans := []collector.Span{
		sp("4", "3", "inventory", "POST /internal/reservations", "server", 3, 5),
		sp("1", "", "gateway", "POST /api/*", "server", 0, 20),
		sp("2", "1", "gateway", "proxy orders", "client", 1, 19),
		sp("3", "2", "orders", "POST /api/orders", "server", 2, 18),
		sp("5", "3", "orders", "publish orders.confirmed", "producer", 17, 18),
		sp("6", "5", "notifications", "handle orders.confirmed", "consumer", 30, 31),
	}
	// The inventory span's parent is orders' server span here: not a
	// client span, so not an HTTP link; a real trace has the client span.
	tree, st := spanTree(spans)
	want := `+    0.0ms     20.0ms  gateway: POST /api/* [server]
+    1.0ms     18.0ms  └─ gateway: proxy orders [client]
+    2.0ms     16.0ms     └─ orders: POST /api/orders [server]
+    3.0ms      2.0ms        ├─ inventory: POST /internal/reservations [server]
+   17.0ms      1.0ms        └─ orders: publish orders.confirmed [producer]
+   30.0ms      1.0ms           └─ notifications: handle orders.confirmed [consumer]
`
	if tree != want {
		t.Errorf("tree:\n%s\nwant:\n%s", tree, want)
	}
	if st.roots != 1 || st.orphans != 0 || st.depth != 5 || st.rootService != "gateway" || st.spanMS != 31 {
		t.Errorf("stats %+v", st)
	}
	if !st.crossHTTP["gateway->orders"] || !st.crossEvents["orders->notifications"] || st.httpLinks != 1 || st.eventLinks != 1 {
		t.Errorf("links %+v %+v", st.crossHTTP, st.crossEvents)
	}
	// A span whose parent never arrived is counted, and drawn at the top.
	_, st = spanTree(append(spans, sp("7", "missing", "payments", "x", "server", 4, 5)))
	if st.orphans != 1 {
		t.Errorf("orphans %d, want 1", st.orphans)
	}
}

func TestShareOf(t *testing.T) {
	before := map[int]float64{0: 100, 1: 0, 2: 0}
	after := map[int]float64{0: 160, 1: 20, 2: 20}
	if got := shareOf(before, after); got != "replica 1 60%, replica 2 20%, replica 3 20%" {
		t.Errorf("got %q", got)
	}
	if !uneven(before, after) {
		t.Error("60/20/20 is uneven")
	}
	if uneven(before, map[int]float64{0: 134, 1: 33, 2: 33}) {
		t.Error("34/33/33 is even")
	}
}

func TestFormats(t *testing.T) {
	for cents, want := range map[int64]string{0: "$0.00", 1250: "$12.50", -38700: "-$387.00", 5: "$0.05"} {
		if got := money(cents); got != want {
			t.Errorf("money(%d) = %q, want %q", cents, got, want)
		}
	}
	if pct(1, 3) != "33.3%" || pct(0, 0) != "n/a" {
		t.Errorf("pct: %s %s", pct(1, 3), pct(0, 0))
	}
	if got := wrap("one two three four", 9); got != "one two\nthree\nfour" {
		t.Errorf("wrap: %q", got)
	}
}

func TestStartSystemReportsABinaryThatCannotRun(t *testing.T) {
	_, err := startSystem(context.Background(), Options{Exe: "/nonexistent/microshop"}, nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/microshop") {
		t.Fatalf("starting a missing binary: %v", err)
	}
}

func TestLatencyP99(t *testing.T) {
	l := &latencies{}
	if l.p99() != 0 {
		t.Fatal("no latencies, yet a p99")
	}
	for i := 1; i <= 200; i++ {
		l.add(time.Duration(i) * time.Millisecond)
	}
	if got := l.p99(); got != 198*time.Millisecond {
		t.Fatalf("p99 of 1..200 ms = %s, want 198ms", got)
	}
}
