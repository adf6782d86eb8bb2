package users

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/database/dbtest"
)

// TestSigningKeysSealedAtRest follows one database through a life of
// KEKs: plain before there is one, sealed at the first start with one,
// refused without it, rotated to a new one, and never holding a seed in
// plain text once sealed.
func TestSigningKeysSealedAtRest(t *testing.T) {
	ctx := context.Background()
	db := dbtest.SQLite(t)
	if err := db.Migrate(ctx, slog.New(slog.DiscardHandler), "users", Spec().Migrations()); err != nil {
		t.Fatal(err)
	}
	a, b := newKEKForTest(t), newKEKForTest(t)
	load := func(current string, previous ...string) (*keyring, error) {
		s, err := newSealer(current, previous)
		if err != nil {
			t.Fatal(err)
		}
		return loadKeys(ctx, db, s)
	}

	// Before a KEK: the seed is stored as it is, and this is the weakness
	// the rest of the test shows gone.
	plain, err := load("")
	if err != nil {
		t.Fatal(err)
	}
	kid, signer := plain.current()
	if stored := storedSeeds(t, db); stored[kid] != base64.StdEncoding.EncodeToString(signer.Seed()) {
		t.Fatalf("without a KEK the seed should be stored as it is, got %q", stored[kid])
	}

	// The first start with a KEK seals the stored key: same key, no seed.
	sealed, err := load(a)
	if err != nil {
		t.Fatal(err)
	}
	if k, s := sealed.current(); k != kid || !s.Equal(signer) {
		t.Fatal("sealing changed the signing key")
	}
	requireSealed(t, db, signer, kid)
	if _, err := load(a); err != nil {
		t.Fatalf("opening with the same KEK: %v", err)
	}
	if _, err := load(""); err == nil || !strings.Contains(err.Error(), "key-encryption key") {
		t.Fatalf("without the KEK: %v, want an error naming the key-encryption key", err)
	}
	if _, err := load(b); err == nil {
		t.Fatal("a wrong KEK opened the key")
	}

	// Rotating: B current, A previous. The key is sealed again with B,
	// after which A alone no longer opens it.
	if _, err := load(b, a); err != nil {
		t.Fatalf("rotating: %v", err)
	}
	requireSealed(t, db, signer, kid)
	if _, err := load(b); err != nil {
		t.Fatalf("after rotating, the new KEK alone: %v", err)
	}
	if _, err := load(a); err == nil {
		t.Fatal("after rotating, the old KEK still opened the key")
	}

	// A sealed seed copied onto another key's row does not open: the
	// key id is bound into the seal.
	if _, err := db.ExecContext(ctx, `INSERT INTO signing_keys (kid, seed, created_at) VALUES ('other', $1, 0)`, storedSeeds(t, db)[kid]); err != nil {
		t.Fatal(err)
	}
	if _, err := load(b); err == nil || !strings.Contains(err.Error(), "altered") {
		t.Fatalf("a seal moved to another key: %v, want refused as altered", err)
	}
}

func TestBadKEKsAreRefused(t *testing.T) {
	for _, c := range []struct{ current, previous string }{
		{"short", ""},
		{base64.StdEncoding.EncodeToString(make([]byte, 16)), ""},
		{"", newKEKForTest(t)},
	} {
		if _, err := newSealer(c.current, []string{c.previous}); err == nil {
			t.Errorf("newSealer(%q, %q) took it", c.current, c.previous)
		}
	}
}

func newKEKForTest(t *testing.T) string {
	k, err := NewKEK()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func storedSeeds(t *testing.T, db *database.DB) map[string]string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT kid, seed FROM signing_keys`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var kid, seed string
		if err := rows.Scan(&kid, &seed); err != nil {
			t.Fatal(err)
		}
		out[kid] = seed
	}
	return out
}

// requireSealed fails unless kid's stored form is sealed and holds the
// seed neither in base64 nor in raw bytes.
func requireSealed(t *testing.T, db *database.DB, signer ed25519.PrivateKey, kid string) {
	t.Helper()
	stored := storedSeeds(t, db)[kid]
	if !strings.HasPrefix(stored, sealPrefix) || strings.Contains(stored, base64.StdEncoding.EncodeToString(signer.Seed())) ||
		strings.Contains(stored, string(signer.Seed())) {
		t.Fatalf("stored signing key %s is not sealed: %q", kid, stored)
	}
}
