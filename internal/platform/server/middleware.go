package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/telemetry"
)

// RequestIDHeader carries a request's id between client, gateway and services.
const RequestIDHeader = "X-Request-Id"

// requestID keeps the caller's id when it looks sane, so one id follows a
// request through the gateway into every service, and makes one otherwise.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if id == "" || len(id) > 64 {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
			r.Header.Set(RequestIDHeader, id)
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r)
	})
}

// TimeoutHeader carries the caller's remaining time in milliseconds, so a
// service stops working on a call its caller has already given up on.
const TimeoutHeader = "Request-Timeout-Ms"

// maxPropagated bounds what a caller may ask for.
const maxPropagated = 60 * time.Second

// deadline applies the caller's propagated deadline to the request context.
func deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get(TimeoutHeader); v != "" {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 {
				ctx, cancel := context.WithTimeout(r.Context(), min(time.Duration(ms)*time.Millisecond, maxPropagated))
				defer cancel()
				r = r.WithContext(ctx)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a panic into a logged stack and a problem+json 500, so
// one bad request never takes the process down.
func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(r.Context(), "panic while handling a request",
					"method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()),
					"request_id", r.Header.Get(RequestIDHeader))
				problem.Write(w, r, problem.Internal())
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// limitBody caps every request body; decoders report the overflow as 413.
func limitBody(max int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > max {
				p := problem.New(http.StatusRequestEntityTooLarge, "body-too-large", "Body too large",
					"the body must be at most "+strconv.FormatInt(max, 10)+" bytes")
				problem.Write(w, r, p)
				return
			}
			if r.Body != nil {
				r.Body = http.MaxBytesReader(w, r.Body, max)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RouteHeader names, on every answer, the route template that answered
// it ("/internal/reservations/{id}/commit"): a caller names its client
// span by it, and the gateway its root span, so that span names stay a
// short list of operations instead of growing with every id. The
// templates are those of the OpenAPI documents: it tells nobody anything
// new.
const RouteHeader = "Microshop-Route"

// routeNote is the name a handler gave its request with NameRoute.
type routeNote struct{ route string }

type routeKey struct{}

// NameRoute names the request of ctx by route, in its span's name and its
// RouteHeader, in place of the pattern that matched it. It is for a proxy,
// whose one pattern ("/api/*") says nothing of the request: the gateway
// names each request by the route its service answered with. The metrics
// keep the matched pattern.
func NameRoute(ctx context.Context, route string) {
	if n, ok := ctx.Value(routeKey{}).(*routeNote); ok && route != "" {
		n.route = route
	}
}

// statusRecorder remembers the status a handler wrote, and stamps the
// answer with its route (RouteHeader) before the headers go out.
type statusRecorder struct {
	http.ResponseWriter
	status  int
	bytes   int
	note    *routeNote
	rctx    *chi.Context
	stamped bool
}

// route is the request's name: as a handler named it, else the pattern
// chi matched, else "".
func (s *statusRecorder) route() string {
	if s.note != nil && s.note.route != "" {
		return s.note.route
	}
	if s.rctx != nil {
		return s.rctx.RoutePattern()
	}
	return ""
}

func (s *statusRecorder) stamp() {
	if s.stamped {
		return
	}
	s.stamped = true
	if route := s.route(); route != "" {
		s.ResponseWriter.Header().Set(RouteHeader, route)
	}
}

func (s *statusRecorder) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		s.stamp()
	}
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.stamp()
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Flush() {
	s.stamp()
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// shed answers 503 with Retry-After when max requests are in flight
// already. Health probes and scrapes always pass: a busy service is still
// alive, and saying so keeps it from being restarted.
func shed(max int, m *httpMetrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if max <= 0 {
			return next
		}
		slots := make(chan struct{}, max)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/healthz", "/readyz", "/metrics":
				next.ServeHTTP(w, r)
				return
			}
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
				next.ServeHTTP(w, r)
			default:
				m.shed.Inc()
				p := problem.Unavailable("the service is at capacity; try again in a moment")
				p.RetryAfter = 1
				problem.Write(w, r, p)
			}
		})
	}
}

// httpMetrics are the RED figures of one service's HTTP server.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
	shed     prometheus.Counter
	// refusedConns counts connections refused by Limits.MaxConnsPerClient.
	refusedConns prometheus.Counter
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_server_requests_total",
			Help: "HTTP requests handled, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_server_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_server_requests_in_flight",
			Help: "HTTP requests being handled now.",
		}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "http_server_requests_shed_total",
			Help: "Requests answered 503 at once because too many were in flight.",
		}),
		refusedConns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "http_server_connections_refused_total",
			Help: "Connections answered 503 and closed because their client address held too many open already.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inflight, m.shed, m.refusedConns)
	return m
}

// observe traces, logs and measures each request. Routes are labelled by
// their chi pattern ("/api/inventory/products/{sku}"), never by the raw
// path, so the label set stays bounded. The server span continues the
// caller's trace when the request carries a traceparent header.
func observe(log *slog.Logger, m *httpMetrics, traced *telemetry.Telemetry) func(http.Handler) http.Handler {
	untraced := telemetry.Disabled()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tel := traced
			start := time.Now()
			switch r.URL.Path {
			case "/healthz", "/readyz", "/metrics":
				// Probes and scrapes are measured but not traced: they
				// would drown the traces people look for.
				tel = untraced
			}
			ctx := tel.Extract(r.Context(), r.Header)
			method := MethodLabel(r.Method)
			ctx, span := tel.Tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("url.path", r.URL.Path)))
			defer span.End()
			note := &routeNote{}
			r = r.WithContext(context.WithValue(ctx, routeKey{}, note))
			rec := &statusRecorder{ResponseWriter: w, note: note, rctx: chi.RouteContext(r.Context())}
			m.inflight.Inc()
			defer m.inflight.Dec()
			next.ServeHTTP(rec, r)
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			elapsed := time.Since(start)
			// OpenTelemetry's HTTP conventions: "{method} {route template}",
			// never the path, which holds ids.
			// A request no route took is "{method}" alone.
			if name := rec.route(); name != "" {
				span.SetName(method + " " + name)
				span.SetAttributes(attribute.String("http.route", name))
			}
			span.SetAttributes(attribute.Int("http.response.status_code", rec.status))
			if rec.status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(rec.status))
			}
			m.requests.WithLabelValues(route, method, strconv.Itoa(rec.status)).Inc()
			m.duration.WithLabelValues(route, method).Observe(elapsed.Seconds())
			level := slog.LevelDebug
			if rec.status >= 500 {
				level = slog.LevelError
			}
			if !log.Enabled(r.Context(), level) {
				return // not even the arguments: boxing them costs on every request
			}
			log.Log(r.Context(), level, "request",
				"method", r.Method, "route", route, "status", rec.status,
				"duration_ms", float64(elapsed.Microseconds())/1000, "bytes", rec.bytes,
				"request_id", r.Header.Get(RequestIDHeader))
		})
	}
}

// MethodLabel is a request's method as a metric label or in a span name:
// the methods of HTTP itself, and _OTHER (OpenTelemetry's word) for
// anything else, so a client that sends made-up methods cannot add series
// or span names without end.
func MethodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "_OTHER"
}
