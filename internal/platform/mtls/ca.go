// Package mtls gives every service an identity that the other end of a
// connection can check: a certificate from the system's own certificate
// authority that names the service (URI SAN spiffe://microshop/<name> and
// DNS SAN <name>). A service serves its internal port over TLS and admits
// only clients with a certificate from that authority; a caller presents
// its own certificate and goes on only when the callee's names exactly the
// service it meant to call. So a process that merely listens on a
// replica's port gets a failed handshake, never a request.
//
// `microshop run` keeps the authority and the certificates under
// <data>/tls/ (Ensure); on Kubernetes they come from Secrets.
package mtls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	// TrustDomain is the authority part of every service's URI name.
	TrustDomain = "microshop"
	// Supervisor names `microshop run` itself: its readiness checks,
	// balancer probes and metrics scrapes present this certificate.
	Supervisor = "supervisor"

	// CAValidity is how long a new authority lives.
	CAValidity = 365 * 24 * time.Hour
	// CertValidity is how long a service's certificate lives; run renews
	// it when less than RenewBefore is left.
	CertValidity = 30 * 24 * time.Hour
	// RenewBefore is the validity left at which Ensure issues a new
	// certificate (a third of CertValidity), or a new authority when the
	// authority has less than CertValidity left.
	RenewBefore = 10 * 24 * time.Hour
)

// URI is the name a certificate gives the service name:
// spiffe://microshop/<name>.
func URI(name string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: TrustDomain, Path: "/" + name}
}

// NameOf returns the service a certificate names: the one URI SAN of the
// trust domain. A certificate with none, or with several, names nobody.
func NameOf(cert *x509.Certificate) (string, bool) {
	name := ""
	for _, u := range cert.URIs {
		if u.Scheme != "spiffe" || u.Host != TrustDomain {
			continue
		}
		if name != "" {
			return "", false
		}
		name = strings.TrimPrefix(u.Path, "/")
	}
	return name, name != "" && !strings.Contains(name, "/")
}

// CA is a system's certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes an authority (ECDSA P-256) valid from now for validity.
func NewCA(now time.Time, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("making the CA's key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"microshop"}, CommonName: "microshop services CA"},
		NotBefore:             now.Add(-time.Hour), // a little clock skew between processes
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing the CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: key}, nil
}

// ParseCA reads an authority from its PEM certificate and key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("the CA certificate: %w", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("the CA key: no PEM block")
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("the CA key does not belong to the CA certificate")
	}
	return &CA{Cert: cert, key: key}, nil
}

// CertPEM is the authority's certificate, which everyone trusts.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// KeyPEM is the authority's private key; keep it where only the issuer
// reads it.
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// Issue makes a key and a certificate for the service name, valid from now
// for validity (never past the authority's end), for both ends of a
// connection: it names the service as spiffe://microshop/<name> and as
// the DNS name <name>.
func (ca *CA) Issue(name string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if name == "" || strings.ContainsAny(name, "/ ") {
		return nil, nil, fmt.Errorf("%q is no service name", name)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	end := now.Add(validity)
	if end.After(ca.Cert.NotAfter) {
		end = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"microshop"}, CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     end,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{URI(name)},
		DNSNames:     []string{name},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing %s's certificate: %w", name, err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("making a serial number: %w", err)
	}
	return n, nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// Files are where one identity's PEM files are.
type Files struct {
	Cert, Key, CA string
}

// FilesIn are the files of name in dir, as Ensure writes them:
// <name>.pem, <name>-key.pem and the authority's ca.pem.
func FilesIn(dir, name string) Files {
	return Files{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem"), CA: filepath.Join(dir, "ca.pem")}
}

// Ensure keeps an authority and a certificate for each of names in dir,
// as `microshop run` does under <data>/tls/: it makes the authority
// (ca.pem, ca-key.pem) on the first call and reuses it, and issues a
// certificate for each name that has none, has one from another
// authority, or has less than RenewBefore left. A new authority (when the
// old has less than CertValidity left) reissues every certificate. Keys
// are written readable by their owner only. It reports the names whose
// certificate it issued.
func Ensure(dir string, names []string, now time.Time) (issued []string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	caFile, caKeyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	var ca *CA
	certPEM, err1 := os.ReadFile(caFile)
	keyPEM, err2 := os.ReadFile(caKeyFile)
	switch {
	case err1 == nil && err2 == nil:
		if ca, err = ParseCA(certPEM, keyPEM); err != nil {
			return nil, fmt.Errorf("%s: %w (delete ca.pem and ca-key.pem to make a new authority)", dir, err)
		}
		if ca.Cert.NotAfter.Sub(now) < CertValidity {
			ca = nil // about to expire: a new one, and new certificates
		}
	case errors.Is(err1, os.ErrNotExist) && errors.Is(err2, os.ErrNotExist):
	case err1 != nil && !errors.Is(err1, os.ErrNotExist):
		return nil, fmt.Errorf("reading %s: %w", caFile, err1)
	case err2 != nil && !errors.Is(err2, os.ErrNotExist):
		return nil, fmt.Errorf("reading %s: %w", caKeyFile, err2)
	default:
		return nil, fmt.Errorf("%s: one of ca.pem and ca-key.pem is missing; delete the other to make a new authority", dir)
	}
	if ca == nil {
		if ca, err = NewCA(now, CAValidity); err != nil {
			return nil, err
		}
		kp, err := ca.KeyPEM()
		if err != nil {
			return nil, err
		}
		if err := writeFile(caKeyFile, kp, 0o600); err != nil {
			return nil, err
		}
		if err := writeFile(caFile, ca.CertPEM(), 0o644); err != nil {
			return nil, err
		}
	}
	for _, name := range names {
		f := FilesIn(dir, name)
		if current(f, ca, name, now) {
			continue
		}
		c, k, err := ca.Issue(name, now, CertValidity)
		if err != nil {
			return nil, err
		}
		// The key first: a reader that sees the new certificate finds
		// its key in place (Identity reloads when the certificate
		// changes).
		if err := writeFile(f.Key, k, 0o600); err != nil {
			return nil, err
		}
		if err := writeFile(f.Cert, c, 0o644); err != nil {
			return nil, err
		}
		issued = append(issued, name)
	}
	return issued, nil
}

// current reports whether f holds a certificate for name from ca with
// more than RenewBefore left, and its key.
func current(f Files, ca *CA, name string, now time.Time) bool {
	b, err := os.ReadFile(f.Cert)
	if err != nil {
		return false
	}
	cert, err := parseCert(b)
	if err != nil || cert.CheckSignatureFrom(ca.Cert) != nil || cert.NotAfter.Sub(now) < RenewBefore {
		return false
	}
	if n, ok := NameOf(cert); !ok || n != name {
		return false
	}
	_, err = os.Stat(f.Key)
	return err == nil
}

// writeFile replaces path atomically, so a service reading it never sees
// half a file.
func writeFile(path string, b []byte, mode os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
