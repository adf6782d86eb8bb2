package deploy

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
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
