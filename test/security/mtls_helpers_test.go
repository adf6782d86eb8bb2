package security

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/platform/balancer"
	"github.com/microshop/microshop/internal/platform/mtls"
	"github.com/microshop/microshop/internal/topology"
)

// squatter listens on a port where run's balancers look for a replica,
// as a stranger on the same machine would: it answers readiness with the
// system's public Microshop-Service header, and keeps what callers send
// it. With a certificate it serves TLS (accepting any client
// certificate, so a caller that does not check whom it talks to gets
// through); without one, plain HTTP.
type squatter struct {
	name  string
	conns atomic.Int64 // TCP connections accepted: callers did come
	// requests counts every HTTP request that arrived, readiness probes
	// included.
	requests atomic.Int64
	mu       sync.Mutex
	seen     []string // "METHOD /path body-prefix" of each request
}

// traffic counts the requests other than readiness probes: what callers
// meant for the real service.
func (s *squatter) traffic() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.seen {
		if r != "GET /readyz" {
			n++
		}
	}
	return n
}

func (s *squatter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%s: %d connections, %d requests %q", s.name, s.conns.Load(), s.requests.Load(), s.seen)
}

// squat starts a squatter named name on port, copying identity into its
// readiness answer; cert nil serves plain HTTP.
func squat(t *testing.T, name string, port int, identity string, cert *tls.Certificate) *squatter {
	t.Helper()
	raw, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("squatting on %d: %v", port, err)
	}
	s := &squatter{name: name}
	var ln net.Listener = countingListener{Listener: raw, n: &s.conns}
	if cert != nil {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}, ClientAuth: tls.RequestClientCert})
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.requests.Add(1)
			body, _ := io.ReadAll(io.LimitReader(r.Body, 200))
			s.mu.Lock()
			s.seen = append(s.seen, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(body)))
			s.mu.Unlock()
			w.Header().Set(balancer.IdentityHeader, identity)
			w.Header().Set("Content-Type", "application/json")
			if r.URL.Path == "/readyz" {
				io.WriteString(w, `{"database":"ok"}`)
				return
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{}`)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // failed handshakes are the point
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// replicaPort is the port of replica slot of service in s's port plan.
func replicaPort(t *testing.T, s *localrun.System, service string, slot int) int {
	t.Helper()
	spec, ok := topology.Find(service)
	if !ok {
		t.Fatalf("no service %s", service)
	}
	return s.Ports.Replica(spec, slot)
}

// identityOf is what the real replica of service answers in its
// readiness header: public, so a squatter copies it.
func identityOf(t *testing.T, s *localrun.System, service string) string {
	t.Helper()
	st, err := localrun.ReadState(s.Data)
	if err != nil {
		t.Fatal(err)
	}
	running := st.Running(service)
	if len(running) == 0 {
		t.Fatalf("%s is not running", service)
	}
	resp, err := s.ServiceClient(service).Get(running[0].URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get(balancer.IdentityHeader)
	if id == "" {
		t.Fatalf("%s's readiness answer has no %s header", service, balancer.IdentityHeader)
	}
	return id
}

// selfSigned is a certificate that names service exactly as the real
// one does, signed by itself.
func selfSigned(t *testing.T, service string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: service},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{mtls.URI(service)},
		DNSNames:     []string{service},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// otherCA is a certificate for service from another authority, as
// another system (a second `microshop run`) has.
func otherCA(t *testing.T, service string) *tls.Certificate {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	if _, err := mtls.Ensure(dir, []string{service}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return load(t, mtls.FilesIn(dir, service))
}

// realCertOf is the system's own certificate of service: what a squatter
// has that took over that service (its files under <data>/tls).
func realCertOf(t *testing.T, s *localrun.System, service string) *tls.Certificate {
	t.Helper()
	return load(t, mtls.FilesIn(filepath.Join(s.Data, "tls"), service))
}

func load(t *testing.T, f mtls.Files) *tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}
