package usersapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/microshop/microshop/internal/platform/client"
)

// Errors the client returns for users' refusals.
var (
	ErrEmailTaken   = errors.New("users: an account with this email already exists")
	ErrUnauthorized = errors.New("users: wrong email or password, or an invalid token")
	// ErrNotFound is an account that does not exist or was erased.
	ErrNotFound = errors.New("users: no such account")
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
		case http.StatusNotFound:
			return ErrNotFound
		}
		return nil
	})
}

// Erase erases the access token's account, given its password: the
// account is gone at once and users.erased tells the other services. A
// wrong password is a 422 problem.
func (c *Client) Erase(ctx context.Context, token, password string) error {
	return c.do(ctx, token, http.MethodDelete, "/api/users/me", Erasure{Password: password}, nil)
}

// EraseAccount erases the account id; token must be an admin's. An
// unknown id is ErrNotFound; an account erased already is not an error.
func (c *Client) EraseAccount(ctx context.Context, token, id string) error {
	return c.do(ctx, token, http.MethodDelete, "/api/users/accounts/"+url.PathEscape(id), nil, nil)
}

// Internal calls users' internal routes, with the caller's service
// credential (only notifications may).
type Internal struct {
	c *client.Client
}

// NewInternal returns a client of users' internal routes over c, made
// with client.New("users", baseURL, credentials, options, metrics).
func NewInternal(c *client.Client) *Internal { return &Internal{c: c} }

// Run probes users' replicas until ctx ends; see client.Client.Run.
func (c *Internal) Run(ctx context.Context) error { return c.c.Run(ctx) }

// Contact returns where to write to customer id. An unknown or erased
// customer is ErrNotFound.
func (c *Internal) Contact(ctx context.Context, id string) (Contact, error) {
	var out Contact
	err := c.c.Do(ctx, client.Call{Method: http.MethodGet, Path: "/internal/users/" + url.PathEscape(id), Out: &out})
	err = client.Classify("users", err, func(status int, _ string) error {
		if status == http.StatusNotFound {
			return ErrNotFound
		}
		return nil
	})
	return out, err
}
