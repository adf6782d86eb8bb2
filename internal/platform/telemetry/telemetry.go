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
	"net/url"
	"strconv"
	"strings"
	"sync"
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
	root := sdktrace.AlwaysSample()
	perSecond := DefaultTraceRate
	if v := getenv(TraceRateEnv); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s=%q: want the traces a second to start, or 0 for all", TraceRateEnv, v)
		}
		perSecond = n
	}
	if perSecond > 0 {
		root = RateLimited(perSecond)
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		// A span with a parent follows it, so a trace is whole or absent.
		sdktrace.WithSampler(sdktrace.ParentBased(root)),
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
		headers, err := otlpHeaders(getenv)
		if err != nil {
			return nil, err
		}
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint), otlptracehttp.WithHeaders(headers))
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

// otlpHeaders reads the headers the exporter sends, as OpenTelemetry's
// OTEL_EXPORTER_OTLP_TRACES_HEADERS or OTEL_EXPORTER_OTLP_HEADERS give
// them: key=value pairs separated by commas, the values URL-encoded. They
// are read through getenv, so a service run in-process (monolith mode)
// gets its own.
func otlpHeaders(getenv func(string) string) (map[string]string, error) {
	name := "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
	v := getenv(name)
	if v == "" {
		name, v = "OTEL_EXPORTER_OTLP_HEADERS", getenv("OTEL_EXPORTER_OTLP_HEADERS")
	}
	out := map[string]string{}
	for _, pair := range strings.Split(v, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		dec, err := url.QueryUnescape(strings.TrimSpace(val))
		if !ok || strings.TrimSpace(k) == "" || err != nil {
			return nil, fmt.Errorf("%s: %q is not key=value with a URL-encoded value", name, pair)
		}
		out[strings.TrimSpace(k)] = dec
	}
	return out, nil
}

// TraceRateEnv bounds the traces a process starts each second (see
// RateLimited); 0 traces every request.
const TraceRateEnv = "MICROSHOP_TRACE_RATE"

// DefaultTraceRate is how many traces a second each process starts when
// TraceRateEnv is not set: every request of a person using the shop, and
// a steady sample under load, where tracing every request cost about a
// tenth of the system's CPU (bench/NOTES.md).
const DefaultTraceRate = 50.0

// RateLimited samples at most perSecond new traces a second, with bursts
// of as many: everything while traffic is light, a bounded number under
// load. Spans that are not sampled still carry trace and span ids (logs
// keep them, and the context still propagates) but are neither recorded
// nor exported.
func RateLimited(perSecond float64) sdktrace.Sampler {
	return &rateLimited{rate: perSecond, tokens: perSecond, last: time.Now()}
}

type rateLimited struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func (s *rateLimited) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	s.mu.Lock()
	now := time.Now()
	s.tokens = min(s.rate, s.tokens+now.Sub(s.last).Seconds()*s.rate)
	s.last = now
	take := s.tokens >= 1
	if take {
		s.tokens--
	}
	s.mu.Unlock()
	d := sdktrace.Drop
	if take {
		d = sdktrace.RecordAndSample
	}
	return sdktrace.SamplingResult{Decision: d, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
}

func (s *rateLimited) Description() string {
	return "RateLimited{" + strconv.FormatFloat(s.rate, 'f', -1, 64) + "/s}"
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
