// Package auth verifies the access tokens users issues and guards routes
// with them. Every service verifies the caller's token itself, with keys
// from users' JWKS: the gateway is the first wall, not the only one.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/microshop/microshop/internal/platform/problem"
)

const (
	// Issuer is the iss of every access token.
	Issuer = "microshop-users"
	// Audience is the aud of every access token.
	Audience = "microshop"

	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// Claims are what an access token says about its bearer.
type Claims struct {
	Email string   `json:"email"`
	Roles []string `json:"roles"`
	jwt.RegisteredClaims
}

// UserID is the token's subject.
func (c *Claims) UserID() string { return c.Subject }

// HasRole reports whether the bearer has role.
func (c *Claims) HasRole(role string) bool { return slices.Contains(c.Roles, role) }

// Verifier checks access tokens. Verified tokens are cached until they
// expire, because an Ed25519 check costs about 0.1 ms and a client sends
// the same token many times.
type Verifier struct {
	keys   KeySource
	parser *jwt.Parser

	mu    sync.Mutex
	cache map[string]*Claims
}

// maxCached bounds the cache; past it the cache is emptied and refilled.
const maxCached = 10000

// NewVerifier returns a Verifier that finds keys in keys.
func NewVerifier(keys KeySource) *Verifier {
	return &Verifier{
		keys: keys,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"EdDSA"}),
			jwt.WithIssuer(Issuer),
			jwt.WithAudience(Audience),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(5*time.Second),
		),
		cache: make(map[string]*Claims),
	}
}

// ErrInvalidToken wraps every reason a token is refused.
var ErrInvalidToken = errors.New("invalid token")

// Verify checks token's signature, issuer, audience and expiry.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	v.mu.Lock()
	c, ok := v.cache[token]
	v.mu.Unlock()
	if ok {
		if c.ExpiresAt != nil && time.Now().Before(c.ExpiresAt.Time) {
			return c, nil
		}
		v.mu.Lock()
		delete(v.cache, token)
		v.mu.Unlock()
		return nil, fmt.Errorf("%w: token has expired", ErrInvalidToken)
	}
	claims := &Claims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("token has no kid")
		}
		return v.keys.Key(ctx, kid)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidToken, reason(err))
	}
	v.mu.Lock()
	if len(v.cache) >= maxCached {
		clear(v.cache)
	}
	v.cache[token] = claims
	v.mu.Unlock()
	return claims, nil
}

// reason says in a few words why jwt refused a token, without echoing it.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token has expired"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token is malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature is invalid"
	case errors.Is(err, ErrUnknownKey):
		return "token was signed by an unknown key"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token was not issued for microshop"
	default:
		return "token could not be verified"
	}
}

type claimsKey struct{}

// FromContext returns the claims Authenticate stored, or nil.
func FromContext(ctx context.Context) *Claims {
	c, _ := ctx.Value(claimsKey{}).(*Claims)
	return c
}

// WithClaims returns ctx carrying c.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// BearerToken returns the token of an "Authorization: Bearer" header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", true
	}
	return strings.TrimSpace(token), true
}

// Authenticate verifies the bearer token when there is one and stores its
// claims in the request context. A request without a token passes on
// unauthenticated (Require decides); a bad token is a 401 at once.
func Authenticate(v *Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, present := BearerToken(r)
			if !present {
				next.ServeHTTP(w, r)
				return
			}
			if token == "" {
				unauthorized(w, r, "the Authorization header must be \"Bearer <access token>\"")
				return
			}
			c, err := v.Verify(r.Context(), token)
			if err != nil {
				unauthorized(w, r, err.Error())
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
		})
	}
}

// Private marks every answer of the routes it wraps as one person's
// (Cache-Control: private, no-store): an order or a profile is kept by no
// cache, shared or the browser's, so it never reaches another user of the
// same proxy or computer. A handler may still set its own.
func Private(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, no-store")
		next.ServeHTTP(w, r)
	})
}

// Require refuses requests that Authenticate left unauthenticated.
func Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if FromContext(r.Context()) == nil {
			unauthorized(w, r, "this route needs an access token (Authorization: Bearer ...)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RequireRole refuses requests whose token lacks role (403), or that have
// no token (401).
func RequireRole(role string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !FromContext(r.Context()).HasRole(role) {
				problem.Write(w, r, problem.Forbidden("this route needs the "+role+" role"))
				return
			}
			next.ServeHTTP(w, r)
		}))
	}
}

func unauthorized(w http.ResponseWriter, r *http.Request, detail string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="microshop"`)
	problem.Write(w, r, problem.Unauthorized(detail))
}
