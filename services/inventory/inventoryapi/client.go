package inventoryapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/problem"
)

// Client calls inventory's internal routes (only orders may) through a
// platform client, which gives every call a deadline, a circuit breaker
// and a concurrency limit, and signs it with the caller's service
// credential. Every call is idempotent by order id, so each carries an
// Idempotency-Key and the platform client retries it safely after a
// timeout or a 503.
type Client struct {
	c *client.Client
}

// NewClient returns a client of inventory over c, made with
// client.New("inventory", baseURL, credentials, options, metrics).
func NewClient(c *client.Client) *Client {
	return &Client{c: c}
}

// Run probes inventory's replicas until ctx ends; see client.Client.Run.
func (c *Client) Run(ctx context.Context) error { return c.c.Run(ctx) }

// Quote prices lines at the current catalog prices, reserving nothing. An
// unknown sku or a bad line is a 422 problem (problem.From).
func (c *Client) Quote(ctx context.Context, lines []ReserveLine) (Quote, error) {
	var q Quote
	err := c.do(ctx, "/internal/quotes", "/internal/quotes", quoteKey(lines), QuoteRequest{Lines: lines}, &q)
	return q, err
}

// Reserve holds stock for every line of an order, or none of it. When the
// order was reserved before it returns that reservation unchanged; the
// same order id with other lines is ErrReservationMismatch. A shortage is
// an *OutOfStockError (errors.Is(err, ErrOutOfStock)); an unknown sku or
// a bad line is a 422 problem.
func (c *Client) Reserve(ctx context.Context, req ReserveRequest) (Reservation, error) {
	var r Reservation
	err := c.do(ctx, "/internal/reservations", "/internal/reservations", "reserve:"+req.OrderID, req, &r)
	var oos *OutOfStockError
	if errors.As(err, &oos) && len(oos.SKUs) == 0 {
		oos.SKUs = skusOfLines(oos.Problem, req.Lines)
	}
	return r, err
}

// Commit turns a held reservation into a sale. Committing again is a
// no-op; a released or expired reservation is ErrReservationReleased, an
// unknown order ErrNotFound.
func (c *Client) Commit(ctx context.Context, orderID string) (Reservation, error) {
	var r Reservation
	err := c.do(ctx, "/internal/reservations/"+url.PathEscape(orderID)+"/commit", "/internal/reservations/{order_id}/commit", "commit:"+orderID, nil, &r)
	return r, err
}

// Release gives a reservation's stock back, held or committed (a
// cancelled order). Releasing again is a no-op; an unknown order is
// ErrNotFound.
func (c *Client) Release(ctx context.Context, orderID string) (Reservation, error) {
	var r Reservation
	err := c.do(ctx, "/internal/reservations/"+url.PathEscape(orderID)+"/release", "/internal/reservations/{order_id}/release", "release:"+orderID, nil, &r)
	return r, err
}

// do posts to path, whose template route names the call's span.
func (c *Client) do(ctx context.Context, path, route, key string, in, out any) error {
	err := c.c.Do(ctx, client.Call{Method: http.MethodPost, Path: path, Route: route, In: in, Out: out, IdempotencyKey: key})
	return classify(err)
}

// quoteKey marks a quote safe to retry: it changes nothing, and the same
// lines always make the same key.
func quoteKey(lines []ReserveLine) string {
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l.SKU + "\x00" + strconv.FormatInt(l.Quantity, 10) + "\x00"))
	}
	return "quote:" + hex.EncodeToString(h.Sum(nil)[:12])
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

// classify turns a problem inventory answered into the contract's errors.
// Other errors (client.ErrUnavailable: unreachable, 503, breaker open)
// pass unchanged.
func classify(err error) error {
	p := problem.From(err)
	if p == nil || errors.Is(err, client.ErrUnavailable) {
		return err
	}
	slug := p.Type[strings.LastIndex(p.Type, "/")+1:]
	switch {
	case p.Status == http.StatusConflict && slug == ProblemOutOfStock:
		e := &OutOfStockError{Problem: p}
		if skus, ok := p.Extensions["skus"].([]any); ok {
			for _, s := range skus {
				if s, ok := s.(string); ok {
					e.SKUs = append(e.SKUs, s)
				}
			}
		}
		return e
	case p.Status == http.StatusConflict && slug == ProblemReservationReleased:
		return &client.Error{Target: "inventory", Kind: ErrReservationReleased, Problem: p}
	case p.Status == http.StatusConflict && slug == ProblemReservationMismatch:
		return &client.Error{Target: "inventory", Kind: ErrReservationMismatch, Problem: p}
	case p.Status == http.StatusNotFound:
		return &client.Error{Target: "inventory", Kind: ErrNotFound, Problem: p}
	}
	return &client.Error{Target: "inventory", Problem: p}
}

// skusOfLines reads the skus of an out-of-stock problem without a "skus"
// member from its field errors, which point at request lines
// ("lines[2].quantity").
func skusOfLines(p *problem.Problem, lines []ReserveLine) []string {
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
