package mtls

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestIdentityFollowsASecretVolume: a Kubernetes Secret volume holds
// its files in a timestamped folder behind the symlink ..data, and each
// file is a symlink through it. The kubelet (for a renewal by cert-manager
// or a new Secret applied) writes a new folder and swaps ..data in one
// rename. The identity sees the change at its next check and uses the new
// certificate, with no restart.
func TestIdentityFollowsASecretVolume(t *testing.T) {
	now := time.Now()
	ca, err := NewCA(now, CAValidity)
	if err != nil {
		t.Fatal(err)
	}
	vol := t.TempDir()
	// version writes one generation of the Secret and points ..data at it.
	version := func(gen string) {
		t.Helper()
		cert, key, err := ca.Issue("orders", now, CertValidity)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(vol, "..2026_"+gen)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"tls.crt": cert, "tls.key": key, "ca.crt": ca.CertPEM()} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o440); err != nil {
				t.Fatal(err)
			}
		}
		tmp := filepath.Join(vol, "..data_tmp")
		if err := os.Symlink(filepath.Base(dir), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(vol, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("a")
	for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(vol, name)); err != nil {
			t.Fatal(err)
		}
	}
	id, err := Load(Files{Cert: filepath.Join(vol, "tls.crt"), Key: filepath.Join(vol, "tls.key"), CA: filepath.Join(vol, "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	first := id.current().Leaf.SerialNumber

	version("b")
	if got := id.current().Leaf.SerialNumber; got.Cmp(first) != 0 {
		t.Fatal("the identity read the files again before its next check")
	}
	id.mu.Lock()
	id.checked = time.Now().Add(-reloadEvery) // the next check is due
	id.mu.Unlock()
	second := id.current().Leaf.SerialNumber
	if second.Cmp(first) == 0 {
		t.Fatal("after ..data moved to a new certificate, the identity still uses the old one")
	}
	// The server and client configurations hand out the current one.
	got, err := id.ServerConfig().GetCertificate(nil)
	if err != nil || got.Leaf.SerialNumber.Cmp(second) != 0 {
		t.Errorf("ServerConfig presents serial %v (%v), want the renewed %v", got.Leaf.SerialNumber, err, second)
	}
}
