package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/microshop/microshop/internal/platform/auth"
)

// Token checks on every request, measured alone:
//
//	go test -run '^$' -bench . -benchmem ./internal/platform/auth
//
// cold is a token the verifier has not seen (an Ed25519 signature check
// and the JWT's parse); cached is the same token again, as every request
// after a customer's first one is.

func BenchmarkVerify(b *testing.B) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	k := signer{kid: "k1", priv: priv, pub: pub}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims("u1", auth.RoleCustomer))
	t.Header["kid"] = k.kid
	tok, err := t.SignedString(priv)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v := auth.NewVerifier(staticKeys(k)) // an empty cache each time
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		v := auth.NewVerifier(staticKeys(k))
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkServiceCredential: the check of a calling service's credential
// on an /internal/ route (auth.RequireService), cold and cached.
func BenchmarkServiceCredential(b *testing.B) {
	seeds, publics, err := auth.GenerateServiceKeys([]string{"orders", "inventory"})
	if err != nil {
		b.Fatal(err)
	}
	caller, _ := auth.ParseServiceKeys("orders", seeds["orders"], publics)
	tok, err := auth.NewCredentials(caller).Token("inventory")
	if err != nil {
		b.Fatal(err)
	}
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	req := httptest.NewRequest(http.MethodPost, "/internal/reservations", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	run := func(b *testing.B, guard http.Handler) {
		rec := httptest.NewRecorder()
		guard.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			callee, _ := auth.ParseServiceKeys("inventory", "", publics) // an empty cache each time
			run(b, auth.RequireService(callee, "orders")(ok))
		}
	})
	b.Run("cached", func(b *testing.B) {
		callee, _ := auth.ParseServiceKeys("inventory", "", publics)
		guard := auth.RequireService(callee, "orders")(ok)
		run(b, guard)
		b.ReportAllocs()
		for b.Loop() {
			run(b, guard)
		}
	})
}
