package collector

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/platform/telemetry"
)

// Two services export real OTLP to the collector; "gateway" calls
// "orders" over real HTTP with the trace context in the headers.
func TestReceivesOTLPAndDerivesTracesAndEdges(t *testing.T) {
	c := New(10)
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
	c := New(3)
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
