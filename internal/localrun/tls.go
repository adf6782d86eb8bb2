package localrun

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/platform/mtls"
	"github.com/microshop/microshop/internal/platform/service"
)

// Mutual TLS under `run`: every service serves its port over TLS to
// holders of a certificate from this data directory's authority only,
// and calls the others only once their certificate names the service it
// meant to call. The authority and the certificates live under
// <data>/tls/; run itself checks readiness and reads metrics with the
// "supervisor" certificate.

// tlsDir is where run keeps the authority and the certificates.
func tlsDir(data string) string { return filepath.Join(data, "tls") }

// renewEvery is how often a long run checks the certificates again; the
// services read a renewed certificate at their next handshake.
const renewEvery = 12 * time.Hour

// ensureTLS makes or renews the authority and a certificate for every
// service and for run itself, and returns run's own identity.
func ensureTLS(data string, specs []service.Spec, log *slog.Logger) (*mtls.Identity, error) {
	names := []string{mtls.Supervisor}
	for _, s := range specs {
		names = append(names, s.Name)
	}
	issued, err := mtls.Ensure(tlsDir(data), names, time.Now())
	if err != nil {
		return nil, fmt.Errorf("the services' certificates: %w", err)
	}
	if len(issued) > 0 {
		log.Info("issued certificates for mutual TLS", "names", issued, "dir", tlsDir(data))
	}
	return mtls.Load(mtls.FilesIn(tlsDir(data), mtls.Supervisor))
}

// renewTLS renews the certificates every renewEvery until ctx ends.
func renewTLS(ctx context.Context, data string, specs []service.Spec, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(renewEvery):
		}
		if _, err := ensureTLS(data, specs, log); err != nil {
			log.Warn("renewing the certificates failed; the current ones stay in use", "err", err)
		}
	}
}

// tlsEnv gives the service name its certificate, key and the authority.
func tlsEnv(data, name string) []string {
	f := mtls.FilesIn(tlsDir(data), name)
	return []string{"MICROSHOP_TLS_CERT=" + f.Cert, "MICROSHOP_TLS_KEY=" + f.Key, "MICROSHOP_TLS_CA=" + f.CA}
}

// clients are HTTP clients that reach each service as run does: over
// mutual TLS with the supervisor's certificate when the service's URL is
// https://, checking that it is that service, and in plain HTTP when it
// is http:// (the gateway, a monolith, a run with --mtls=false). One per
// service, so connections and TLS sessions are reused.
type clients struct {
	id      *mtls.Identity // nil: plain HTTP only
	timeout time.Duration
	mu      sync.Mutex
	m       map[string]*http.Client
}

func (c *clients) get(name string) *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := c.m[name]; ok {
		return hc
	}
	if c.m == nil {
		c.m = map[string]*http.Client{}
	}
	hc := &http.Client{Timeout: c.timeout}
	if c.id != nil {
		hc.Transport = c.id.Transport(name)
	}
	c.m[name] = hc
	return hc
}

// ServiceClient is an HTTP client for the process name of this system
// (its URL in Processes): with the supervisor's certificate, as run's own
// readiness checks and metrics scrapes use, when the system runs mutual
// TLS, and plain otherwise. It is for tests, demos and chaos, which read
// /metrics and /readyz, or call a service's routes directly.
func (s *System) ServiceClient(name string) *http.Client {
	s.clientsOnce.Do(func() {
		s.clients = &clients{timeout: 10 * time.Second}
		f := mtls.FilesIn(tlsDir(s.Data), mtls.Supervisor)
		if _, err := os.Stat(f.Cert); err == nil {
			if id, err := mtls.Load(f); err == nil {
				s.clients.id = id
			}
		}
	})
	return s.clients.get(name)
}
