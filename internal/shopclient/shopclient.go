// Package shopclient is a typed client of microshop's public API, the one
// shoppers and admins use through the gateway: registering and logging in,
// the catalog, checkouts and their orders, and the admin reads and edits
// that the load generator, the demos, chaos, the invariant checker, the
// bench and the black-box tests need.
//
// Bodies are the contract types of the services (usersapi, inventoryapi,
// ordersapi, paymentsapi, reportsapi), so the client cannot drift from
// what the services answer. An answer other than the one a call expects
// is an *Error carrying the status and the problem document.
package shopclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/microshop/microshop/internal/platform/problem"
)

// maxBody bounds an answer's body: the API's pages are far smaller.
const maxBody = 4 << 20

// DefaultConns is the connections kept open to the gateway when
// Options.Conns is zero.
const DefaultConns = 64

// Options tune a Client. The zero value is fine for a test or a tool.
type Options struct {
	// Conns is how many idle connections to the gateway are kept alive.
	// Go's default of two would make every other concurrent shopper dial
	// for each request, and under load that cost would dominate.
	Conns int
	// Timeout bounds each request, answer included (0: only the
	// context's deadline).
	Timeout time.Duration
	// UserAgent names the program in the gateway's logs.
	UserAgent string
	// DialContext, when set, opens the connections to the gateway, such
	// as from another network namespace (internal/netlab's load host).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Client talks to one gateway. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	hc       *http.Client
	ua       string
	requests atomic.Int64
}

// New returns a client of the gateway at baseURL, such as
// http://127.0.0.1:8080.
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("gateway URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway URL %q: want a base URL such as http://127.0.0.1:8080", baseURL)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("gateway URL %q: want the gateway's base URL alone, with no path, query or credentials", baseURL)
	}
	u.Path = ""
	conns := opts.Conns
	if conns <= 0 {
		conns = DefaultConns
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "microshop-shopclient"
	}
	dial := opts.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	transport := &http.Transport{
		Proxy:                 nil, // only the gateway, never a proxy from the environment
		DialContext:           dial,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &Client{base: u, ua: ua, hc: &http.Client{
		Transport: transport,
		Timeout:   opts.Timeout,
		// A redirect would lead elsewhere; the answer is taken as it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// MustNew is New for a URL known to be good, such as a test system's.
func MustNew(baseURL string, opts Options) *Client {
	c, err := New(baseURL, opts)
	if err != nil {
		panic(err)
	}
	return c
}

// URL is the gateway's base URL.
func (c *Client) URL() string { return c.base.String() }

// Requests counts the HTTP requests sent so far.
func (c *Client) Requests() int64 { return c.requests.Load() }

// Close closes the idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Request is one call of the API.
type Request struct {
	Method string
	// Path is a path on the gateway with its query, such as
	// /api/orders?limit=5.
	Path           string
	Token          string // sent as a bearer token when set
	IdempotencyKey string
	// Body, when not nil, is sent as JSON.
	Body any
	// Want are the statuses that count as success (any 2xx when empty).
	Want []int
}

// Response is an answer with a wanted status.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// ErrBadResponse marks an answer with a wanted status whose body or
// headers are not what the API promises.
var ErrBadResponse = errors.New("bad response")

// Do sends r and, when the answer has a wanted status, decodes its body
// into out (when not nil). Any other status is an *Error; no answer at
// all is the transport's error, wrapped.
func (c *Client) Do(ctx context.Context, r Request, out any) (Response, error) {
	res, err := c.send(ctx, r)
	if err != nil {
		return res, err
	}
	if out != nil {
		if err := json.Unmarshal(res.Body, out); err != nil {
			return res, fmt.Errorf("%s %s: %w: %v", r.Method, r.Path, ErrBadResponse, err)
		}
	}
	return res, nil
}

func (c *Client) send(ctx context.Context, r Request) (Response, error) {
	u, err := c.base.Parse(r.Path)
	if err != nil || u.Host != c.base.Host {
		return Response{}, fmt.Errorf("%s %s: %w: not a path on the gateway", r.Method, r.Path, ErrBadResponse)
	}
	var body io.Reader
	if r.Body != nil {
		b, err := json.Marshal(r.Body)
		if err != nil {
			return Response{}, fmt.Errorf("%s %s: encoding the body: %w", r.Method, r.Path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), body)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: %w", r.Method, r.Path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if r.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	if r.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", r.IdempotencyKey)
	}
	c.requests.Add(1)
	resp, err := c.hc.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: %w", r.Method, r.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: reading the answer: %w", r.Method, r.Path, err)
	}
	res := Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if !wanted(res.Status, r.Want) {
		return res, newError(r.Method, r.Path, res)
	}
	return res, nil
}

func wanted(status int, want []int) bool {
	if len(want) == 0 {
		return status >= 200 && status < 300
	}
	for _, w := range want {
		if status == w {
			return true
		}
	}
	return false
}

// Error is an answer with a status the call did not expect. When the body
// was a problem document, its members are here too.
type Error struct {
	Method, Path string
	Status       int
	// Type, Title and Detail are the problem's; Slug is the last part of
	// its type (out-of-stock, rate-limited, ...); Reason is its "reason"
	// member, such as why a card was declined.
	Type, Title, Detail, Slug, Reason string
	// Problem is the whole problem document (nil when the body was not one).
	Problem *problem.Problem
	// Body is the start of the body when it was not a problem.
	Body string
}

func newError(method, path string, res Response) *Error {
	e := &Error{Method: method, Path: path, Status: res.Status}
	var p problem.Problem
	if strings.Contains(res.Header.Get("Content-Type"), "json") && json.Unmarshal(res.Body, &p) == nil && p.Type != "" {
		e.Problem = &p
		e.Type, e.Title, e.Detail = p.Type, p.Title, p.Detail
		e.Slug = p.Type[strings.LastIndex(p.Type, "/")+1:]
		e.Reason, _ = p.Extensions["reason"].(string)
		return e
	}
	e.Body = strings.TrimSpace(string(res.Body))
	if len(e.Body) > 300 {
		e.Body = e.Body[:300] + "..."
	}
	return e
}

func (e *Error) Error() string {
	what := e.Body
	if e.Problem != nil {
		what = e.Problem.Error()
	}
	return fmt.Sprintf("%s %s: %d: %s", e.Method, e.Path, e.Status, what)
}

// StatusOf is the status of an *Error in err's chain, or 0 when err is
// no answer at all (or nil).
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Page is one page of a list.
type Page[T any] struct {
	Items         []T    `json:"items"`
	NextPageToken string `json:"next_page_token"`
}

// query builds a path with the query's non-empty values.
func query(path string, kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// Get reads path anonymously into out, expecting a 200.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	_, err := c.Do(ctx, Request{Method: http.MethodGet, Path: path, Want: []int{http.StatusOK}}, out)
	return err
}

// all reads every page of a list, at most maxPages.
func all[T any](ctx context.Context, s *Session, path string) ([]T, error) {
	const maxPages = 10_000
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var out []T
	next := ""
	for range maxPages {
		p := path
		if next != "" {
			p += sep + "page_token=" + url.QueryEscape(next)
		}
		var page Page[T]
		if err := s.Get(ctx, p, &page); err != nil {
			return out, err
		}
		out = append(out, page.Items...)
		if page.NextPageToken == "" || len(page.Items) == 0 {
			return out, nil
		}
		next = page.NextPageToken
	}
	return out, fmt.Errorf("GET %s: more than %d pages", path, maxPages)
}
