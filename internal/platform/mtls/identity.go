package mtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Identity is one service's side of mutual TLS: its certificate and key,
// and the authority it trusts. It reads the files again when the
// certificate file's content changes (checked at most every reloadEvery,
// at a handshake), so a renewed certificate (by run, or a Secret that
// cert-manager or the kubelet updates) is used without a restart. The
// authority is read once: trusting a new one takes a restart.
type Identity struct {
	name  string
	files Files
	pool  *x509.CertPool

	// SkipPeerCheck makes this identity's clients accept any server
	// certificate. It exists only so a test can show what the check
	// prevents; never set it otherwise.
	SkipPeerCheck bool

	mu      sync.Mutex
	cert    *tls.Certificate
	certPEM []byte // the certificate file as last loaded
	checked time.Time
}

const reloadEvery = 30 * time.Second

// Load reads an identity from its files. The certificate must come from
// the authority in f.CA and name a service (NameOf).
func Load(f Files) (*Identity, error) {
	if f.Cert == "" || f.Key == "" || f.CA == "" {
		return nil, errors.New("mutual TLS needs a certificate, its key and the CA certificate (--tls-cert, --tls-key, --tls-ca)")
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("reading the CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate", f.CA)
	}
	id := &Identity{files: f, pool: pool}
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, fmt.Errorf("reading the certificate: %w", err)
	}
	cert, err := id.read(certPEM)
	if err != nil {
		return nil, err
	}
	id.name, _ = NameOf(cert.Leaf)
	id.cert, id.certPEM, id.checked = cert, certPEM, time.Now()
	return id, nil
}

// read checks the certificate certPEM (the certificate file's content)
// and loads it with its key.
func (id *Identity) read(certPEM []byte) (*tls.Certificate, error) {
	keyPEM, err := os.ReadFile(id.files.Key)
	if err != nil {
		return nil, fmt.Errorf("reading the key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading %s and %s: %w", id.files.Cert, id.files.Key, err)
	}
	leaf := cert.Leaf
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: id.pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("%s is not valid from the CA in %s: %w", id.files.Cert, id.files.CA, err)
	}
	name, ok := NameOf(leaf)
	if !ok {
		return nil, fmt.Errorf("%s names no service (a URI SAN %s)", id.files.Cert, URI("<service>"))
	}
	if id.name != "" && name != id.name {
		return nil, fmt.Errorf("%s now names %s, not %s", id.files.Cert, name, id.name)
	}
	return &cert, nil
}

// Name is the service the certificate names.
func (id *Identity) Name() string { return id.name }

// NotAfter is when the certificate in use expires.
func (id *Identity) NotAfter() time.Time {
	return id.current().Leaf.NotAfter
}

// current returns the certificate, reading the files again when the
// certificate file has changed. It compares the content, not the
// modification time: a file system's timestamps may be coarser than two
// writes are apart, and reading a small file every reloadEvery costs
// nothing. A renewal that cannot be read (a key that does not match yet)
// keeps the old certificate, which still works until it expires, and is
// tried again at the next check.
func (id *Identity) current() *tls.Certificate {
	id.mu.Lock()
	defer id.mu.Unlock()
	if time.Since(id.checked) < reloadEvery {
		return id.cert
	}
	id.checked = time.Now()
	if b, err := os.ReadFile(id.files.Cert); err == nil && !bytes.Equal(b, id.certPEM) {
		if cert, err := id.read(b); err == nil {
			id.cert, id.certPEM = cert, b
		}
	}
	return id.cert
}

// ServerConfig serves TLS with this identity and admits only clients
// whose certificate comes from the authority and names a service.
// Sessions can be resumed (tickets), so a returning client skips the
// certificate exchange.
func (id *Identity) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return id.current(), nil },
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      id.pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			if _, ok := NameOf(cs.PeerCertificates[0]); !ok {
				return errors.New("the client certificate names no service")
			}
			return nil
		},
	}
}

// ClientConfig presents this identity and goes on only with a server
// whose certificate comes from the authority and names exactly peer, as
// its URI SAN and its DNS name. The check runs on resumed sessions too.
func (id *Identity) ClientConfig(peer string) *tls.Config {
	cfg := &tls.Config{
		MinVersion:           tls.VersionTLS13,
		ServerName:           peer, // checked against the DNS SAN
		RootCAs:              id.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return id.current(), nil },
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			name, ok := NameOf(cs.PeerCertificates[0])
			if !ok || name != peer {
				return &WrongPeerError{Want: peer, Got: name}
			}
			return nil
		},
	}
	if id.SkipPeerCheck {
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = nil
	}
	return cfg
}

// WrongPeerError is a server that proved to be someone other than the
// service called.
type WrongPeerError struct{ Want, Got string }

func (e *WrongPeerError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("the server's certificate names no service; want %s", e.Want)
	}
	return fmt.Sprintf("the server's certificate names %s; want %s", e.Got, e.Want)
}

// DialTLS returns a dial function for http.Transport.DialTLSContext that
// makes mutual TLS connections to replicas of the service peer. Each
// address keeps its own session cache, so a client that balances over
// several replicas resumes with each (a session ticket is only good at
// the replica that issued it). A failed handshake is returned as a dial
// error (a *net.OpError with Op "dial"): no byte of a request was sent,
// so the caller may try another replica.
func (id *Identity) DialTLS(peer string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	var mu sync.Mutex
	caches := map[string]tls.ClientSessionCache{}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		cache, ok := caches[addr]
		if !ok {
			cache = tls.NewLRUClientSessionCache(8)
			caches[addr] = cache
		}
		mu.Unlock()
		cfg := id.ClientConfig(peer)
		cfg.ClientSessionCache = cache
		conn := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := conn.HandshakeContext(hctx); err != nil {
			raw.Close()
			return nil, &net.OpError{Op: "dial", Net: network, Addr: raw.RemoteAddr(),
				Err: fmt.Errorf("mutual TLS with %s at %s: %w", peer, addr, err)}
		}
		return conn, nil
	}
}

// Transport is a keep-alive transport that calls the service peer over
// mutual TLS (https:// URLs) and anything else in plain HTTP (http://).
// For run's own checks and for tests; services tune their own transports
// and set DialTLSContext to DialTLS.
func (id *Identity) Transport(peer string) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		DialTLSContext:      id.DialTLS(peer),
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
}

// PeerName is the service that the client of r proved to be, or "" for
// a request that came without mutual TLS.
func PeerName(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	name, _ := NameOf(r.TLS.PeerCertificates[0])
	return name
}
