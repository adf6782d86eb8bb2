package telemetry_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/platform/telemetry"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// A process traces every request while traffic is light and at most
// MICROSHOP_TRACE_RATE new traces a second beyond; a span follows its
// parent's decision, so a trace is whole or absent; 0 traces everything.
func TestTraceRate(t *testing.T) {
	ctx := context.Background()
	count := func(tel *telemetry.Telemetry, n int) (sampled int) {
		for range n {
			_, span := tel.Tracer.Start(ctx, "root")
			if span.SpanContext().IsSampled() {
				sampled++
			}
			if !span.SpanContext().IsValid() {
				t.Fatal("a span that is not sampled must still have ids")
			}
			span.End()
		}
		return sampled
	}
	tel, err := telemetry.New(ctx, "svc", env(map[string]string{telemetry.TraceRateEnv: "10"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := count(tel, 10); got != 10 {
		t.Errorf("a burst of 10 at 10/s: %d sampled, want all 10", got)
	}
	if got := count(tel, 100); got > 2 {
		t.Errorf("100 more at once: %d sampled, want about none", got)
	}
	time.Sleep(300 * time.Millisecond)
	if got := count(tel, 10); got < 2 {
		t.Errorf("after 300ms at 10/s: %d sampled, want about 3 (more if the machine slept longer)", got)
	}

	// Children follow the root: a sampled root's children are sampled,
	// a dropped root's are dropped, whatever the budget says.
	rootCtx, root := tel.Tracer.Start(ctx, "dropped root")
	for root.SpanContext().IsSampled() {
		root.End()
		rootCtx, root = tel.Tracer.Start(ctx, "dropped root")
	}
	time.Sleep(200 * time.Millisecond) // the budget refills
	_, child := tel.Tracer.Start(rootCtx, "child")
	if child.SpanContext().IsSampled() || child.SpanContext().TraceID() != root.SpanContext().TraceID() {
		t.Errorf("the child of a dropped root: sampled %v, same trace %v", child.SpanContext().IsSampled(),
			child.SpanContext().TraceID() == root.SpanContext().TraceID())
	}
	remote := trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: [16]byte{1}, SpanID: [8]byte{1}, TraceFlags: trace.FlagsSampled, Remote: true}))
	for range 50 { // far past the budget: a sampled caller's trace goes on
		_, s := tel.Tracer.Start(remote, "server")
		if !s.SpanContext().IsSampled() {
			t.Fatal("a span whose remote parent is sampled was dropped")
		}
	}

	all, err := telemetry.New(ctx, "svc", env(map[string]string{telemetry.TraceRateEnv: "0"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := count(all, 500); got != 500 {
		t.Errorf("%s=0: %d of 500 sampled, want all", telemetry.TraceRateEnv, got)
	}
	if _, err := telemetry.New(ctx, "svc", env(map[string]string{telemetry.TraceRateEnv: "lots"})); err == nil {
		t.Errorf("a bad %s was accepted", telemetry.TraceRateEnv)
	}
}
