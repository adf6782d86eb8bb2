package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
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

// Service credentials: the calls between services, on /internal/ routes,
// carry a short-lived JWT that the calling service signs with its own
// Ed25519 key. The callee checks it with the caller's public key and
// allows only the callers a route names. A customer's token is refused,
// and so is a token signed with any other key.

// ConsoleTokenHeader carries the token that `microshop run`'s mailbox and
// trace collector ask of every request but their probes: the gateway sends
// it when it forwards an admin to them, and the services send it with
// their spans, so no other local process can read the mail or write into
// the console.
const ConsoleTokenHeader = "Microshop-Console-Token"

// ServiceAudience is the aud of a service credential meant for the service
// callee. A credential names the one service it is for, so a callee that
// receives one cannot replay it at another service.
func ServiceAudience(callee string) string { return "microshop-internal:" + callee }

// serviceTokenTTL is short: a leaked credential is useless within a minute.
const serviceTokenTTL = time.Minute

// ServiceKeys are the service-identity keys a process knows: its own
// private key (to call others) and the public keys of every service (to
// check callers).
type ServiceKeys struct {
	Name    string
	Private ed25519.PrivateKey
	Public  map[string]ed25519.PublicKey

	// verified caches the credentials RequireService has checked, until
	// they expire: a caller reuses its credential for most of a minute,
	// and checking an Ed25519 signature on every call cost a tenth of
	// inventory's and payments' CPU under load.
	mu       sync.Mutex
	verified map[string]verifiedCredential
}

type verifiedCredential struct {
	issuer  string
	expires time.Time
}

// maxVerified bounds the cache; past it the cache is emptied and refilled.
const maxVerified = 1000

// cached returns the issuer of a credential checked before and not yet
// expired.
func (k *ServiceKeys) cached(token string, now time.Time) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.verified[token]
	if !ok {
		return "", false
	}
	if !now.Before(v.expires) {
		delete(k.verified, token)
		return "", false
	}
	return v.issuer, true
}

func (k *ServiceKeys) remember(token, issuer string, expires time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.verified == nil || len(k.verified) >= maxVerified {
		k.verified = make(map[string]verifiedCredential)
	}
	k.verified[token] = verifiedCredential{issuer: issuer, expires: expires}
}

// ParseServiceKeys reads this service's private key (a base64 Ed25519
// seed) and the public keys of all services ("orders=<base64>,...").
// Either may be empty: a process without a private key cannot call
// internal routes, and one without public keys refuses all callers.
func ParseServiceKeys(name, seed, publics string) (*ServiceKeys, error) {
	k := &ServiceKeys{Name: name, Public: map[string]ed25519.PublicKey{}}
	if seed != "" {
		b, err := base64.StdEncoding.DecodeString(seed)
		if err != nil || len(b) != ed25519.SeedSize {
			return nil, errors.New("service key: want a base64 Ed25519 seed of 32 bytes")
		}
		k.Private = ed25519.NewKeyFromSeed(b)
	}
	for _, pair := range strings.Split(publics, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		svc, b64, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("service public keys: %q is not service=<base64 key>", pair)
		}
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("service public keys: the key of %s is not a base64 Ed25519 public key", svc)
		}
		k.Public[svc] = ed25519.PublicKey(b)
	}
	return k, nil
}

// GenerateServiceKeys makes a key pair for each named service and returns,
// per service, its base64 seed, plus the list of public keys in the form
// ParseServiceKeys reads. `microshop run` and tests use it.
func GenerateServiceKeys(names []string) (seeds map[string]string, publics string, err error) {
	seeds = map[string]string{}
	var pubs []string
	for _, n := range names {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, "", err
		}
		seeds[n] = base64.StdEncoding.EncodeToString(priv.Seed())
		pubs = append(pubs, n+"="+base64.StdEncoding.EncodeToString(pub))
	}
	return seeds, strings.Join(pubs, ","), nil
}

// Credentials sign this service's credentials, one per callee, reusing
// each token until it is near expiry.
type Credentials struct {
	keys *ServiceKeys

	mu     sync.Mutex
	tokens map[string]signedToken // by callee
}

type signedToken struct {
	token   string
	expires time.Time
}

// NewCredentials returns the credential source of the service keys name.
func NewCredentials(keys *ServiceKeys) *Credentials { return &Credentials{keys: keys} }

// Token returns a valid credential of this service for calling callee.
func (c *Credentials) Token(callee string) (string, error) {
	if c.keys == nil || c.keys.Private == nil {
		return "", errors.New("this service has no service key (set --service-key)")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if t, ok := c.tokens[callee]; ok && now.Add(15*time.Second).Before(t.expires) {
		return t.token, nil
	}
	exp := now.Add(serviceTokenTTL)
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.RegisteredClaims{
		Issuer:    c.keys.Name,
		Subject:   c.keys.Name,
		Audience:  jwt.ClaimStrings{ServiceAudience(callee)},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	})
	t.Header["kid"] = "service:" + c.keys.Name
	signed, err := t.SignedString(c.keys.Private)
	if err != nil {
		return "", fmt.Errorf("signing the service credential: %w", err)
	}
	if c.tokens == nil {
		c.tokens = map[string]signedToken{}
	}
	c.tokens[callee] = signedToken{signed, exp}
	return signed, nil
}

// Authorize sets r's Authorization header to this service's credential
// for callee.
func (c *Credentials) Authorize(r *http.Request, callee string) error {
	tok, err := c.Token(callee)
	if err != nil {
		return err
	}
	r.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

type callerKey struct{}

// CallerFromContext names the service whose credential RequireService
// accepted, or "".
func CallerFromContext(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}

// RequireService accepts only requests carrying a valid credential of one
// of the allowed services, made for this service (keys.Name): another
// service's credential, even from an allowed caller, is refused.
func RequireService(keys *ServiceKeys, allowed ...string) func(http.Handler) http.Handler {
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithAudience(ServiceAudience(keys.Name)),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(5*time.Second),
	)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, _ := BearerToken(r)
			if token == "" {
				unauthorized(w, r, "internal routes need a service credential")
				return
			}
			issuer, ok := keys.cached(token, time.Now())
			if !ok {
				var err error
				if issuer, err = verifyService(parser, keys, token); err != nil {
					unauthorized(w, r, "the service credential is invalid")
					return
				}
			}
			if !slices.Contains(allowed, issuer) {
				problem.Write(w, r, problem.Forbidden(fmt.Sprintf("%s may not call this route", issuer)))
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, issuer)))
		})
	}
}

// verifyService checks a service credential's signature, audience and
// expiry against the callers' public keys, caches it, and returns the
// calling service's name.
func verifyService(parser *jwt.Parser, keys *ServiceKeys, token string) (string, error) {
	var claims jwt.RegisteredClaims
	_, err := parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		svc, ok := strings.CutPrefix(kid, "service:")
		if !ok {
			return nil, errors.New("not a service credential")
		}
		key, ok := keys.Public[svc]
		if !ok {
			return nil, fmt.Errorf("no key for service %q", svc)
		}
		return key, nil
	})
	if err != nil || claims.Issuer == "" || "service:"+claims.Issuer != headerKid(token) || claims.ExpiresAt == nil {
		return "", errors.New("invalid service credential")
	}
	keys.remember(token, claims.Issuer, claims.ExpiresAt.Time)
	return claims.Issuer, nil
}

// headerKid reads the kid of an already verified token.
func headerKid(token string) string {
	t, _, err := jwt.NewParser().ParseUnverified(token, &jwt.RegisteredClaims{})
	if err != nil {
		return ""
	}
	kid, _ := t.Header["kid"].(string)
	return kid
}
