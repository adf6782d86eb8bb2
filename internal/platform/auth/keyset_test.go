package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/microshop/microshop/internal/platform/auth"
)

// jwksServer serves a JWKS that a test may change, and counts fetches.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	body []byte
	code int
}

func newJWKSServer(t *testing.T, signers ...signer) *jwksServer {
	t.Helper()
	s := &jwksServer{code: http.StatusOK}
	s.serve(t, signers...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.code)
		w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(t *testing.T, signers ...signer) {
	t.Helper()
	set := auth.JWKS{}
	for _, k := range signers {
		set.Keys = append(set.Keys, auth.PublicJWK(k.kid, k.pub))
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.serveRaw(http.StatusOK, b)
}

func (s *jwksServer) serveRaw(code int, body []byte) {
	s.mu.Lock()
	s.code, s.body = code, body
	s.mu.Unlock()
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestPublicJWK(t *testing.T) {
	k := newSigner(t, "k1")
	j := auth.PublicJWK("k1", k.pub)
	if j.KeyType != "OKP" || j.Curve != "Ed25519" || j.Algorithm != "EdDSA" || j.Use != "sig" || j.KeyID != "k1" {
		t.Errorf("PublicJWK = %+v", j)
	}
	x, err := base64.RawURLEncoding.DecodeString(j.X)
	if err != nil || string(x) != string(k.pub) {
		t.Errorf("x does not hold the public key: %v", err)
	}
}

// Keys fetched once keep verifying while users is down, and a restarted
// service verifies from the cache file alone.
func TestRemoteKeySetSurvivesUsersOutage(t *testing.T) {
	ctx := context.Background()
	k := newSigner(t, "k1")
	srv := newJWKSServer(t, k)
	cache := filepath.Join(t.TempDir(), "keys", "jwks-cache.json")

	ks := auth.NewRemoteKeySet(srv.URL, cache, srv.Client(), quietLog())
	if ks.Ready() {
		t.Fatal("Ready before any fetch and without a cache")
	}
	v := auth.NewVerifier(ks)
	if _, err := v.Verify(ctx, k.sign(t, claims("u1"))); err != nil {
		t.Fatalf("Verify with the server up: %v", err)
	}
	if !ks.Ready() {
		t.Error("not Ready after fetching the keys")
	}
	if _, err := os.Stat(cache); err != nil {
		t.Fatalf("the cache file was not written: %v", err)
	}

	srv.Close()

	// A token the verifier has not seen needs the key, not its cache.
	if _, err := v.Verify(ctx, k.sign(t, claims("u2"))); err != nil {
		t.Errorf("Verify with the server down: %v", err)
	}
	if err := ks.Refresh(ctx); err == nil {
		t.Error("Refresh with the server down = nil error")
	}
	if _, err := v.Verify(ctx, k.sign(t, claims("u3"))); err != nil {
		t.Errorf("Verify after a failed refresh: %v", err)
	}

	restarted := auth.NewRemoteKeySet(srv.URL, cache, nil, quietLog())
	if !restarted.Ready() {
		t.Fatal("a key set with a cache file is not Ready")
	}
	if _, err := auth.NewVerifier(restarted).Verify(ctx, k.sign(t, claims("u4"))); err != nil {
		t.Errorf("Verify from the cache file with the server down: %v", err)
	}
}

// An unknown kid may be a key users has just rotated in: the key set
// fetches the JWKS again, but not on every request.
func TestRemoteKeySetRefreshesOnUnknownKid(t *testing.T) {
	ctx := context.Background()
	old, rotated := newSigner(t, "old"), newSigner(t, "new")
	srv := newJWKSServer(t, old)
	cache := filepath.Join(t.TempDir(), "jwks.json")

	// Prime the cache file with the old key only.
	first := auth.NewRemoteKeySet(srv.URL, cache, srv.Client(), quietLog())
	if err := first.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	srv.serve(t, old, rotated)
	ks := auth.NewRemoteKeySet(srv.URL, cache, srv.Client(), quietLog())
	v := auth.NewVerifier(ks)
	before := srv.hits.Load()
	if _, err := v.Verify(ctx, old.sign(t, claims("u"))); err != nil {
		t.Fatalf("Verify with a cached key: %v", err)
	}
	if got := srv.hits.Load(); got != before {
		t.Errorf("a known kid fetched the JWKS (%d fetches)", got-before)
	}
	if _, err := v.Verify(ctx, rotated.sign(t, claims("u"))); err != nil {
		t.Fatalf("Verify with a key rotated in after the cache was written: %v", err)
	}
	if got := srv.hits.Load(); got != before+1 {
		t.Errorf("an unknown kid caused %d fetches, want 1", got-before)
	}

	// Right after a fetch, more unknown kids do not fetch again.
	stranger := newSigner(t, "stranger")
	for range 3 {
		_, err := v.Verify(ctx, stranger.sign(t, claims("u")))
		if err == nil || !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("Verify with an unknown key = %v", err)
		}
	}
	if got := srv.hits.Load(); got != before+1 {
		t.Errorf("unknown kids after a fresh fetch caused %d more fetches, want none", got-before-1)
	}
}

// While users fails, tokens with made-up kids must not turn into one JWKS
// fetch each: the refresh on an unknown kid is rate-limited whether or not
// it succeeded.
func TestRemoteKeySetRateLimitsFailedRefreshes(t *testing.T) {
	ctx := context.Background()
	srv := newJWKSServer(t)
	srv.serveRaw(http.StatusInternalServerError, []byte("down"))
	ks := auth.NewRemoteKeySet(srv.URL, "", srv.Client(), quietLog())
	for range 5 {
		if _, err := ks.Key(ctx, "made-up"); !errors.Is(err, auth.ErrUnknownKey) {
			t.Fatalf("Key = %v, want ErrUnknownKey", err)
		}
	}
	if got := srv.hits.Load(); got != 1 {
		t.Errorf("5 unknown kids with users failing caused %d fetches, want 1", got)
	}
}

func TestRemoteKeySetRefreshErrors(t *testing.T) {
	ctx := context.Background()
	good := newSigner(t, "k1")
	wrongLen := auth.PublicJWK("short", good.pub[:10])
	noKid := auth.PublicJWK("", good.pub)
	rsa := auth.JWK{KeyType: "RSA", KeyID: "rsa1", X: "AQAB"}
	enc := auth.PublicJWK("enc", good.pub)
	enc.Use = "enc"
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		code int
		body []byte
	}{
		{"server error", http.StatusInternalServerError, []byte(`{}`)},
		{"not json", http.StatusOK, []byte(`<html>`)},
		{"no keys", http.StatusOK, []byte(`{"keys":[]}`)},
		{"only foreign keys", http.StatusOK, mustJSON(auth.JWKS{Keys: []auth.JWK{rsa, enc}})},
		{"short key", http.StatusOK, mustJSON(auth.JWKS{Keys: []auth.JWK{wrongLen}})},
		{"key without kid", http.StatusOK, mustJSON(auth.JWKS{Keys: []auth.JWK{noKid}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJWKSServer(t, good)
			cache := filepath.Join(t.TempDir(), "jwks.json")
			ks := auth.NewRemoteKeySet(srv.URL, cache, srv.Client(), quietLog())
			if err := ks.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			srv.serveRaw(tc.code, tc.body)
			if err := ks.Refresh(ctx); err == nil {
				t.Fatal("Refresh = nil error")
			}
			// The keys from before stay, in memory and in the cache file.
			if _, err := auth.NewVerifier(ks).Verify(ctx, good.sign(t, claims("u"))); err != nil {
				t.Errorf("Verify after a bad refresh: %v", err)
			}
			if _, err := auth.NewVerifier(auth.NewRemoteKeySet(srv.URL, cache, srv.Client(), quietLog())).
				Verify(ctx, good.sign(t, claims("u2"))); err != nil {
				t.Errorf("the bad JWKS replaced the cache file: %v", err)
			}
		})
	}
}

// Keys of other types are skipped, not fatal, so a future key type does
// not break today's verifiers.
func TestRemoteKeySetSkipsForeignKeys(t *testing.T) {
	ctx := context.Background()
	k := newSigner(t, "k1")
	srv := newJWKSServer(t)
	b, _ := json.Marshal(auth.JWKS{Keys: []auth.JWK{{KeyType: "RSA", KeyID: "rsa1", X: "AQAB"}, auth.PublicJWK("k1", k.pub)}})
	srv.serveRaw(http.StatusOK, b)
	ks := auth.NewRemoteKeySet(srv.URL, "", srv.Client(), quietLog())
	if err := ks.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if _, err := ks.Key(ctx, "k1"); err != nil {
		t.Errorf("Key(k1): %v", err)
	}
}

func TestRemoteKeySetIgnoresACorruptCacheFile(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(cache, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	ks := auth.NewRemoteKeySet("http://127.0.0.1:1/jwks", cache, nil, quietLog())
	if ks.Ready() {
		t.Error("Ready with a corrupt cache file")
	}
}

func TestStaticKeys(t *testing.T) {
	k := newSigner(t, "k1")
	keys := staticKeys(k)
	if got, err := keys.Key(context.Background(), "k1"); err != nil || string(got) != string(k.pub) {
		t.Errorf("Key(k1) = %v, %v", got, err)
	}
	if _, err := keys.Key(context.Background(), "k2"); !errors.Is(err, auth.ErrUnknownKey) {
		t.Errorf("Key(k2) = %v, want ErrUnknownKey", err)
	}
}
