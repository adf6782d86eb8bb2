package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// The operations port exists for mutual TLS. With it, a service's port
// admits only clients with a certificate from the system's authority,
// and that holds for /healthz, /readyz and /metrics too. A kubelet's
// httpGet probe presents no client certificate, and a Prometheus outside
// the system has none of the system's. So a service can answer those
// three on a second, plain-HTTP port. It serves nothing else: no route of
// the service, no /internal/ route, no OpenAPI document, and Go's
// profiles only when the service was started with --pprof. Those answers
// carry no customer's data and change nothing, and the network policies
// admit only the monitoring namespace to the port (deploy/k8s).

// Ops is the handler of the operations port: this server's /healthz,
// /readyz and /metrics, with Go's profiles under /debug/pprof/ when
// profiles is set. Every other path is a 404 problem, as on the main
// port for a route that does not exist. /readyz is the main port's own:
// it turns 503 when the server starts draining, so a kubelet that probes
// here takes the pod out of its Service before the listener closes.
// /metrics is served to everyone who reaches the port (RestrictMetrics
// applies to the main port only).
func (s *Server) Ops(profiles bool) http.Handler {
	r := chi.NewRouter()
	r.Use(recoverer(s.log), middleware.GetHead)
	r.NotFound(notFound)
	r.MethodNotAllowed(methodNotAllowed(r))
	r.Get("/healthz", alive)
	r.Get("/readyz", s.ready)
	r.Get("/metrics", s.metricsHandler.ServeHTTP)
	if profiles {
		MountProfiles(r)
	}
	return r
}

// ServeOps serves Ops(profiles) on ln until ctx is done, then closes it,
// letting answers in flight finish for up to a few seconds. Give it a
// context that ends after Serve has drained, so that probes see /readyz
// turn 503 for the whole drain.
func (s *Server) ServeOps(ctx context.Context, ln net.Listener, profiles bool) error {
	hs := &http.Server{
		Handler:           s.Ops(profiles),
		ReadHeaderTimeout: 5 * time.Second,
		// Nothing here takes a body.
		ReadTimeout:  10 * time.Second,
		WriteTimeout: s.limits.WriteTimeout, // above a 30 s CPU profile
		IdleTimeout:  s.limits.IdleTimeout,
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if s.limits.MaxHeaderBytes > 0 {
		hs.MaxHeaderBytes = s.limits.MaxHeaderBytes
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving the operations port: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving the operations port: %w", err)
	}
	return nil
}
