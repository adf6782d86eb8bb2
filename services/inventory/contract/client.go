package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/problem"
)

// DefaultTimeout bounds a call whose context has no deadline of its own.
const DefaultTimeout = 10 * time.Second

// Client calls inventory's internal reservation routes with this
// service's credential. Every method is idempotent by order id, so a
// caller may retry any of them after a timeout or a 5xx.
type Client struct {
	base  string
	http  *http.Client
	creds *auth.Credentials
}

// NewClient returns a client of the inventory service at baseURL
// (e.g. "http://127.0.0.1:8082"). hc carries the calls (its transport
// decides pooling, breakers and limits); creds sign each request.
func NewClient(baseURL string, hc *http.Client, creds *auth.Credentials) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), http: hc, creds: creds}
}

// Reserve holds stock for every line of an order, or none of it. When the
// order was reserved before it returns that reservation unchanged. A
// shortage is an *OutOfStockError (errors.Is(err, ErrOutOfStock)).
func (c *Client) Reserve(ctx context.Context, req ReserveRequest) (Reservation, error) {
	r, err := c.do(ctx, "/internal/reservations", req)
	var oos *OutOfStockError
	if errors.As(err, &oos) {
		oos.SKUs = skusOf(oos.Problem, req.Lines)
	}
	return r, err
}

// Commit turns a held reservation into a sale. Committing again is a
// no-op; a released or expired reservation is ErrReservationReleased.
func (c *Client) Commit(ctx context.Context, orderID string) (Reservation, error) {
	return c.do(ctx, "/internal/reservations/"+url.PathEscape(orderID)+"/commit", nil)
}

// Release gives a reservation's stock back, held or committed (a
// cancelled order). Releasing again is a no-op.
func (c *Client) Release(ctx context.Context, orderID string) (Reservation, error) {
	return c.do(ctx, "/internal/reservations/"+url.PathEscape(orderID)+"/release", nil)
}

func (c *Client) do(ctx context.Context, path string, body any) (Reservation, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Reservation{}, fmt.Errorf("encoding the request to inventory: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, rd)
	if err != nil {
		return Reservation{}, fmt.Errorf("calling inventory: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if err := c.creds.Authorize(req); err != nil {
		return Reservation{}, fmt.Errorf("calling inventory: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Reservation{}, fmt.Errorf("calling inventory %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Reservation{}, fmt.Errorf("reading inventory's answer to %s: %w", path, err)
	}
	if resp.StatusCode >= 300 {
		return Reservation{}, responseError(resp, b)
	}
	var r Reservation
	if err := json.Unmarshal(b, &r); err != nil {
		return Reservation{}, fmt.Errorf("decoding inventory's answer to %s: %w", path, err)
	}
	return r, nil
}

// Error is an error answer of inventory: its problem document and, when
// it is one the caller can act on, the sentinel it matches (ErrNotFound,
// ErrReservationReleased, ErrReservationMismatch).
type Error struct {
	Kind    error
	Problem *problem.Problem
}

func (e *Error) Error() string { return "inventory: " + e.Problem.Error() }

// Unwrap lets errors.Is find the sentinel and problem.From the problem.
func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Problem}
	}
	return []error{e.Kind, e.Problem}
}

// OutOfStockError names the skus that lacked stock; nothing was reserved.
type OutOfStockError struct {
	SKUs    []string
	Problem *problem.Problem
}

func (e *OutOfStockError) Error() string {
	return "inventory: out of stock: " + strings.Join(e.SKUs, ", ")
}

// Is makes errors.Is(err, ErrOutOfStock) true.
func (e *OutOfStockError) Is(target error) bool { return target == ErrOutOfStock }

// Unwrap lets problem.From find the problem.
func (e *OutOfStockError) Unwrap() error { return e.Problem }

// responseError turns a non-2xx answer into an error, decoding
// problem+json when that is what came back.
func responseError(resp *http.Response, body []byte) error {
	var p problem.Problem
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), problem.ContentType) || json.Unmarshal(body, &p) != nil || p.Status == 0 {
		p = problem.Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode),
			Detail: strings.TrimSpace(string(body[:min(len(body), 200)]))}
	}
	slug := p.Type[strings.LastIndex(p.Type, "/")+1:]
	switch {
	case resp.StatusCode == http.StatusConflict && slug == ProblemOutOfStock:
		return &OutOfStockError{Problem: &p}
	case resp.StatusCode == http.StatusConflict && slug == ProblemReservationReleased:
		return &Error{Kind: ErrReservationReleased, Problem: &p}
	case resp.StatusCode == http.StatusConflict && slug == ProblemReservationMismatch:
		return &Error{Kind: ErrReservationMismatch, Problem: &p}
	case resp.StatusCode == http.StatusNotFound:
		return &Error{Kind: ErrNotFound, Problem: &p}
	}
	return &Error{Problem: &p}
}

// skusOf reads the skus an out-of-stock problem names: its field errors
// point at request lines ("lines[2].quantity").
func skusOf(p *problem.Problem, lines []ReserveLine) []string {
	var skus []string
	for _, fe := range p.Errors {
		rest, ok := strings.CutPrefix(fe.Field, "lines[")
		if !ok {
			continue
		}
		idx, _, ok := strings.Cut(rest, "]")
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(idx); err == nil && i >= 0 && i < len(lines) {
			skus = append(skus, lines[i].SKU)
		}
	}
	return skus
}
