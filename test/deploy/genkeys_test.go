package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/mtls"
)

// runGenKeys runs deploy/gen-keys.sh with args, skipping the test where
// the machine has no sh or openssl.
func runGenKeys(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	for _, tool := range []string{"sh", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("gen-keys.sh needs %s: %v", tool, err)
		}
	}
	cmd := exec.Command("sh", append([]string{filepath.Join(repoRoot(t), "deploy", "gen-keys.sh")}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// checkKeyPair proves that seed (what a service gets as
// MICROSHOP_SERVICE_KEY) and the public key listed for it in publics
// (MICROSHOP_SERVICE_KEYS) are one key pair, as the platform reads them.
func checkKeyPair(t *testing.T, name, seed, publics string) {
	t.Helper()
	keys, err := auth.ParseServiceKeys(name, seed, publics)
	if err != nil {
		t.Fatalf("%s: the platform refuses the keys: %v", name, err)
	}
	pub, ok := keys.Public[name]
	if !ok {
		t.Fatalf("MICROSHOP_SERVICE_KEYS lists no key for %s", name)
	}
	if !keys.Private.Public().(ed25519.PublicKey).Equal(pub) {
		t.Errorf("%s: MICROSHOP_SERVICE_KEY and the public key listed for it are not one pair", name)
	}
	msg := []byte("a credential of " + name)
	if !ed25519.Verify(pub, msg, ed25519.Sign(keys.Private, msg)) {
		t.Errorf("%s: a signature with the seed does not verify with the listed key", name)
	}
}

func TestGenKeysForCompose(t *testing.T) {
	out, err := runGenKeys(t, nil)
	if err != nil {
		t.Fatalf("gen-keys.sh: %v\n%s", err, out)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("not KEY=value: %q", line)
		}
		vars[k] = v
	}
	publics := vars["MICROSHOP_SERVICE_KEYS"]
	if strings.Count(publics, "=") < len(servicePorts) {
		t.Fatalf("MICROSHOP_SERVICE_KEYS=%q does not list every service", publics)
	}
	for _, name := range serviceNames() {
		checkKeyPair(t, name, vars["MICROSHOP_SERVICE_KEY_"+strings.ToUpper(name)], publics)
	}
	if k, err := base64.StdEncoding.DecodeString(vars["MICROSHOP_WEBHOOK_SIGNING_KEY"]); err != nil || len(k) < 32 {
		t.Errorf("MICROSHOP_WEBHOOK_SIGNING_KEY is not 32 bytes or more of base64")
	}
	checkProxySecretValue(t, vars[proxySecretVar])
	if len(vars["MICROSHOP_ADMIN_PASSWORD"]) < 12 {
		t.Errorf("MICROSHOP_ADMIN_PASSWORD is shorter than the 12 characters users wants")
	}
	// Every ${VAR} compose.yaml interpolates without a default is made here.
	compose := readRepoFile(t, "deploy/compose.yaml")
	for _, m := range interpolation.FindAllStringSubmatch(compose, -1) {
		if strings.HasPrefix(m[2], ":?") || strings.HasPrefix(m[2], "?") {
			if _, ok := vars[m[1]]; !ok {
				t.Errorf("compose.yaml requires %s, which gen-keys.sh does not make", m[1])
			}
		}
	}
	// The Postgres passwords go into URLs unescaped: they must be URL-safe.
	for k, v := range vars {
		if strings.HasPrefix(k, "MICROSHOP_DB_PASSWORD_") && strings.Trim(v, "0123456789abcdef") != "" {
			t.Errorf("%s is not hex: it goes into a postgres:// URL as it is", k)
		}
	}
	again, err := runGenKeys(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again == out {
		t.Error("two runs made the same keys")
	}
}

func TestGenKeysForKubernetes(t *testing.T) {
	out, err := runGenKeys(t, []string{"MICROSHOP_ADMIN_EMAIL=ops@example.com"}, "--k8s")
	if err != nil {
		t.Fatalf("gen-keys.sh --k8s: %v\n%s", err, out)
	}
	docs, err := splitYAML([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]*corev1.Secret{}
	for _, j := range docs {
		s := &corev1.Secret{}
		if err := decodeStrict(j, s); err != nil {
			t.Fatalf("not a Secret: %v\n%s", err, j)
		}
		if s.Kind != "Secret" || s.APIVersion != "v1" {
			t.Fatalf("a %s/%s, want v1/Secret", s.APIVersion, s.Kind)
		}
		secrets[s.Name] = s
	}
	publics := secrets["microshop-service-keys"].StringData["MICROSHOP_SERVICE_KEYS"]
	for _, name := range serviceNames() {
		s := secrets["microshop-"+name]
		if s == nil {
			t.Errorf("no Secret microshop-%s", name)
			continue
		}
		checkKeyPair(t, name, s.StringData["MICROSHOP_SERVICE_KEY"], publics)
	}
	// Each service that uses the broker gets the seed of its own NATS
	// user, whose public key is the one the NATS servers read for it.
	natsUsers := secrets[natsUsersSecret]
	if natsUsers == nil || natsUsers.Namespace != "nats" {
		t.Fatalf("no Secret %s in the namespace nats: %+v", natsUsersSecret, natsUsers)
	}
	publicNKeys := map[string]bool{}
	for _, name := range serviceNames() {
		s := secrets["microshop-"+name]
		if s == nil {
			continue
		}
		if s.Namespace != "microshop" {
			t.Errorf("Secret %s is in namespace %q, want microshop", s.Name, s.Namespace)
		}
		seed, has := s.StringData[natsSeedVar]
		if !usesBroker(name) {
			if has {
				t.Errorf("%s does not use the broker, yet its Secret has a NATS seed", name)
			}
			continue
		}
		pub, err := broker.PublicKey(seed)
		if err != nil {
			t.Errorf("%s: %s is not an nkey user seed: %v", name, natsSeedVar, err)
			continue
		}
		if want := natsUsers.StringData[nkeyVar(name)]; pub != want {
			t.Errorf("%s: its NATS seed's public key is %s, but the NATS servers admit %s for it", name, pub, want)
		}
		if publicNKeys[pub] {
			t.Errorf("%s shares its NATS key with another service", name)
		}
		publicNKeys[pub] = true
	}
	// The proxy secret has a Secret of its own beside the services'.
	proxy := secrets["microshop-proxy-secret"]
	if proxy == nil || proxy.Namespace != "microshop" {
		t.Fatalf("no Secret microshop-proxy-secret in the namespace microshop: %+v", proxy)
	}
	if keys := secretKeys(proxy); len(keys) != 1 || keys[0] != proxySecretVar {
		t.Errorf("microshop-proxy-secret holds %v, want %s only", keys, proxySecretVar)
	}
	checkProxySecretValue(t, proxy.StringData[proxySecretVar])
	if got := secrets["microshop-users"].StringData["MICROSHOP_ADMIN_EMAIL"]; got != "ops@example.com" {
		t.Errorf("the admin email is %q, want the one given", got)
	}
	// They are the Secrets, with the keys, that the manifests read: the
	// example Secrets of the base have the same names and keys.
	m := loadManifests(filepath.Join(repoRoot(t), "deploy", "k8s"))
	for _, ex := range all[*corev1.Secret](m) {
		got := secrets[ex.Name]
		if got == nil {
			t.Errorf("gen-keys.sh --k8s makes no Secret %s (%s)", ex.Name, m.where(ex))
			continue
		}
		for _, k := range secretKeys(ex) {
			if _, ok := got.StringData[k]; !ok {
				t.Errorf("gen-keys.sh --k8s: Secret %s lacks %s", ex.Name, k)
			}
		}
	}
	// Another namespace moves every Secret but the NATS servers' there, and
	// every run makes a new proxy secret.
	other, err := runGenKeys(t, []string{"MICROSHOP_NAMESPACE=shop"}, "--k8s")
	if err != nil {
		t.Fatalf("gen-keys.sh --k8s with MICROSHOP_NAMESPACE=shop: %v\n%s", err, other)
	}
	docs, err = splitYAML([]byte(other))
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range docs {
		s := &corev1.Secret{}
		if err := decodeStrict(j, s); err != nil {
			t.Fatal(err)
		}
		want := "shop"
		if s.Name == natsUsersSecret {
			want = "nats"
		}
		if s.Namespace != want {
			t.Errorf("with MICROSHOP_NAMESPACE=shop, Secret %s is in %q, want %s", s.Name, s.Namespace, want)
		}
		if s.Name == "microshop-proxy-secret" && s.StringData[proxySecretVar] == proxy.StringData[proxySecretVar] {
			t.Error("two runs made the same proxy secret")
		}
	}
	if _, err := runGenKeys(t, []string{"NATS_NAMESPACE=nats\nkind: x"}, "--k8s"); err == nil {
		t.Error("a namespace that is no name was accepted into YAML")
	}
	if _, err := runGenKeys(t, []string{`MICROSHOP_ADMIN_EMAIL=a"b@example.com`}, "--k8s"); err == nil {
		t.Error("an admin email with a quote was accepted into YAML")
	}
}

// checkProxySecretValue: 32 random bytes as hex, which an HTTP header
// carries as it is.
func checkProxySecretValue(t *testing.T, v string) {
	t.Helper()
	if b, err := hex.DecodeString(v); err != nil || len(b) < 32 {
		t.Errorf("%s=%q is not 32 bytes or more of hex", proxySecretVar, v)
	}
}

// gen-keys.sh --k8s makes a CA and, per service, a certificate that the
// platform's mutual TLS accepts: from that CA, naming the service; and
// two services can talk with them, each checking the other.
func TestGenKeysMakesServiceCertificates(t *testing.T) {
	out, err := runGenKeys(t, nil, "--k8s")
	if err != nil {
		t.Fatalf("gen-keys.sh --k8s: %v\n%s", err, out)
	}
	docs, err := splitYAML([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]*corev1.Secret{}
	for _, j := range docs {
		s := &corev1.Secret{}
		if err := decodeStrict(j, s); err != nil {
			t.Fatal(err)
		}
		secrets[s.Name] = s
	}
	ca := secrets["microshop-ca"]
	if ca == nil || ca.Type != corev1.SecretTypeTLS || ca.StringData["tls.crt"] == "" || ca.StringData["tls.key"] == "" {
		t.Fatalf("no kubernetes.io/tls Secret microshop-ca with the CA: %+v", ca)
	}
	dir := t.TempDir()
	ids := map[string]*mtls.Identity{}
	for _, name := range serviceNames() {
		s := secrets["microshop-"+name+"-tls"]
		if s == nil || s.Type != corev1.SecretTypeTLS {
			t.Errorf("no kubernetes.io/tls Secret microshop-%s-tls", name)
			continue
		}
		if s.StringData["ca.crt"] != ca.StringData["tls.crt"] {
			t.Errorf("microshop-%s-tls: ca.crt is not the CA of microshop-ca", name)
		}
		f := mtls.Files{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem"), CA: filepath.Join(dir, name+"-ca.pem")}
		for file, key := range map[string]string{f.Cert: "tls.crt", f.Key: "tls.key", f.CA: "ca.crt"} {
			if err := os.WriteFile(file, []byte(s.StringData[key]), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		id, err := mtls.Load(f)
		if err != nil {
			t.Errorf("%s: the platform refuses the certificate: %v", name, err)
			continue
		}
		if id.Name() != name {
			t.Errorf("microshop-%s-tls names %s", name, id.Name())
		}
		ids[name] = id
	}
	orders, inventory := ids["orders"], ids["inventory"]
	if orders == nil || inventory == nil {
		return
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", inventory.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	if c, err := orders.DialTLS("inventory")(context.Background(), "tcp", ln.Addr().String()); err != nil {
		t.Errorf("orders calling inventory with gen-keys.sh's certificates: %v", err)
	} else {
		c.Close()
	}
	if _, err := orders.DialTLS("payments")(context.Background(), "tcp", ln.Addr().String()); err == nil {
		t.Error("orders took inventory's certificate for payments'")
	}
}

// gen-keys.sh --k8s-certs renews the services' certificates from the CA
// that --k8s made, and prints nothing else: the new certificates are
// trusted by services still holding the old ones, so no restart is needed.
// It refuses to run without that CA, or with a key that is not the CA's.
func TestGenKeysRenewsCertificatesFromTheCA(t *testing.T) {
	secretsOf := func(out string) map[string]*corev1.Secret {
		t.Helper()
		docs, err := splitYAML([]byte(out))
		if err != nil {
			t.Fatal(err)
		}
		secrets := map[string]*corev1.Secret{}
		for _, j := range docs {
			s := &corev1.Secret{}
			if err := decodeStrict(j, s); err != nil {
				t.Fatal(err)
			}
			secrets[s.Name] = s
		}
		return secrets
	}
	out, err := runGenKeys(t, nil, "--k8s")
	if err != nil {
		t.Fatalf("gen-keys.sh --k8s: %v\n%s", err, out)
	}
	first := secretsOf(out)
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := first["microshop-ca"]
	caCert, caKey := write("ca.pem", ca.StringData["tls.crt"]), write("ca-key.pem", ca.StringData["tls.key"])

	out, err = runGenKeys(t, []string{"MICROSHOP_CA_CERT=" + caCert, "MICROSHOP_CA_KEY=" + caKey}, "--k8s-certs")
	if err != nil {
		t.Fatalf("gen-keys.sh --k8s-certs: %v\n%s", err, out)
	}
	renewed := secretsOf(out)
	if len(renewed) != len(serviceNames()) {
		t.Errorf("--k8s-certs printed %d Secrets, want only the %d microshop-<service>-tls", len(renewed), len(serviceNames()))
	}
	identity := func(s *corev1.Secret, name string) *mtls.Identity {
		t.Helper()
		f := mtls.Files{Cert: write(s.Name+"-"+name+".crt", s.StringData["tls.crt"]),
			Key: write(s.Name+"-"+name+".key", s.StringData["tls.key"]), CA: write(s.Name+"-"+name+".ca", s.StringData["ca.crt"])}
		id, err := mtls.Load(f)
		if err != nil {
			t.Fatalf("%s: the platform refuses it: %v", s.Name, err)
		}
		if id.Name() != name {
			t.Fatalf("%s names %s", s.Name, id.Name())
		}
		return id
	}
	for _, name := range serviceNames() {
		s := renewed[tlsSecret(name)]
		if s == nil {
			t.Errorf("--k8s-certs made no %s", tlsSecret(name))
			continue
		}
		if s.StringData["ca.crt"] != ca.StringData["tls.crt"] {
			t.Errorf("%s: ca.crt is not the CA given", s.Name)
		}
		if s.StringData["tls.crt"] == first[s.Name].StringData["tls.crt"] || s.StringData["tls.key"] == first[s.Name].StringData["tls.key"] {
			t.Errorf("%s: not a new certificate and key", s.Name)
		}
		identity(s, name)
	}
	// orders with its old certificate calls inventory with its renewed one,
	// and the reverse: a rolling renewal breaks no call.
	for _, pair := range [][2]*mtls.Identity{
		{identity(first[tlsSecret("orders")], "orders"), identity(renewed[tlsSecret("inventory")], "inventory")},
		{identity(renewed[tlsSecret("orders")], "orders"), identity(first[tlsSecret("inventory")], "inventory")},
	} {
		caller, callee := pair[0], pair[1]
		ln, err := tls.Listen("tcp", "127.0.0.1:0", callee.ServerConfig())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}
		}()
		if c, err := caller.DialTLS("inventory")(context.Background(), "tcp", ln.Addr().String()); err != nil {
			t.Errorf("orders calling inventory across the renewal: %v", err)
		} else {
			c.Close()
		}
		ln.Close()
	}

	// Without the CA, or with another key, it refuses.
	if out, err := runGenKeys(t, nil, "--k8s-certs"); err == nil || !strings.Contains(out, "MICROSHOP_CA_CERT") {
		t.Errorf("--k8s-certs without a CA: %v\n%s", err, out)
	}
	other := secretsOf(mustGenKeys(t))["microshop-ca"]
	otherKey := write("other-key.pem", other.StringData["tls.key"])
	if out, err := runGenKeys(t, []string{"MICROSHOP_CA_CERT=" + caCert, "MICROSHOP_CA_KEY=" + otherKey}, "--k8s-certs"); err == nil || !strings.Contains(out, "is not the key of") {
		t.Errorf("--k8s-certs with another CA's key: %v\n%s", err, out)
	}
}

func mustGenKeys(t *testing.T) string {
	t.Helper()
	out, err := runGenKeys(t, nil, "--k8s")
	if err != nil {
		t.Fatalf("gen-keys.sh --k8s: %v\n%s", err, out)
	}
	return out
}
