package usersapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/microshop/microshop/internal/platform/client"
)

// Errors the client returns for users' refusals.
var (
	ErrEmailTaken   = errors.New("users: an account with this email already exists")
	ErrUnauthorized = errors.New("users: wrong email or password, or an invalid token")
)

// Client calls users' public API, directly or through the gateway (the
// paths are the same).
type Client struct {
	c *client.Client
}

// NewClient returns a client of users at baseURL (e.g.
// "http://127.0.0.1:8081", or the gateway's). opts and metrics tune and
// count the calls as for any platform client (metrics may be nil).
func NewClient(baseURL string, opts client.Options, metrics *client.Metrics) *Client {
	return &Client{c: client.New("users", strings.TrimRight(baseURL, "/"), nil, opts, metrics)}
}

// Run probes users' replicas until ctx ends; see client.Client.Run.
func (c *Client) Run(ctx context.Context) error { return c.c.Run(ctx) }

// Register opens an account; an email in use is ErrEmailTaken, an invalid
// field a 422 problem (problem.From).
func (c *Client) Register(ctx context.Context, r Registration) (User, error) {
	var u User
	err := c.do(ctx, "", http.MethodPost, "/api/users/register", r, &u)
	return u, err
}

// Login trades an email and password for tokens; wrong ones are
// ErrUnauthorized.
func (c *Client) Login(ctx context.Context, cr Credentials) (Tokens, error) {
	var t Tokens
	err := c.do(ctx, "", http.MethodPost, "/api/users/login", cr, &t)
	return t, err
}

// Refresh trades a refresh token, once, for new tokens; a used, expired
// or unknown one is ErrUnauthorized.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	var t Tokens
	err := c.do(ctx, "", http.MethodPost, "/api/users/refresh", RefreshRequest{RefreshToken: refreshToken}, &t)
	return t, err
}

// Me returns the profile of the access token's user.
func (c *Client) Me(ctx context.Context, token string) (User, error) {
	var u User
	err := c.do(ctx, token, http.MethodGet, "/api/users/me", nil, &u)
	return u, err
}

func (c *Client) do(ctx context.Context, token, method, path string, in, out any) error {
	err := c.c.Do(ctx, client.Call{Method: method, Path: path, In: in, Out: out, Header: client.Bearer(token)})
	return client.Classify("users", err, func(status int, _ string) error {
		switch status {
		case http.StatusConflict:
			return ErrEmailTaken
		case http.StatusUnauthorized:
			return ErrUnauthorized
		}
		return nil
	})
}
