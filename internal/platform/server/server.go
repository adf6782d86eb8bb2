// Package server is the HTTP side of every microshop service: a chi router
// with the middleware all services share (request ids, panic recovery, body
// limits, metrics and logs), problem+json for unknown routes, the health
// endpoints, and a graceful serve loop.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/go-chi/chi/v5/middleware"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/klauspost/compress/gzhttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/microshop/microshop/internal/platform/balancer"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/telemetry"
)

// DefaultMaxBody bounds request bodies: an order with 100 lines and a
// shipping address is a few KiB, so 256 KiB leaves room and stops abuse.
const DefaultMaxBody = 256 << 10

// Check reports whether one dependency (a database, the broker) is usable.
type Check func(ctx context.Context) error

// allowed lists the methods router has a route for at path, for the
// Allow header of a 405 or an OPTIONS answer (RFC 9110), and the route's
// pattern. HEAD goes wherever GET does, and OPTIONS wherever any method
// does (see options).
func allowed(router chi.Routes, path string) (methods []string, pattern string) {
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		p := router.Find(chi.NewRouteContext(), m, path)
		if p != "" || (m == http.MethodHead && slices.Contains(methods, http.MethodGet)) ||
			(m == http.MethodOptions && len(methods) > 0) {
			methods = append(methods, m)
		}
		if pattern == "" {
			pattern = p
		}
	}
	return methods, pattern
}

// options answers OPTIONS on every route that has no OPTIONS handler of
// its own: 204 with the route's methods in Allow (RFC 9110, 9.3.7). It
// runs before routing, so before the middleware of the route's group: an
// OPTIONS request needs no token, as it asks nothing of the resource. A
// path no route takes goes on to the 404.
func options(router chi.Routes) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodOptions || router.Match(chi.NewRouteContext(), http.MethodOptions, r.URL.Path) {
				next.ServeHTTP(w, r)
				return
			}
			methods, pattern := allowed(router, r.URL.Path)
			if len(methods) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			// The route's pattern labels the request's metrics and span,
			// as if it had been routed.
			if rc := chi.RouteContext(r.Context()); rc != nil {
				rc.RoutePatterns = append(rc.RoutePatterns[:0], pattern)
			}
			w.Header().Set("Allow", strings.Join(methods, ", "))
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusNoContent)
		})
	}
}

// Server holds a service's router and its health state.
type Server struct {
	// Router is where a service mounts its routes.
	Router chi.Router

	log        *slog.Logger
	checks     map[string]Check
	registry   *prometheus.Registry
	draining   atomic.Bool
	handler    http.Handler
	drainDelay time.Duration
	identity   string
	limits     Limits
	metrics    *httpMetrics
	// scrapers, when set, decides who may read /metrics.
	scrapers func(*http.Request) bool
	// metricsHandler serves the registry, to anyone: the main port puts
	// scrapers in front of it, the operations port does not.
	metricsHandler http.Handler
	tls            *tls.Config
}

// Options configure a Server.
type Options struct {
	Service string
	Log     *slog.Logger
	// Registry receives the server's metrics and is served on /metrics.
	// The service registers its own metrics in it too.
	Registry *prometheus.Registry
	// Checks run on /readyz; all must pass for the service to be ready.
	Checks  map[string]Check
	MaxBody int64
	// Telemetry traces requests; nil records nothing.
	Telemetry *telemetry.Telemetry
	// MaxInFlight sheds load: past this many requests at once, new ones
	// get a 503 with Retry-After at once instead of queueing until the
	// process collapses. Zero means no limit. Probes are never shed.
	MaxInFlight int
	// Identity, when set, names this replica in every /readyz answer
	// (balancer.IdentityHeader): "<service>@<system>", so that balancers
	// of this system call it and those of another do not.
	Identity string
	// Limits bound what one client may hold of the server; nil means
	// DefaultLimits(), and a zero field switches that limit off.
	Limits *Limits
	// DrainDelay is how long Serve keeps answering, with /readyz false,
	// after it is told to stop and before it closes the listener, so
	// balancers that probe readiness stop sending first.
	DrainDelay time.Duration
	// TLS, when set, makes Serve answer over TLS with it: for a service,
	// mutual TLS that admits only the system's services and run
	// (mtls.Identity.ServerConfig), probes and /metrics included.
	TLS *tls.Config
}

// New builds a server with the shared middleware and routes in place.
func New(o Options) *Server {
	if o.MaxBody == 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Telemetry == nil {
		o.Telemetry = telemetry.Disabled()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	o.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	limits := DefaultLimits()
	if o.Limits != nil {
		limits = *o.Limits
	}
	m := newHTTPMetrics(o.Registry)
	s := &Server{log: o.Log, checks: o.Checks, registry: o.Registry, drainDelay: o.DrainDelay, identity: o.Identity,
		limits: limits, metrics: m, tls: o.TLS}

	r := chi.NewRouter()
	// HEAD is answered wherever GET is, as RFC 9110 asks: the GET
	// handler runs and net/http drops the body.
	//
	// Answers are compressed (gzip) when the client accepts it and they
	// are worth it (gzhttp's default: 1 KiB or more, not already
	// compressed): the 100-product catalog is 10 kB, 3.3 kB gzipped.
	compress, err := gzhttp.NewWrapper()
	if err != nil {
		panic(fmt.Sprintf("gzhttp's default options: %v", err)) // a fixed configuration: it cannot fail
	}
	r.Use(requestID, limitHeaders(limits.MaxHeaderBytes), shed(o.MaxInFlight, m), observe(o.Log, m, o.Telemetry),
		recoverer(o.Log), pace(limits), limitBody(o.MaxBody), deadline, options(r), middleware.GetHead,
		func(h http.Handler) http.Handler { return compress(h) })
	r.NotFound(notFound)
	r.MethodNotAllowed(methodNotAllowed(r))
	r.Get("/healthz", alive)
	r.Get("/readyz", s.ready)
	s.metricsHandler = promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry})
	r.Get("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.scrapers != nil && !s.scrapers(r) {
			notFound(w, r)
			return
		}
		s.metricsHandler.ServeHTTP(w, r)
	})
	s.Router = r
	s.handler = r
	return s
}

// LimitConnsPerClient sets Limits.MaxConnsPerClient; call it before Serve.
// It is for a server at the edge (the gateway), where each remote address
// is a client.
func (s *Server) LimitConnsPerClient(n int) { s.limits.MaxConnsPerClient = n }

// RestrictMetrics serves /metrics only to requests allow accepts; call it
// before Serve. The others get the 404 of a route that does not exist.
func (s *Server) RestrictMetrics(allow func(*http.Request) bool) { s.scrapers = allow }

// ServeHTTP makes the Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Registry is where the service registers its own metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.identity != "" {
		w.Header().Set(balancer.IdentityHeader, s.identity)
	}
	result := map[string]string{}
	status := http.StatusOK
	if s.draining.Load() {
		result["server"] = "draining"
		status = http.StatusServiceUnavailable
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	for name, check := range s.checks {
		if err := check(ctx); err != nil {
			result[name] = err.Error()
			status = http.StatusServiceUnavailable
			continue
		}
		result[name] = "ok"
	}
	writeHealth(w, status, result)
}

// alive answers /healthz: the process runs and serves HTTP.
func alive(w http.ResponseWriter, _ *http.Request) {
	writeHealth(w, http.StatusOK, map[string]string{"status": "alive"})
}

// notFound is the answer for a route that does not exist.
func notFound(w http.ResponseWriter, r *http.Request) {
	problem.Write(w, r, problem.NotFound(fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)))
}

// methodNotAllowed answers a method router has no route for at the path,
// with the methods it has in Allow.
func methodNotAllowed(router chi.Routes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		methods, _ := allowed(router, r.URL.Path)
		w.Header().Set("Allow", strings.Join(methods, ", "))
		problem.Write(w, r, problem.New(http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed",
			fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path)))
	}
}

func writeHealth(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Serve answers on ln until ctx is done, then shuts down gracefully: it
// turns /readyz false first so balancers stop sending, stops accepting,
// and waits up to drain for requests in flight to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       s.limits.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if s.limits.MaxHeaderBytes > 0 {
		// Go answers headers over its own limit in plain text; keep that
		// limit far enough above ours that clients meet the problem+json
		// 431 of limitHeaders instead.
		hs.MaxHeaderBytes = 4 * s.limits.MaxHeaderBytes
	}
	if s.limits.MaxConnsPerClient > 0 {
		cl := newClientLimit(ln, s.limits.MaxConnsPerClient, s.metrics.refusedConns.Inc)
		ln, hs.ConnState = cl, cl.connState
	}
	if s.tls != nil {
		// net/http sees the *tls.Conn, runs the handshake within
		// ReadHeaderTimeout and fills in Request.TLS.
		ln = tls.NewListener(ln, s.tls)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving http: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	if s.drainDelay > 0 {
		// Still serving, but no longer ready: let balancers notice.
		s.log.Info("turning unready before draining", "for", s.drainDelay.String())
		time.Sleep(s.drainDelay)
	}
	s.log.Info("draining", "addr", ln.Addr().String(), "within", drain.String())
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
		return fmt.Errorf("draining http: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving http: %w", err)
	}
	return nil
}
