package ordersapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// PlaceOrder is the body of POST /api/orders. Prices are not part of it:
// orders asks inventory for them, so a client cannot set its own.
type PlaceOrder struct {
	Lines           []LineRequest    `json:"lines"`
	ShippingAddress Address          `json:"shipping_address"`
	Card            paymentsapi.Card `json:"card"`
}

// LineRequest is one product and quantity of an order to place.
type LineRequest struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// Errors the client returns for orders' refusals.
var (
	ErrNotFound       = errors.New("orders: no such order")
	ErrKeyReused      = errors.New("orders: the Idempotency-Key was used for another order")
	ErrNotCancellable = errors.New("orders: the order cannot be cancelled")
	ErrUnauthorized   = errors.New("orders: no valid access token")
)

// Client calls orders' public API, directly or through the gateway (the
// paths are the same). Every call carries the customer's access token.
type Client struct {
	c *client.Client
}

// NewClient returns a client of orders at baseURL (e.g.
// "http://127.0.0.1:8083", or the gateway's). opts and metrics tune and
// count the calls as for any platform client (metrics may be nil).
func NewClient(baseURL string, opts client.Options, metrics *client.Metrics) *Client {
	return &Client{c: client.New("orders", strings.TrimRight(baseURL, "/"), nil, opts, metrics)}
}

// Run probes orders' replicas until ctx ends; see client.Client.Run.
func (c *Client) Run(ctx context.Context) error { return c.c.Run(ctx) }

// Place places an order once per key: the same key and body again returns
// the same order, another body with the same key is ErrKeyReused. The
// order comes back final when the checkout ended within orders' wait, or
// PENDING (poll it with Get) when it did not.
func (c *Client) Place(ctx context.Context, token, key string, o PlaceOrder) (Order, error) {
	var out Order
	err := c.do(ctx, token, client.Call{Method: http.MethodPost, Path: "/api/orders", In: o, Out: &out, IdempotencyKey: key})
	return out, err
}

// Get returns one of the customer's orders (any order, for an admin);
// another customer's is ErrNotFound.
func (c *Client) Get(ctx context.Context, token, id string) (Order, error) {
	var out Order
	err := c.do(ctx, token, client.Call{Method: http.MethodGet, Path: "/api/orders/" + url.PathEscape(id), Out: &out})
	return out, err
}

// Cancel cancels a confirmed order: its payment is refunded and its stock
// returned. One that is not confirmed is ErrNotCancellable.
func (c *Client) Cancel(ctx context.Context, token, id string) (Order, error) {
	var out Order
	err := c.do(ctx, token, client.Call{Method: http.MethodPost, Path: "/api/orders/" + url.PathEscape(id) + "/cancel", Out: &out})
	return out, err
}

// List returns up to limit of the customer's orders, newest first, from
// the page pageToken names ("" for the first), and the next page's token
// ("" after the last). limit 0 is the service's default.
func (c *Client) List(ctx context.Context, token string, limit int, pageToken string) ([]Order, string, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if pageToken != "" {
		q.Set("page_token", pageToken)
	}
	var page httpjson.List[Order]
	err := c.do(ctx, token, client.Call{Method: http.MethodGet, Path: "/api/orders?" + q.Encode(), Out: &page})
	return page.Items, page.NextPageToken, err
}

func (c *Client) do(ctx context.Context, token string, call client.Call) error {
	call.Header = client.Bearer(token)
	return client.Classify("orders", c.c.Do(ctx, call), func(status int, slug string) error {
		switch {
		case status == http.StatusNotFound:
			return ErrNotFound
		case status == http.StatusUnauthorized:
			return ErrUnauthorized
		case slug == "idempotency-key-reuse":
			return ErrKeyReused
		case slug == "not-cancellable":
			return ErrNotCancellable
		}
		return nil
	})
}
