package mtls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/mtls"
)

// system makes an authority and certificates for names in a temporary
// directory, as run does.
func system(t testing.TB, names ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	if _, err := mtls.Ensure(dir, names, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func identity(t testing.TB, dir, name string) *mtls.Identity {
	t.Helper()
	id, err := mtls.Load(mtls.FilesIn(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// serve runs an HTTPS server with the identity's server side and counts
// the requests that reach its handler.
func serve(t testing.TB, cfg *tls.Config) (string, *atomic.Int64) {
	t.Helper()
	hits := &atomic.Int64{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "hello "+mtls.PeerName(r))
	}))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, hits
}

func get(hc *http.Client, url string) (string, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestEnsureMakesKeepsAndRenews(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	issued, err := mtls.Ensure(dir, []string{"orders", "inventory"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(issued, ",") != "orders,inventory" {
		t.Errorf("first run issued %v", issued)
	}
	for _, f := range []string{"ca-key.pem", "orders-key.pem", "inventory-key.pem"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	ca1, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	// A second run reuses everything.
	if issued, err = mtls.Ensure(dir, []string{"orders", "inventory"}, now.Add(time.Hour)); err != nil || len(issued) != 0 {
		t.Errorf("second run issued %v, %v; want nothing", issued, err)
	}
	// Near the end of the certificates' life, they are renewed under the
	// same authority.
	later := now.Add(mtls.CertValidity - mtls.RenewBefore + time.Hour)
	if issued, err = mtls.Ensure(dir, []string{"orders", "inventory"}, later); err != nil || len(issued) != 2 {
		t.Errorf("near expiry issued %v, %v; want both", issued, err)
	}
	ca2, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if string(ca1) != string(ca2) {
		t.Error("renewing the certificates replaced the authority")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "orders.pem"))
	block, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.NotAfter.Before(later.Add(mtls.CertValidity - 2*time.Hour)) {
		t.Errorf("renewed certificate ends %s", cert.NotAfter)
	}
	if name, ok := mtls.NameOf(cert); !ok || name != "orders" || len(cert.DNSNames) != 1 || cert.DNSNames[0] != "orders" {
		t.Errorf("the certificate names %q (%v), DNS %v", name, ok, cert.DNSNames)
	}
	// Near the authority's end, a new one and new certificates.
	if issued, err = mtls.Ensure(dir, []string{"orders"}, now.Add(mtls.CAValidity-mtls.CertValidity+time.Hour)); err != nil || len(issued) != 1 {
		t.Errorf("near the CA's expiry issued %v, %v", issued, err)
	}
	ca3, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if string(ca3) == string(ca1) {
		t.Error("the authority was not replaced near its end")
	}
}

func TestCallerChecksWhomItCalls(t *testing.T) {
	dir := system(t, "orders", "inventory", "payments")
	orders := identity(t, dir, "orders")
	url, hits := serve(t, identity(t, dir, "inventory").ServerConfig())

	// The right service: served, and it knows who called.
	hc := &http.Client{Transport: orders.Transport("inventory")}
	body, err := get(hc, url)
	if err != nil || body != "hello orders" {
		t.Fatalf("orders calling inventory: %q, %v", body, err)
	}

	// The same server is not payments: a caller that means payments
	// gives up in the handshake and sends nothing.
	before := hits.Load()
	_, err = get(&http.Client{Transport: orders.Transport("payments")}, url)
	// The standard check of the DNS name catches it first; VerifyConnection
	// checks the URI name, on resumed sessions too.
	var wrong *mtls.WrongPeerError
	var host x509.HostnameError
	if !errors.As(err, &wrong) && !errors.As(err, &host) {
		t.Errorf("orders calling payments at inventory's port: %v, want a wrong-name error", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Errorf("a failed handshake must read as a dial error (nothing sent): %v", err)
	}
	if hits.Load() != before {
		t.Error("a request reached a server that is not the service called")
	}

	// With the check switched off (the test-only stand-in), the same
	// call goes through: the check is what stops it.
	loose := identity(t, dir, "orders")
	loose.SkipPeerCheck = true
	if _, err := get(&http.Client{Transport: loose.Transport("payments")}, url); err != nil {
		t.Errorf("with the check off: %v", err)
	}
	if hits.Load() != before+1 {
		t.Error("with the check off, the request should have arrived")
	}
}

func TestStrangersFailBothWays(t *testing.T) {
	dir := system(t, "orders", "inventory")
	other := system(t, "inventory", "orders") // another system's authority
	orders := identity(t, dir, "orders")

	// A server with a certificate from another authority that names the
	// right service: refused.
	url, hits := serve(t, identity(t, other, "inventory").ServerConfig())
	if _, err := get(&http.Client{Transport: orders.Transport("inventory")}, url); err == nil {
		t.Error("a server with another CA's certificate was trusted")
	}
	// A self-signed server: refused.
	self := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer self.Close()
	if _, err := get(&http.Client{Transport: orders.Transport("inventory")}, self.URL); err == nil {
		t.Error("a self-signed server was trusted")
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached untrusted servers", hits.Load())
	}

	// The service refuses clients without a certificate, or with one from
	// another authority.
	url, hits = serve(t, identity(t, dir, "inventory").ServerConfig())
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if _, err := get(anon, url); err == nil {
		t.Error("a client without a certificate was served")
	}
	foreign := identity(t, other, "orders")
	foreign.SkipPeerCheck = true // it does not trust our CA either
	if _, err := get(&http.Client{Transport: foreign.Transport("inventory")}, url); err == nil {
		t.Error("a client with another CA's certificate was served")
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests from untrusted clients were served", hits.Load())
	}
}

func TestSessionsResumePerReplica(t *testing.T) {
	dir := system(t, "orders", "inventory")
	orders := identity(t, dir, "orders")
	srv := identity(t, dir, "inventory").ServerConfig()
	a, _ := serve(t, srv.Clone())
	b, _ := serve(t, srv.Clone())
	dial := orders.DialTLS("inventory")
	resumed := func(url string) bool {
		t.Helper()
		conn, err := dial(context.Background(), "tcp", strings.TrimPrefix(url, "https://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// TLS 1.3 tickets arrive after the handshake: read the answer
		// to a request so the client has stored it.
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		io.ReadAll(conn)
		return conn.(*tls.Conn).ConnectionState().DidResume
	}
	for _, url := range []string{a, b} {
		if resumed(url) {
			t.Errorf("%s: the first connection resumed", url)
		}
	}
	// Each replica resumes its own session, even after the other's.
	for _, url := range []string{a, b, a, b} {
		if !resumed(url) {
			t.Errorf("%s: a later connection did not resume", url)
		}
	}
}

func TestLoadRefusesMismatches(t *testing.T) {
	dir := system(t, "orders")
	other := system(t, "orders")
	f := mtls.FilesIn(dir, "orders")
	f.CA = filepath.Join(other, "ca.pem")
	if _, err := mtls.Load(f); err == nil {
		t.Error("a certificate from another CA was loaded")
	}
	if _, err := mtls.Load(mtls.Files{Cert: f.Cert}); err == nil {
		t.Error("a certificate without key and CA was loaded")
	}
}
