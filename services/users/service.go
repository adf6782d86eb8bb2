// Package users owns accounts, credentials, refresh tokens and the keys
// that sign access tokens. It registers and logs people in, issues
// short-lived Ed25519 JWTs that every other service verifies with its
// JWKS, and announces new accounts as users.registered.
package users

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"runtime/debug"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/users/usersapi"
)

// Sentinel errors of the users domain; http.go maps them to statuses.
var (
	ErrEmailTaken     = errors.New("an account with this email already exists")
	ErrBadCredentials = errors.New("the email or password is wrong")
	ErrBadRefresh     = errors.New("the refresh token is invalid, expired or already used")
	ErrNotFound       = errors.New("no such user")
)

const (
	minPassword = 12
	maxPassword = 128 // argon2 hashes all of it; bound the work
	maxName     = 100
	maxEmail    = 254
)

// Config holds the users service's settings.
type Config struct {
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	// AdminEmail and AdminPassword, when set, make sure this admin exists.
	AdminEmail    string
	AdminPassword string
	// KEK seals the signing keys in the database (base64 of 32 bytes);
	// PreviousKEKs open keys sealed before a rotation. With no KEK the
	// keys are stored in plain text, and New warns.
	KEK          string
	PreviousKEKs []string
}

// Service is the users service.
type Service struct {
	cfg    Config
	db     *database.DB
	store  store
	keys   *keyring
	outbox events.Outbox
	log    *slog.Logger
	// hashing bounds concurrent argon2 work: each hash holds 19 MiB.
	hashing chan struct{}
	release *memoryRelease
	now     func() time.Time
}

// Deps are what the users service works with.
type Deps struct {
	DB  *database.DB
	Log *slog.Logger
}

// New builds the service, loading (or making) its signing keys; ctx
// bounds that work and is not kept.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	db, log := deps.DB, deps.Log
	sealer, err := newSealer(cfg.KEK, cfg.PreviousKEKs)
	if err != nil {
		return nil, err
	}
	if !sealer.enabled() {
		log.Warn("THE SIGNING KEYS ARE STORED IN PLAIN TEXT: whoever reads users' database can sign access tokens for anyone, admins included. Give users a key-encryption key (--key-encryption-key-file or --key-encryption-key; see docs/security.md)")
	}
	keys, err := loadKeys(ctx, db, sealer)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, db: db, store: store{db: db}, keys: keys, log: log,
		hashing: make(chan struct{}, hashingSlots), release: newMemoryRelease(500*time.Millisecond, debug.FreeOSMemory), now: time.Now}
	if cfg.AdminEmail != "" {
		if err := s.ensureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword); err != nil {
			return nil, fmt.Errorf("creating the admin account: %w", err)
		}
	}
	return s, nil
}

// Registration is a request to open an account.
type Registration usersapi.Registration

// Valid checks a registration field by field.
func (r *Registration) Valid() []validation.FieldError {
	var errs []validation.FieldError
	if _, err := normalEmail(r.Email); err != nil {
		errs = append(errs, validation.FieldError{Field: "email", Reason: err.Error()})
	}
	if reason := passwordProblem(r.Password); reason != "" {
		errs = append(errs, validation.FieldError{Field: "password", Reason: reason})
	}
	if reason := nameProblem(r.Name); reason != "" {
		errs = append(errs, validation.FieldError{Field: "name", Reason: reason})
	}
	return errs
}

// normalEmail checks an address and returns it lower-cased.
func normalEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("is required")
	}
	if len(s) > maxEmail {
		return "", fmt.Errorf("must be at most %d characters", maxEmail)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", errors.New("must be an email address such as ada@example.com")
	}
	_, domain, _ := strings.Cut(s, "@")
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", errors.New("must be an email address with a full domain, such as ada@example.com")
	}
	return strings.ToLower(s), nil
}

func passwordProblem(p string) string {
	n := utf8.RuneCountInString(p)
	switch {
	case n < minPassword:
		return fmt.Sprintf("must be at least %d characters", minPassword)
	case len(p) > maxPassword:
		return fmt.Sprintf("must be at most %d bytes", maxPassword)
	}
	return ""
}

func nameProblem(name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		return "is required"
	}
	return validation.Text(name, maxName)
}

// hash runs argon2 behind the concurrency bound.
func (s *Service) hash(ctx context.Context, password string) (string, error) {
	select {
	case s.hashing <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer s.doneHashing()
	return hashPassword(password)
}

func (s *Service) check(ctx context.Context, encoded, password string) (bool, error) {
	select {
	case s.hashing <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer s.doneHashing()
	return checkPassword(encoded, password)
}

// doneHashing frees a hashing slot; once hashing has been quiet for a
// moment, the memory argon2 used goes back to the operating system.
func (s *Service) doneHashing() {
	<-s.hashing
	s.release.after()
}

// memoryRelease hands freed memory back to the operating system once no
// work has asked for it for quiet. Argon2 allocates 19 MiB a hash, up to
// four at once; without this the process kept that memory (its heap goal
// stays where the burst left it until the next GC, which a quiet process
// may not run for minutes), so a burst of registrations left users at
// four times its usual size (bench/NOTES.md).
type memoryRelease struct {
	quiet   time.Duration
	release func()
	mu      sync.Mutex
	timer   *time.Timer
}

func newMemoryRelease(quiet time.Duration, release func()) *memoryRelease {
	return &memoryRelease{quiet: quiet, release: release}
}

// after (re)starts the countdown: the release runs quiet after the last call.
func (m *memoryRelease) after() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.timer == nil {
		m.timer = time.AfterFunc(m.quiet, m.release)
		return
	}
	m.timer.Reset(m.quiet)
}

// Register opens a customer account and announces it.
func (s *Service) Register(ctx context.Context, r Registration) (usersapi.User, error) {
	email, err := normalEmail(r.Email)
	if err != nil {
		return usersapi.User{}, validation.Errors{{Field: "email", Reason: err.Error()}}
	}
	hash, err := s.hash(ctx, r.Password)
	if err != nil {
		return usersapi.User{}, fmt.Errorf("hashing the password: %w", err)
	}
	now := s.now()
	u := account{ID: ids.New(), Email: email, Name: strings.TrimSpace(r.Name), PasswordHash: hash,
		Roles: []string{auth.RoleCustomer}, CreatedAt: now}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.store.insert(ctx, tx, u); err != nil {
			return err
		}
		_, err := s.outbox.Add(ctx, tx, usersapi.UserRegistered{UserID: u.ID, Email: u.Email, Name: u.Name, RegisteredAt: now.UTC()})
		return err
	})
	if err != nil {
		return usersapi.User{}, err
	}
	return u.public(), nil
}

// ensureAdmin makes sure email is an admin account that password opens.
func (s *Service) ensureAdmin(ctx context.Context, email, password string) error {
	email, err := normalEmail(email)
	if err != nil {
		return fmt.Errorf("admin email %w", err)
	}
	if reason := passwordProblem(password); reason != "" {
		return fmt.Errorf("admin password %s", reason)
	}
	existing, err := s.store.byEmail(ctx, email)
	switch {
	case errors.Is(err, ErrNotFound):
		hash, err := s.hash(ctx, password)
		if err != nil {
			return err
		}
		u := account{ID: ids.New(), Email: email, Name: "Administrator", PasswordHash: hash,
			Roles: []string{auth.RoleCustomer, auth.RoleAdmin}, CreatedAt: s.now()}
		if err := s.db.InTx(ctx, func(tx *sql.Tx) error { return s.store.insert(ctx, tx, u) }); err != nil && !errors.Is(err, ErrEmailTaken) {
			return err
		}
		s.log.Info("admin account created", "email", email)
		return nil
	case err != nil:
		return err
	}
	// The operator's configured password is the truth: set it when it
	// no longer matches, and make sure the account has the admin role.
	ok, err := s.check(ctx, existing.PasswordHash, password)
	if err != nil {
		return err
	}
	hash := existing.PasswordHash
	if !ok {
		if hash, err = s.hash(ctx, password); err != nil {
			return err
		}
	}
	if ok && existing.hasRole(auth.RoleAdmin) {
		return nil
	}
	roles := existing.Roles
	if !existing.hasRole(auth.RoleAdmin) {
		roles = append(roles, auth.RoleAdmin)
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		return s.store.update(ctx, tx, existing.ID, existing.Name, hash, roles, s.now())
	})
}

// Credentials are what a person logs in with.
type Credentials usersapi.Credentials

// Valid checks that both fields are present.
func (c *Credentials) Valid() []validation.FieldError {
	var errs []validation.FieldError
	if strings.TrimSpace(c.Email) == "" {
		errs = append(errs, validation.FieldError{Field: "email", Reason: "is required"})
	}
	if c.Password == "" {
		errs = append(errs, validation.FieldError{Field: "password", Reason: "is required"})
	} else if len(c.Password) > maxPassword {
		errs = append(errs, validation.FieldError{Field: "password", Reason: fmt.Sprintf("must be at most %d bytes", maxPassword)})
	}
	return errs
}

// dummyHash is checked against when the email is unknown, so a login
// takes as long whether or not the account exists.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3ZMjKzv0PzlsAgRgQIb0Y3eQ0iYfZ2lJ5p7yB5p6QkA"

// Login checks credentials and issues a new token pair.
func (s *Service) Login(ctx context.Context, c Credentials) (usersapi.Tokens, error) {
	email := strings.ToLower(strings.TrimSpace(c.Email))
	u, err := s.store.byEmail(ctx, email)
	if errors.Is(err, ErrNotFound) {
		_, _ = s.check(ctx, dummyHash, c.Password)
		return usersapi.Tokens{}, ErrBadCredentials
	}
	if err != nil {
		return usersapi.Tokens{}, err
	}
	ok, err := s.check(ctx, u.PasswordHash, c.Password)
	if err != nil {
		return usersapi.Tokens{}, fmt.Errorf("checking the password of %s: %w", u.ID, err)
	}
	if !ok {
		return usersapi.Tokens{}, ErrBadCredentials
	}
	return s.issue(ctx, u, ids.New())
}

// issue signs an access token for u and stores a new refresh token in family.
func (s *Service) issue(ctx context.Context, u account, family string) (usersapi.Tokens, error) {
	access, err := s.accessToken(u)
	if err != nil {
		return usersapi.Tokens{}, err
	}
	refresh, hash := newRefreshToken()
	now := s.now()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		return s.store.insertRefresh(ctx, tx, hash, u.ID, family, now.Add(s.cfg.RefreshTTL), now)
	})
	if err != nil {
		return usersapi.Tokens{}, err
	}
	return usersapi.Tokens{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer",
		ExpiresIn: int(s.cfg.AccessTTL.Seconds())}, nil
}

func (s *Service) accessToken(u account) (string, error) {
	kid, key := s.keys.current()
	now := s.now()
	claims := auth.Claims{
		Email: u.Email,
		Roles: u.Roles,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    auth.Issuer,
			Subject:   u.ID,
			Audience:  jwt.ClaimStrings{auth.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.AccessTTL)),
			ID:        ids.New(),
		},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = kid
	signed, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("signing the access token: %w", err)
	}
	return signed, nil
}

// newRefreshToken returns a random token and the hash that is stored.
func newRefreshToken() (token, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, hashRefresh(token)
}

func hashRefresh(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Refresh rotates a refresh token: the old one is spent and a new pair is
// issued in the same family. Presenting a spent token again means it was
// stolen, so the whole family is revoked.
func (s *Service) Refresh(ctx context.Context, token string) (usersapi.Tokens, error) {
	hash := hashRefresh(token)
	now := s.now()
	var u account
	var family string
	reused := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		rt, err := s.store.refreshByHash(ctx, tx, hash)
		if err != nil {
			return err
		}
		family = rt.FamilyID
		switch {
		case rt.RevokedAt != nil || now.After(rt.ExpiresAt):
			return ErrBadRefresh
		case rt.UsedAt != nil:
			reused = true
			return s.store.revokeFamily(ctx, tx, rt.FamilyID, now)
		}
		spent, err := s.store.markUsed(ctx, tx, hash, now)
		if err != nil {
			return err
		}
		if !spent {
			reused = true
			return s.store.revokeFamily(ctx, tx, rt.FamilyID, now)
		}
		u, err = s.store.byIDTx(ctx, tx, rt.UserID)
		return err
	})
	if err != nil {
		return usersapi.Tokens{}, err
	}
	if reused {
		s.log.Warn("a spent refresh token was presented again; its family is revoked", "family", family)
		return usersapi.Tokens{}, ErrBadRefresh
	}
	return s.issue(ctx, u, family)
}

// Logout revokes the refresh token's family. Unknown tokens are not an
// error: the caller is logged out either way.
func (s *Service) Logout(ctx context.Context, token string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		rt, err := s.store.refreshByHash(ctx, tx, hashRefresh(token))
		if errors.Is(err, ErrBadRefresh) {
			return nil
		}
		if err != nil {
			return err
		}
		return s.store.revokeFamily(ctx, tx, rt.FamilyID, s.now())
	})
}

// Me returns the caller's profile.
func (s *Service) Me(ctx context.Context, userID string) (usersapi.User, error) {
	u, err := s.store.byID(ctx, userID)
	if err != nil {
		return usersapi.User{}, err
	}
	return u.public(), nil
}

// ProfileUpdate changes the caller's name or password. A new password
// needs the current one.
type ProfileUpdate struct {
	Name            *string `json:"name,omitempty"`
	Password        *string `json:"password,omitempty"`
	CurrentPassword *string `json:"current_password,omitempty"`
}

// Valid checks the fields that are present.
func (p *ProfileUpdate) Valid() []validation.FieldError {
	var errs []validation.FieldError
	if p.Name == nil && p.Password == nil {
		errs = append(errs, validation.FieldError{Field: "name", Reason: "give a name or a password to change"})
	}
	if p.Name != nil {
		if reason := nameProblem(*p.Name); reason != "" {
			errs = append(errs, validation.FieldError{Field: "name", Reason: reason})
		}
	}
	if p.Password != nil {
		if reason := passwordProblem(*p.Password); reason != "" {
			errs = append(errs, validation.FieldError{Field: "password", Reason: reason})
		}
		if p.CurrentPassword == nil || *p.CurrentPassword == "" {
			errs = append(errs, validation.FieldError{Field: "current_password", Reason: "is required to change the password"})
		}
	}
	return errs
}

// UpdateMe applies a profile update. Changing the password logs out every
// other session by revoking all refresh tokens.
func (s *Service) UpdateMe(ctx context.Context, userID string, p ProfileUpdate) (usersapi.User, error) {
	u, err := s.store.byID(ctx, userID)
	if err != nil {
		return usersapi.User{}, err
	}
	name, hash := u.Name, u.PasswordHash
	if p.Name != nil {
		name = strings.TrimSpace(*p.Name)
	}
	if p.Password != nil {
		ok, err := s.check(ctx, u.PasswordHash, *p.CurrentPassword)
		if err != nil {
			return usersapi.User{}, err
		}
		if !ok {
			return usersapi.User{}, validation.Errors{{Field: "current_password", Reason: "is wrong"}}
		}
		if hash, err = s.hash(ctx, *p.Password); err != nil {
			return usersapi.User{}, err
		}
	}
	now := s.now()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.store.update(ctx, tx, u.ID, name, hash, u.Roles, now); err != nil {
			return err
		}
		if p.Password != nil {
			return s.store.revokeUser(ctx, tx, u.ID, now)
		}
		return nil
	})
	if err != nil {
		return usersapi.User{}, err
	}
	u.Name = name
	return u.public(), nil
}
