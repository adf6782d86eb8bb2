package service_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/mtls"
	"github.com/microshop/microshop/internal/platform/service"
)

// opsSpec is a service with a public route and an /internal/ one, which
// the operations port must never serve.
func opsSpec() service.Spec {
	return service.Spec{Name: "alpha", Port: 1, IssuesTokens: true, Setup: func(f *config.Flags) service.Build {
		return func(ctx context.Context, rt *service.Runtime) error {
			rt.Server.Router.Get("/api/alpha/secrets", func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "card 4242 for "+mtls.PeerName(r))
			})
			rt.Server.Router.Post("/internal/refund", func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "refunded")
			})
			return nil
		}
	}}
}

type opsService struct {
	main, ops string // base URLs
	tlsDir    string
	stop      func() error
}

// startOps runs opsSpec with mutual TLS on its port and an operations
// port, with extra flags.
func startOps(t *testing.T, extra ...string) *opsService {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	if _, err := mtls.Ensure(dir, []string{"alpha", mtls.Supervisor}, time.Now()); err != nil {
		t.Fatal(err)
	}
	f := mtls.FilesIn(dir, "alpha")
	mainAddr, opsAddr := freeAddr(t), freeAddr(t)
	args := append([]string{"--addr", mainAddr, "--ops-addr", opsAddr, "--data", t.TempDir(), "--drain-timeout", "5s",
		"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, opsSpec(), args, func(string) string { return "" }, io.Discard, io.Discard)
	}()
	s := &opsService{main: "https://" + mainAddr, ops: "http://" + opsAddr, tlsDir: dir}
	s.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return errors.New("the service did not stop within 20s")
		}
	})
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("stopping: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _, err := get(http.DefaultClient, s.ops+"/readyz"); err == nil && code == http.StatusOK {
			return s
		}
		select {
		case err := <-done:
			t.Fatalf("the service stopped while starting: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the operations port did not answer /readyz 200 within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(hc *http.Client, url string) (int, string, error) {
	return do(hc, http.MethodGet, url)
}

func do(hc *http.Client, method, url string) (int, string, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type") + " " + string(b), err
}

// TestOpsPortServesOnlyOperations: a client without a certificate (a
// kubelet, Prometheus) gets health and metrics on the operations port
// and nothing else, while the service's own port still asks every client
// for a certificate from the system's authority.
func TestOpsPortServesOnlyOperations(t *testing.T) {
	s := startOps(t)
	plain := &http.Client{Timeout: 5 * time.Second}

	for path, want := range map[string]string{
		"/healthz": `"alive"`,
		"/readyz":  "{",
		"/metrics": "go_goroutines",
	} {
		code, body, err := get(plain, s.ops+path)
		if err != nil || code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET ops %s: %d %.120q %v; want 200 with %q", path, code, body, err, want)
		}
	}
	// Nothing of the service, nor profiles without --pprof.
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/api/alpha/secrets"},
		{http.MethodPost, "/internal/refund"},
		{http.MethodGet, "/debug/pprof/"},
		{http.MethodGet, "/openapi.json"},
		{http.MethodGet, "/"},
	} {
		code, body, err := do(plain, c.method, s.ops+c.path)
		if err != nil || code != http.StatusNotFound || !strings.HasPrefix(body, "application/problem+json") ||
			strings.Contains(body, "4242") || strings.Contains(body, "refunded") {
			t.Errorf("%s ops %s: %d %.120q %v; want a 404 problem", c.method, c.path, code, body, err)
		}
	}
	if code, _, err := do(plain, http.MethodPost, s.ops+"/healthz"); err != nil || code != http.StatusMethodNotAllowed {
		t.Errorf("POST ops /healthz: %d %v; want 405", code, err)
	}

	// The service's port: plain HTTP gets no route, nor does TLS without
	// a client certificate.
	code, body, err := get(plain, strings.Replace(s.main, "https://", "http://", 1)+"/api/alpha/secrets")
	if err == nil && (code == http.StatusOK || strings.Contains(body, "4242")) {
		t.Errorf("plain HTTP to the service's port: %d %.120q", code, body)
	}
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(mtls.FilesIn(s.tlsDir, "alpha").CA)
	if err != nil || !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("reading the CA: %v", err)
	}
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "alpha", MinVersion: tls.VersionTLS13}}}
	for _, path := range []string{"/api/alpha/secrets", "/healthz", "/metrics"} {
		if code, body, err := get(noCert, s.main+path); err == nil {
			t.Errorf("TLS without a client certificate to the service's %s: %d %.120q; want a refused handshake", path, code, body)
		}
	}
	// With a certificate of the system, the route answers on the
	// service's port.
	sup, err := mtls.Load(mtls.FilesIn(s.tlsDir, mtls.Supervisor))
	if err != nil {
		t.Fatal(err)
	}
	withCert := &http.Client{Timeout: 5 * time.Second, Transport: sup.Transport("alpha")}
	if code, body, err := get(withCert, s.main+"/api/alpha/secrets"); err != nil || code != http.StatusOK || !strings.Contains(body, "card 4242 for supervisor") {
		t.Errorf("with the supervisor's certificate: %d %.120q %v", code, body, err)
	}
}

// TestOpsPortProfilesWithPprof: --pprof adds Go's profiles there, and
// only those.
func TestOpsPortProfilesWithPprof(t *testing.T) {
	s := startOps(t, "--pprof")
	plain := &http.Client{Timeout: 5 * time.Second}
	if code, body, err := get(plain, s.ops+"/debug/pprof/goroutine?debug=1"); err != nil || code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("ops /debug/pprof/goroutine with --pprof: %d %.80q %v", code, body, err)
	}
	if code, _, err := get(plain, s.ops+"/api/alpha/secrets"); err != nil || code != http.StatusNotFound {
		t.Errorf("ops /api/alpha/secrets with --pprof: %d %v; want 404", code, err)
	}
}

// TestOpsPortSeesTheDrain: once the service is told to stop, /readyz on
// the operations port answers 503 while the service's port still
// serves, so a kubelet takes the pod out of its Service first.
func TestOpsPortSeesTheDrain(t *testing.T) {
	s := startOps(t, "--drain-delay", "2s")
	plain := &http.Client{Timeout: 5 * time.Second}
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	deadline := time.Now().Add(2 * time.Second)
	for {
		code, body, err := get(plain, s.ops+"/readyz")
		if err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "draining") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ops /readyz during the drain delay: %d %.120q %v; want 503 draining", code, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stopping: %v", err)
	}
	if _, _, err := get(plain, s.ops+"/healthz"); err == nil {
		t.Error("the operations port still answers after the service stopped")
	}
}

// TestOpsPortInUse: a taken --ops-addr stops the start.
func TestOpsPortInUse(t *testing.T) {
	s := startOps(t)
	addr := strings.TrimPrefix(s.ops, "http://")
	err := service.Run(context.Background(), opsSpec(), []string{"--addr", freeAddr(t), "--ops-addr", addr, "--data", t.TempDir()},
		func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--ops-addr") {
		t.Fatalf("starting on a taken --ops-addr: %v", err)
	}
}
