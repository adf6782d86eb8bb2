package users_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/openapi/openapitest"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/users"
	"github.com/microshop/microshop/services/users/usersapi"
)

// start runs a shop with extra as users' flags (real SQLite file or
// Postgres, real embedded NATS) and returns a URL of users whose traffic
// is checked against the OpenAPI document, plus the shop.
func start(t *testing.T, extra ...string) (string, *servicetest.Shop, *openapitest.Checker) {
	t.Helper()
	shop := servicetest.NewShop(t, users.Spec(), servicetest.ShopOptions{UsersArgs: extra, Keys: []string{"notifications", "orders"}})
	url, checker := openapitest.Proxy(t, users.OpenAPI(), shop.Users.URL)
	return url, shop, checker
}

func TestAccountLifecycle(t *testing.T) {
	url, shop, checker := start(t)

	var u usersapi.User
	servicetest.Register(t, url, "Ada@Example.com", "analytical engine", "Ada Lovelace").JSON(t, &u)
	if u.Email != "ada@example.com" || u.Name != "Ada Lovelace" || u.ID == "" {
		t.Fatalf("registered %+v", u)
	}
	tok := servicetest.Login(t, url, "ada@example.com", "analytical engine")
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 900 || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("tokens %+v", tok)
	}

	me := servicetest.Call(t, "GET", url+"/api/users/me", tok.AccessToken, nil)
	var got usersapi.User
	me.JSON(t, &got)
	if me.Status != 200 || got.ID != u.ID || len(got.Roles) != 1 || got.Roles[0] != "customer" {
		t.Fatalf("me: %d %s", me.Status, me.Body)
	}

	// The access token verifies with the published JWKS, as other services do it.
	ks := auth.NewRemoteKeySet(url+"/.well-known/jwks.json", "", nil, nil)
	if err := ks.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	claims, err := auth.NewVerifier(ks).Verify(context.Background(), tok.AccessToken)
	if err != nil || claims.UserID() != u.ID || claims.Email != u.Email {
		t.Fatalf("verifying with the JWKS: %v %+v", err, claims)
	}
	if r := servicetest.Call(t, "GET", url+"/api/users/.well-known/jwks.json", "", nil); r.Status != 200 {
		t.Fatalf("jwks through the api prefix: %d", r.Status)
	}

	// Rename, then change the password, which revokes refresh tokens.
	r := servicetest.Call(t, "PATCH", url+"/api/users/me", tok.AccessToken, map[string]string{"name": "Countess Lovelace"})
	if r.Status != 200 || !strings.Contains(string(r.Body), "Countess Lovelace") {
		t.Fatalf("rename: %d %s", r.Status, r.Body)
	}
	r = servicetest.Call(t, "PATCH", url+"/api/users/me", tok.AccessToken, map[string]string{"password": "difference engine", "current_password": "wrong password!"})
	if r.Status != 422 {
		t.Fatalf("password change with a wrong current password: %d %s", r.Status, r.Body)
	}
	r = servicetest.Call(t, "PATCH", url+"/api/users/me", tok.AccessToken, map[string]string{"password": "difference engine", "current_password": "analytical engine"})
	if r.Status != 200 {
		t.Fatalf("password change: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "POST", url+"/api/users/refresh", "", map[string]string{"refresh_token": tok.RefreshToken}); r.Status != 401 {
		t.Fatalf("refresh after a password change: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "POST", url+"/api/users/login", "", map[string]string{"email": "ada@example.com", "password": "analytical engine"}); r.Status != 401 {
		t.Fatalf("login with the old password: %d", r.Status)
	}
	tok = servicetest.Login(t, url, "ada@example.com", "difference engine")

	// Logout revokes the refresh token.
	if r := servicetest.Call(t, "POST", url+"/api/users/logout", "", map[string]string{"refresh_token": tok.RefreshToken}); r.Status != 204 {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "POST", url+"/api/users/refresh", "", map[string]string{"refresh_token": tok.RefreshToken}); r.Status != 401 {
		t.Fatalf("refresh after logout: %d", r.Status)
	}

	// users.registered was published through the outbox, exactly once.
	shop.Events(t, "users", func(evs []events.Event) bool {
		return slices.ContainsFunc(evs, func(e events.Event) bool {
			var body usersapi.UserRegistered
			return e.Type == "users.registered" && e.Decode(&body) == nil && body.UserID == u.ID && body.Email == "ada@example.com"
		})
	})

	// Notifications may read where to write to the customer; then the
	// customer erases the account, and an admin's erasure of it again
	// changes nothing (erase_test.go tests these in depth).
	if r := servicetest.Call(t, "GET", url+"/internal/users/"+u.ID, shop.Token(t, "notifications", "users"), nil); r.Status != 200 {
		t.Fatalf("contact: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "DELETE", url+"/api/users/me", tok.AccessToken, map[string]string{"password": "difference engine"}); r.Status != 204 {
		t.Fatalf("erasing: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "DELETE", url+"/api/users/accounts/"+u.ID, shop.Admin, nil); r.Status != 204 {
		t.Fatalf("erasing again as admin: %d %s", r.Status, r.Body)
	}

	checker.RequireCoverage(users.OpenAPI())
}

func TestRefreshRotationDetectsReuse(t *testing.T) {
	url, _, _ := start(t)
	servicetest.Register(t, url, "grace@example.com", "cobol forever!", "Grace Hopper")
	first := servicetest.Login(t, url, "grace@example.com", "cobol forever!")

	r := servicetest.Call(t, "POST", url+"/api/users/refresh", "", map[string]string{"refresh_token": first.RefreshToken})
	if r.Status != 200 {
		t.Fatalf("refresh: %d %s", r.Status, r.Body)
	}
	var second usersapi.Tokens
	r.JSON(t, &second)
	if second.RefreshToken == first.RefreshToken {
		t.Fatal("the refresh token was not rotated")
	}
	// Presenting the spent token again revokes its whole family, so the
	// token a thief might have rotated to is dead too.
	if r := servicetest.Call(t, "POST", url+"/api/users/refresh", "", map[string]string{"refresh_token": first.RefreshToken}); r.Status != 401 {
		t.Fatalf("reusing a spent refresh token: %d", r.Status)
	}
	if r := servicetest.Call(t, "POST", url+"/api/users/refresh", "", map[string]string{"refresh_token": second.RefreshToken}); r.Status != 401 {
		t.Fatalf("the family's newest token after reuse: %d", r.Status)
	}
}

func TestAdminAccountFromEnvironment(t *testing.T) {
	url, _, _ := start(t)
	tok := servicetest.Login(t, url, servicetest.AdminEmail, servicetest.AdminPassword)
	r := servicetest.Call(t, "GET", url+"/api/users/me", tok.AccessToken, nil)
	var me usersapi.User
	r.JSON(t, &me)
	if len(me.Roles) != 2 || me.Roles[1] != "admin" {
		t.Fatalf("admin roles: %v", me.Roles)
	}
}

func TestBadInput(t *testing.T) {
	url, _, _ := start(t)
	servicetest.Register(t, url, "taken@example.com", "long enough password", "Taken")
	good := servicetest.Login(t, url, "taken@example.com", "long enough password")

	cases := []struct {
		name, method, path, token string
		body                      any
		status                    int
		field                     string
	}{
		{"malformed json", "POST", "/api/users/register", "", `{"email":`, 400, ""},
		{"not an object", "POST", "/api/users/register", "", `[1,2]`, 400, ""},
		{"trailing data", "POST", "/api/users/register", "", `{"email":"a@b.co","password":"123456789012","name":"x"} {}`, 400, ""},
		{"unknown field", "POST", "/api/users/register", "", `{"email":"a@b.co","password":"123456789012","name":"x","admin":true}`, 422, "admin"},
		{"wrong type", "POST", "/api/users/register", "", `{"email":42,"password":"123456789012","name":"x"}`, 422, "email"},
		{"empty body", "POST", "/api/users/register", "", ``, 400, ""},
		{"oversized body", "POST", "/api/users/register", "", `{"email":"` + strings.Repeat("a", 300<<10) + `"}`, 413, ""},
		{"invalid email", "POST", "/api/users/register", "", map[string]string{"email": "not-an-email", "password": "123456789012", "name": "x"}, 422, "email"},
		{"email without domain dot", "POST", "/api/users/register", "", map[string]string{"email": "a@localhost", "password": "123456789012", "name": "x"}, 422, "email"},
		{"short password", "POST", "/api/users/register", "", map[string]string{"email": "a@b.co", "password": "elevenchars", "name": "x"}, 422, "password"},
		{"missing name", "POST", "/api/users/register", "", map[string]string{"email": "a@b.co", "password": "123456789012"}, 422, "name"},
		{"duplicate email", "POST", "/api/users/register", "", map[string]string{"email": "TAKEN@example.com", "password": "123456789012", "name": "x"}, 409, ""},
		{"wrong password", "POST", "/api/users/login", "", map[string]string{"email": "taken@example.com", "password": "not the password"}, 401, ""},
		{"unknown account", "POST", "/api/users/login", "", map[string]string{"email": "nobody@example.com", "password": "not the password"}, 401, ""},
		{"login missing fields", "POST", "/api/users/login", "", `{}`, 422, "email"},
		{"bad refresh token", "POST", "/api/users/refresh", "", map[string]string{"refresh_token": "garbage"}, 401, ""},
		{"no token", "GET", "/api/users/me", "", nil, 401, ""},
		{"malformed token", "GET", "/api/users/me", "not.a.jwt", nil, 401, ""},
		{"forged token", "GET", "/api/users/me", forged(t), nil, 401, ""},
		{"expired token", "GET", "/api/users/me", expiredLike(t, good.AccessToken), nil, 401, ""},
		{"empty update", "PATCH", "/api/users/me", good.AccessToken, `{}`, 422, "name"},
		{"unknown route", "GET", "/api/users/nope", "", nil, 404, ""},
		{"wrong method", "DELETE", "/api/users/login", "", nil, 405, ""},
		{"wrong content type", "POST", "/api/users/login", "", nil, 415, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.name == "wrong content type" {
				headers = []string{"Content-Type", "text/plain"}
				c.body = "email=x"
			}
			r := servicetest.Call(t, c.method, url+c.path, c.token, c.body, headers...)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			p := r.Problem(t)
			if p.Detail == "" && len(p.Errors) == 0 {
				t.Fatalf("problem without a reason: %s", r.Body)
			}
			if c.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != c.field) {
				t.Fatalf("want an error on field %q: %s", c.field, r.Body)
			}
		})
	}
	// Nothing was stored by the refused registrations.
	if r := servicetest.Call(t, "POST", url+"/api/users/login", "", map[string]string{"email": "a@b.co", "password": "123456789012"}); r.Status != 401 {
		t.Fatalf("a refused registration left an account: %d", r.Status)
	}
}

// forged signs a well-formed token with a key users never had.
func forged(t *testing.T) string {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, auth.Claims{Roles: []string{"admin"}, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: auth.Issuer, Audience: jwt.ClaimStrings{auth.Audience}, Subject: "x",
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
	}})
	tok.Header["kid"] = "made-up"
	s, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// expiredLike makes a token that is expired; its signature cannot be
// valid either, but the expiry is what the verifier must not be fooled by.
func expiredLike(t *testing.T, valid string) string {
	parts := strings.Split(valid, ".")
	claims := jwt.RegisteredClaims{Issuer: auth.Issuer, ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Hour))}
	b, _ := json.Marshal(claims)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
}

func TestLoginRateLimitPerAccount(t *testing.T) {
	url, _, _ := start(t, "--login-rate-account", "3")
	servicetest.Register(t, url, "limited@example.com", "long enough password", "L")
	statuses := []int{}
	for range 5 {
		r := servicetest.Call(t, "POST", url+"/api/users/login", "", map[string]string{"email": "limited@example.com", "password": "wrong password!!"})
		statuses = append(statuses, r.Status)
		if r.Status == 429 && r.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if statuses[0] != 401 || statuses[2] != 401 || statuses[3] != 429 || statuses[4] != 429 {
		t.Fatalf("statuses %v: want three 401s then 429s", statuses)
	}
	// Another account from the same address is not limited by this one.
	servicetest.Register(t, url, "other@example.com", "long enough password", "O")
	servicetest.Login(t, url, "other@example.com", "long enough password")
}

func TestOnPostgres(t *testing.T) {
	src := dbtest.PostgresURL(t)
	url, _, _ := start(t, "--db", src)
	servicetest.Register(t, url, "pg@example.com", "long enough password", "Pg")
	tok := servicetest.Login(t, url, "pg@example.com", "long enough password")
	if r := servicetest.Call(t, "GET", url+"/api/users/me", tok.AccessToken, nil); r.Status != 200 {
		t.Fatalf("me on postgres: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "POST", url+"/api/users/register", "", map[string]string{"email": "pg@example.com", "password": "long enough password", "name": "x"}); r.Status != 409 {
		t.Fatalf("duplicate on postgres: %d", r.Status)
	}
}
