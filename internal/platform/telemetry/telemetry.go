// Package telemetry sets up OpenTelemetry tracing for one service: a
// tracer provider that exports to any OTLP endpoint (the standard
// OTEL_EXPORTER_OTLP_* variables apply; `microshop run` points them at its
// built-in collector), and the W3C trace-context propagator that carries a
// trace across HTTP headers and NATS message headers.
//
// Nothing here is global: the runtime passes a *Telemetry to whatever
// makes spans.
package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Telemetry is one service's tracing.
type Telemetry struct {
	Service    string
	Provider   trace.TracerProvider
	Tracer     trace.Tracer
	Propagator propagation.TextMapPropagator

	shutdown func(context.Context) error
}

// New builds the service's tracing. With no OTLP endpoint configured,
// spans still get ids (so logs carry them and context still propagates)
// but are exported nowhere.
func New(ctx context.Context, service string, getenv func(string) string) (*Telemetry, error) {
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	res := resource.NewSchemaless(attribute.String("service.name", service))
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	}
	endpoint := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		if base := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); base != "" {
			endpoint = strings.TrimRight(base, "/") + "/v1/traces"
		}
	}
	if getenv("OTEL_TRACES_EXPORTER") == "none" {
		endpoint = ""
	}
	if endpoint != "" {
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
		if err != nil {
			return nil, fmt.Errorf("the OTLP trace exporter for %s: %w", endpoint, err)
		}
		// A short batch timeout so a newcomer sees a checkout's trace in
		// the console within a second.
		opts = append(opts, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(500*time.Millisecond)))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return &Telemetry{Service: service, Provider: tp, Tracer: tp.Tracer("github.com/microshop/microshop"),
		Propagator: prop, shutdown: tp.Shutdown}, nil
}

// Disabled is tracing that records nothing, for tests and tools.
func Disabled() *Telemetry {
	tp := noop.NewTracerProvider()
	return &Telemetry{Provider: tp, Tracer: tp.Tracer(""), Propagator: propagation.TraceContext{},
		shutdown: func(context.Context) error { return nil }}
}

// Shutdown flushes spans still in the batch.
func (t *Telemetry) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }

// Inject writes ctx's trace context into h (HTTP or NATS headers, which
// share the same map type).
func (t *Telemetry) Inject(ctx context.Context, h http.Header) {
	t.Propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// Extract reads a trace context from h into ctx.
func (t *Telemetry) Extract(ctx context.Context, h http.Header) context.Context {
	return t.Propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// TraceParent returns ctx's trace context as a traceparent string, to be
// stored with an outbox row, or "".
func (t *Telemetry) TraceParent(ctx context.Context) string {
	h := http.Header{}
	t.Inject(ctx, h)
	return h.Get("Traceparent")
}

// FromTraceParent returns ctx carrying the trace context in tp.
func (t *Telemetry) FromTraceParent(ctx context.Context, tp string) context.Context {
	if tp == "" {
		return ctx
	}
	h := http.Header{}
	h.Set("Traceparent", tp)
	return t.Extract(ctx, h)
}

// IDs returns ctx's trace and span ids, or empty strings.
func IDs(ctx context.Context) (traceID, spanID string) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", ""
	}
	return sc.TraceID().String(), sc.SpanID().String()
}
