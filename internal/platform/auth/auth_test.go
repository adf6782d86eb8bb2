package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/problem"
)

type signer struct {
	kid  string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

func newSigner(t *testing.T, kid string) signer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid: kid, priv: priv, pub: pub}
}

// claims returns good claims for user u with roles; edit them to break them.
func claims(u string, roles ...string) *auth.Claims {
	now := time.Now()
	return &auth.Claims{
		Email: u + "@example.com",
		Roles: roles,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   u,
			Issuer:    auth.Issuer,
			Audience:  jwt.ClaimStrings{auth.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(15 * time.Minute)),
		},
	}
}

func (s signer) sign(t *testing.T, c *auth.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	if s.kid != "" {
		tok.Header["kid"] = s.kid
	}
	str, err := tok.SignedString(s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return str
}

func staticKeys(signers ...signer) auth.StaticKeys {
	return func() map[string]ed25519.PublicKey {
		m := map[string]ed25519.PublicKey{}
		for _, s := range signers {
			m[s.kid] = s.pub
		}
		return m
	}
}

func TestVerifierAcceptsAGoodToken(t *testing.T) {
	k := newSigner(t, "k1")
	v := auth.NewVerifier(staticKeys(k))
	tok := k.sign(t, claims("u1", auth.RoleCustomer))
	for range 2 { // the second time comes from the cache
		c, err := v.Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if c.UserID() != "u1" || c.Email != "u1@example.com" || !c.HasRole(auth.RoleCustomer) || c.HasRole(auth.RoleAdmin) {
			t.Errorf("claims = %+v", c)
		}
	}
}

func TestVerifierRefuses(t *testing.T) {
	good := newSigner(t, "k1")
	forger := newSigner(t, "k1") // same kid, another key
	stranger := newSigner(t, "k2")
	noKid := newSigner(t, "")
	noKid.priv = good.priv
	v := auth.NewVerifier(staticKeys(good))

	edit := func(f func(c *auth.Claims)) *auth.Claims {
		c := claims("u1", auth.RoleAdmin)
		f(c)
		return c
	}
	hs256 := func() string {
		// The classic confusion: HMAC keyed with the public key.
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("u1", auth.RoleAdmin))
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString([]byte(good.pub))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	none := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims("u1", auth.RoleAdmin))
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tampered := func() string {
		// A good token whose payload is swapped for one granting admin.
		parts := strings.Split(good.sign(t, claims("u1", auth.RoleCustomer)), ".")
		other := strings.Split(good.sign(t, claims("u1", auth.RoleAdmin)), ".")
		return parts[0] + "." + other[1] + "." + parts[2]
	}

	for _, tc := range []struct {
		name, token, reason string
	}{
		{"expired", good.sign(t, edit(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) })), "expired"},
		{"no expiry", good.sign(t, edit(func(c *auth.Claims) { c.ExpiresAt = nil })), ""},
		{"not yet valid", good.sign(t, edit(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) })), ""},
		{"forged signature", forger.sign(t, claims("u1", auth.RoleAdmin)), "signature"},
		{"tampered payload", tampered(), "signature"},
		{"unknown kid", stranger.sign(t, claims("u1")), "unknown key"},
		{"no kid", noKid.sign(t, claims("u1")), ""},
		{"wrong issuer", good.sign(t, edit(func(c *auth.Claims) { c.Issuer = "evil" })), "not issued for microshop"},
		{"no issuer", good.sign(t, edit(func(c *auth.Claims) { c.Issuer = "" })), ""},
		{"wrong audience", good.sign(t, edit(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"someone-else"} })), "not issued for microshop"},
		{"service audience", good.sign(t, edit(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{auth.ServiceAudience("users")} })), ""},
		{"alg none", none(), ""},
		{"alg HS256", hs256(), ""},
		{"malformed", "not.a.token", "malformed"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tc.token)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", c)
			}
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("error %v does not wrap ErrInvalidToken", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q should say %q", err, tc.reason)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("the error echoes the token")
			}
		})
	}
}

// A cached token still stops working when it expires.
func TestVerifierCacheHonoursExpiry(t *testing.T) {
	k := newSigner(t, "k1")
	v := auth.NewVerifier(staticKeys(k))
	c := claims("u1")
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(1100 * time.Millisecond))
	tok := k.sign(t, c)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(context.Background(), tok)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("error %v does not wrap ErrInvalidToken", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("an expired token is still accepted from the cache")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMiddleware(t *testing.T) {
	k := newSigner(t, "k1")
	v := auth.NewVerifier(staticKeys(k))
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := "anonymous"
		if c := auth.FromContext(r.Context()); c != nil {
			who = c.UserID()
		}
		w.Write([]byte(who))
	})
	mux := http.NewServeMux()
	mux.Handle("/public", ok)
	mux.Handle("/me", auth.Require(ok))
	mux.Handle("/admin", auth.RequireRole(auth.RoleAdmin)(ok))
	h := auth.Authenticate(v)(mux)

	customer := k.sign(t, claims("cust", auth.RoleCustomer))
	admin := k.sign(t, claims("boss", auth.RoleAdmin))
	expired := claims("cust")
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	forged := newSigner(t, "k1").sign(t, claims("boss", auth.RoleAdmin))

	for _, tc := range []struct {
		name, path, authz string
		status            int
		body              string
	}{
		{"public anonymous", "/public", "", 200, "anonymous"},
		{"public with token", "/public", "Bearer " + customer, 200, "cust"},
		{"public with a bad token", "/public", "Bearer " + forged, 401, ""},
		{"me without token", "/me", "", 401, ""},
		{"me with a basic header", "/me", "Basic dXNlcjpwdw==", 401, ""},
		{"me with an empty bearer", "/me", "Bearer ", 401, ""},
		{"me with bare Bearer", "/me", "Bearer", 401, ""},
		{"me with garbage", "/me", "Bearer garbage", 401, ""},
		{"me expired", "/me", "Bearer " + k.sign(t, expired), 401, ""},
		{"me forged", "/me", "Bearer " + forged, 401, ""},
		{"me ok", "/me", "Bearer " + customer, 200, "cust"},
		{"me lower-case scheme", "/me", "bearer " + customer, 200, "cust"},
		{"admin without token", "/admin", "", 401, ""},
		{"admin as customer", "/admin", "Bearer " + customer, 403, ""},
		{"admin as admin", "/admin", "Bearer " + admin, 200, "boss"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.path, nil)
			if tc.authz != "" {
				r.Header.Set("Authorization", tc.authz)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status = %d (%s), want %d", w.Code, w.Body, tc.status)
			}
			if tc.status == 200 {
				if w.Body.String() != tc.body {
					t.Errorf("body = %q, want %q", w.Body, tc.body)
				}
				return
			}
			if ct := w.Header().Get("Content-Type"); ct != problem.ContentType {
				t.Errorf("Content-Type = %q, want problem+json", ct)
			}
			var p problem.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != tc.status {
				t.Errorf("body = %s (%v), want a %d problem", w.Body, err, tc.status)
			}
			wwwAuth := w.Header().Get("WWW-Authenticate")
			if tc.status == 401 && !strings.HasPrefix(wwwAuth, "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", wwwAuth)
			}
			if tc.status == 403 && wwwAuth != "" {
				t.Errorf("a 403 carries WWW-Authenticate %q", wwwAuth)
			}
			if strings.Contains(w.Body.String(), customer) || strings.Contains(w.Body.String(), forged) {
				t.Error("the problem echoes the token")
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		header, token string
		present       bool
	}{
		{"", "", false},
		{"Bearer abc", "abc", true},
		{"BEARER abc ", "abc", true},
		{"Bearer", "", true},
		{"Token abc", "", true},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		tok, present := auth.BearerToken(r)
		if tok != tc.token || present != tc.present {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tc.header, tok, present, tc.token, tc.present)
		}
	}
}

func TestContextClaims(t *testing.T) {
	if auth.FromContext(context.Background()) != nil {
		t.Error("FromContext of an empty context is not nil")
	}
	c := claims("u")
	if got := auth.FromContext(auth.WithClaims(context.Background(), c)); got != c {
		t.Errorf("FromContext(WithClaims(c)) = %v", got)
	}
}
