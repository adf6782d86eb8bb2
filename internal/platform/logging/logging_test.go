package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestLinesCarryServiceAndTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "orders", 0)
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "op")
	log.InfoContext(ctx, "inside a span")
	span.End()
	log.Info("outside")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	var in, out map[string]any
	if err := json.Unmarshal(lines[0], &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lines[1], &out); err != nil {
		t.Fatal(err)
	}
	if in["service"] != "orders" || in["trace_id"] != span.SpanContext().TraceID().String() || in["span_id"] != span.SpanContext().SpanID().String() {
		t.Fatalf("line in a span: %s", lines[0])
	}
	if _, ok := out["trace_id"]; ok || out["service"] != "orders" {
		t.Fatalf("line outside a span: %s", lines[1])
	}
	if _, err := ParseLevel("loud"); err == nil {
		t.Fatal("a bad level was accepted")
	}
}
