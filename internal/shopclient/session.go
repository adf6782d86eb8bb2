package shopclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/microshop/microshop/services/users/usersapi"
)

// Registration is a new account.
type Registration = usersapi.Registration

// Register creates an account (201).
func (c *Client) Register(ctx context.Context, r Registration) (usersapi.User, error) {
	var u usersapi.User
	_, err := c.Do(ctx, Request{Method: http.MethodPost, Path: "/api/users/register", Body: r, Want: []int{http.StatusCreated}}, &u)
	return u, err
}

// Session is a logged-in customer or admin: the tokens of the last login
// or refresh, and the credentials to log in again when they run out. It
// is safe for concurrent use.
type Session struct {
	c               *Client
	Email, password string

	mu      sync.Mutex
	tokens  usersapi.Tokens
	expires time.Time
}

// Login logs email in and returns its session.
func (c *Client) Login(ctx context.Context, email, password string) (*Session, error) {
	s := &Session{c: c, Email: email, password: password}
	return s, s.Login(ctx)
}

// As is a session over an access token got elsewhere. It cannot log in
// again by itself.
func (c *Client) As(token string) *Session {
	return &Session{c: c, tokens: usersapi.Tokens{AccessToken: token}, expires: time.Now().Add(24 * time.Hour)}
}

// Client is the client the session calls through.
func (s *Session) Client() *Client { return s.c }

// Login logs the session's account in again, replacing its tokens.
func (s *Session) Login(ctx context.Context) error {
	var t usersapi.Tokens
	_, err := s.c.Do(ctx, Request{Method: http.MethodPost, Path: "/api/users/login",
		Body: map[string]string{"email": s.Email, "password": s.password}, Want: []int{http.StatusOK}}, &t)
	if err != nil {
		return err
	}
	return s.keep(t)
}

// Refresh trades the refresh token for new tokens.
func (s *Session) Refresh(ctx context.Context) error {
	var t usersapi.Tokens
	_, err := s.c.Do(ctx, Request{Method: http.MethodPost, Path: "/api/users/refresh",
		Body: map[string]string{"refresh_token": s.Tokens().RefreshToken}, Want: []int{http.StatusOK}}, &t)
	if err != nil {
		return err
	}
	return s.keep(t)
}

func (s *Session) keep(t usersapi.Tokens) error {
	if t.AccessToken == "" {
		return fmt.Errorf("logging in as %s: %w: no access token", s.Email, ErrBadResponse)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens, s.expires = t, time.Now().Add(time.Duration(t.ExpiresIn)*time.Second)
	return nil
}

// Tokens are the tokens of the last login or refresh.
func (s *Session) Tokens() usersapi.Tokens {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens
}

// Token is the current access token.
func (s *Session) Token() string { return s.Tokens().AccessToken }

// fresh returns an access token, logging in again first when the one
// held expires within a minute (a run longer than a token's life).
func (s *Session) fresh(ctx context.Context) (string, error) {
	s.mu.Lock()
	tok, exp := s.tokens.AccessToken, s.expires
	s.mu.Unlock()
	if s.password == "" || (tok != "" && time.Until(exp) > time.Minute) {
		return tok, nil
	}
	if err := s.Login(ctx); err != nil {
		return "", err
	}
	return s.Token(), nil
}

// Do sends r as the session's account. A 401 (the token was revoked or
// expired early) logs in again and sends r once more.
func (s *Session) Do(ctx context.Context, r Request, out any) (Response, error) {
	tok, err := s.fresh(ctx)
	if err != nil {
		return Response{}, err
	}
	r.Token = tok
	res, err := s.c.Do(ctx, r, out)
	if StatusOf(err) != http.StatusUnauthorized || s.password == "" {
		return res, err
	}
	if lerr := s.Login(ctx); lerr != nil {
		return res, errors.Join(err, lerr)
	}
	r.Token = s.Token()
	return s.c.Do(ctx, r, out)
}

// Get reads path as the session into out, expecting a 200.
func (s *Session) Get(ctx context.Context, path string, out any) error {
	_, err := s.Do(ctx, Request{Method: http.MethodGet, Path: path, Want: []int{http.StatusOK}}, out)
	return err
}

// Me is the session's profile.
func (s *Session) Me(ctx context.Context) (usersapi.User, error) {
	var u usersapi.User
	return u, s.Get(ctx, "/api/users/me", &u)
}
