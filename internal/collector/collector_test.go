package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/platform/telemetry"
)

// Two services export real OTLP to the collector; "gateway" calls
// "orders" over real HTTP with the trace context in the headers.
func TestReceivesOTLPAndDerivesTracesAndEdges(t *testing.T) {
	c := New(10, 0)
	c.Health = func(context.Context) map[string]bool {
		return map[string]bool{"gateway": true, "orders": true, "reports": false}
	}
	recv := httptest.NewServer(c.Receiver())
	defer recv.Close()
	env := func(k string) string {
		if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			return recv.URL
		}
		return ""
	}
	ctx := context.Background()
	gw, err := telemetry.New(ctx, "gateway", env)
	if err != nil {
		t.Fatal(err)
	}
	orders, err := telemetry.New(ctx, "orders", env)
	if err != nil {
		t.Fatal(err)
	}
	ordersSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := orders.Tracer.Start(orders.Extract(r.Context(), r.Header), "POST /api/orders", trace.WithSpanKind(trace.SpanKindServer))
		_, inner := orders.Tracer.Start(ctx, "saga reserve")
		inner.SetStatus(codes.Error, "out of stock")
		inner.End()
		span.End()
	}))
	defer ordersSrv.Close()

	root, span := gw.Tracer.Start(ctx, "POST /api/orders", trace.WithSpanKind(trace.SpanKindServer))
	cctx, call := gw.Tracer.Start(root, "proxy orders", trace.WithSpanKind(trace.SpanKindClient))
	req, _ := http.NewRequestWithContext(cctx, http.MethodPost, ordersSrv.URL, nil)
	gw.Inject(cctx, req.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	call.End()
	span.End()
	if err := orders.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	traceID := span.SpanContext().TraceID().String()
	list := c.Traces("", 10)
	if len(list) != 1 || list[0].TraceID != traceID || list[0].SpanCount != 4 || list[0].RootService != "gateway" ||
		len(list[0].Services) != 2 || list[0].Errors != 1 {
		t.Fatalf("traces: %+v", list)
	}
	spans, ok := c.Trace(traceID)
	if !ok || len(spans) != 4 {
		t.Fatalf("trace: %+v", spans)
	}
	byName := map[string]Span{}
	for _, s := range spans {
		byName[s.Service+" "+s.Name] = s
	}
	if byName["orders POST /api/orders"].ParentSpanID != call.SpanContext().SpanID().String() {
		t.Fatalf("the orders server span is not a child of the gateway's client span: %+v", spans)
	}
	if byName["orders saga reserve"].Status != "error" || byName["gateway proxy orders"].Kind != "client" {
		t.Fatalf("kinds and status: %+v", spans)
	}

	svcs, edges := c.Map(ctx)
	if len(edges) != 1 || edges[0].From != "gateway" || edges[0].To != "orders" || edges[0].Count != 1 {
		t.Fatalf("edges: %+v", edges)
	}
	names := map[string]ServiceFigures{}
	for _, s := range svcs {
		names[s.Name] = s
	}
	if names["orders"].Count != 1 || names["gateway"].Count != 1 || names["reports"].Healthy == nil || *names["reports"].Healthy {
		t.Fatalf("services: %+v", svcs)
	}

	// The API the console reads.
	api := httptest.NewServer(c.API())
	defer api.Close()
	var got struct {
		Spans []Span `json:"spans"`
	}
	r, err := http.Get(api.URL + "/api/telemetry/traces/" + traceID)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(r.Body).Decode(&got)
	r.Body.Close()
	if len(got.Spans) != 4 {
		t.Fatalf("api trace: %+v", got)
	}
	if r, _ := http.Get(api.URL + "/api/telemetry/traces/nope"); r.StatusCode != 404 {
		t.Fatalf("unknown trace: %d", r.StatusCode)
	}
	if r, _ := http.Get(api.URL + "/api/telemetry/traces?limit=0"); r.StatusCode != 422 {
		t.Fatalf("bad limit: %d", r.StatusCode)
	}
}

func TestKeepsOnlyTheNewestTraces(t *testing.T) {
	c := New(3, 0)
	now := time.Now()
	for _, id := range []string{"a", "b", "c", "d"} {
		c.Add(Span{TraceID: id, SpanID: id + "1", Service: "s", Name: "n", Kind: "server", Start: now, End: now})
	}
	list := c.Traces("", 10)
	if len(list) != 3 || list[0].TraceID != "d" || list[2].TraceID != "b" {
		t.Fatalf("%+v", list)
	}
	if _, ok := c.Trace("a"); ok {
		t.Fatal("the oldest trace was kept")
	}
}

// checkoutTrace is a trace shaped like a checkout's: a root under the
// gateway and spans of orders, inventory and payments under it, with
// attributes.
func checkoutTrace(n int, at time.Time) []Span {
	id := fmt.Sprintf("%032x", n)
	spans := []Span{{TraceID: id, SpanID: fmt.Sprintf("%016x", n*100), Service: "gateway", Name: "POST /api/*", Kind: "server",
		Start: at, End: at.Add(20 * time.Millisecond), Status: "ok", Attributes: map[string]string{"http.route": "/api/*", "url.path": "/api/orders"}}}
	for k, svc := range []string{"orders", "inventory", "payments", "orders", "inventory", "payments", "notifications", "reports"} {
		spans = append(spans, Span{TraceID: id, SpanID: fmt.Sprintf("%016x", n*100+k+1), ParentSpanID: spans[0].SpanID, Service: svc,
			Name: "POST /internal/step", Kind: "server", Start: at, End: at.Add(time.Millisecond), Status: "ok",
			Attributes: map[string]string{"order.id": fmt.Sprintf("ord_%026d", n), "http.response.status_code": "200"}})
	}
	return spans
}

// Fed ten times its budget, the collector holds no more than the budget,
// keeps the newest traces whole and the figures of the window, and its
// account of its bytes is the sum of what it holds. The Go heap it leaves
// behind stays near the budget too: a bound on the count alone (500
// traces) would hold several times as much.
func TestKeepsTracesWithinItsBudgetOfBytes(t *testing.T) {
	const budget = 1 << 20
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	c := New(1_000_000, budget)
	now := time.Now()
	fed, traces := int64(0), 0
	for fed < 10*budget {
		spans := checkoutTrace(traces, now)
		for _, s := range spans {
			fed += spanSize(s)
		}
		c.Add(spans...)
		traces++
		if got := c.Bytes(); got > budget {
			t.Fatalf("after %d traces (%d bytes fed) the collector holds %d bytes, over its budget of %d", traces, fed, got, budget)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	runtime.KeepAlive(c)
	t.Logf("fed %d traces, %d bytes; holds %d bytes by its count, the heap grew %d bytes", traces, fed, c.Bytes(), held)
	if held > 2*budget {
		t.Errorf("the heap grew by %d bytes for a budget of %d", held, budget)
	}

	newest := checkoutTrace(traces-1, now)[0].TraceID
	if spans, ok := c.Trace(newest); !ok || len(spans) != 9 {
		t.Fatalf("the newest trace: %d spans, kept %v", len(spans), ok)
	}
	if _, ok := c.Trace(checkoutTrace(0, now)[0].TraceID); ok {
		t.Fatal("the oldest trace was kept")
	}
	list := c.Traces("", 500)
	if len(list) == 0 || list[0].TraceID != newest {
		t.Fatalf("the newest trace is not first: %+v", list[:min(len(list), 1)])
	}
	var sum int64
	c.mu.Lock()
	for _, h := range c.traces {
		for _, s := range h.spans {
			sum += spanSize(s)
		}
	}
	sum += int64(len(c.recent)) * recordSize
	c.mu.Unlock()
	if sum != c.Bytes() {
		t.Fatalf("the collector counts %d bytes, its spans and records add up to %d", c.Bytes(), sum)
	}
	services, edges := c.Map(context.Background())
	if len(services) == 0 || len(edges) == 0 {
		t.Fatalf("no figures after the load: %+v %+v", services, edges)
	}
}

// A child span that arrives before its parent (another process exported
// it first) still makes an edge between the two services.
func TestEdgeFromAParentThatCameLater(t *testing.T) {
	c := New(10, 0)
	now := time.Now()
	c.Add(Span{TraceID: "t", SpanID: "child", ParentSpanID: "parent", Service: "orders", Name: "POST /api/orders", Kind: "server", Start: now, End: now})
	c.Add(Span{TraceID: "t", SpanID: "parent", Service: "gateway", Name: "proxy orders", Kind: "client", Start: now, End: now})
	_, edges := c.Map(context.Background())
	if len(edges) != 1 || edges[0].From != "gateway" || edges[0].To != "orders" {
		t.Fatalf("edges: %+v", edges)
	}
}
