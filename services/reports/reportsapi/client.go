package reportsapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/client"
)

// ErrForbidden is reports' refusal of a caller who is not an admin.
var ErrForbidden = errors.New("reports: admins only")

// SalesQuery picks the figures of GET /api/reports/sales. Zero fields are
// the service's defaults (the last 30 days, by day, in its currency).
type SalesQuery struct {
	From, To time.Time
	// Bucket is hour, day or week.
	Bucket   string
	Currency string
}

// Client calls reports' admin API, directly or through the gateway (the
// paths are the same). Every call carries an admin's access token.
type Client struct {
	c *client.Client
}

// NewClient returns a client of reports at baseURL (e.g.
// "http://127.0.0.1:8086", or the gateway's). opts and metrics tune and
// count the calls as for any platform client (metrics may be nil).
func NewClient(baseURL string, opts client.Options, metrics *client.Metrics) *Client {
	return &Client{c: client.New("reports", strings.TrimRight(baseURL, "/"), nil, opts, metrics)}
}

// Run probes reports' replicas until ctx ends; see client.Client.Run.
func (c *Client) Run(ctx context.Context) error { return c.c.Run(ctx) }

// Sales returns sales by bucket over q's window.
func (c *Client) Sales(ctx context.Context, token string, q SalesQuery) (Sales, error) {
	v := url.Values{}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339))
	}
	if q.Bucket != "" {
		v.Set("bucket", q.Bucket)
	}
	if q.Currency != "" {
		v.Set("currency", q.Currency)
	}
	var out Sales
	err := c.do(ctx, token, "/api/reports/sales?"+v.Encode(), &out)
	return out, err
}

// Summary returns the totals of everything reports has seen in currency
// ("" for the service's own).
func (c *Client) Summary(ctx context.Context, token, currency string) (Summary, error) {
	v := url.Values{}
	if currency != "" {
		v.Set("currency", currency)
	}
	var out Summary
	err := c.do(ctx, token, "/api/reports/summary?"+v.Encode(), &out)
	return out, err
}

func (c *Client) do(ctx context.Context, token, path string, out any) error {
	err := c.c.Do(ctx, client.Call{Method: http.MethodGet, Path: path, Out: out, Header: client.Bearer(token)})
	return client.Classify("reports", err, func(status int, _ string) error {
		if status == http.StatusForbidden {
			return ErrForbidden
		}
		return nil
	})
}
