package notificationsapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/httpjson"
)

// Client calls notifications' admin API, directly or through the gateway
// (the paths are the same). Every call carries an admin's access token.
type Client struct {
	c *client.Client
}

// NewClient returns a client of notifications at baseURL (e.g.
// "http://127.0.0.1:8085", or the gateway's). opts and metrics tune and
// count the calls as for any platform client (metrics may be nil).
func NewClient(baseURL string, opts client.Options, metrics *client.Metrics) *Client {
	return &Client{c: client.New("notifications", strings.TrimRight(baseURL, "/"), nil, opts, metrics)}
}

// Run probes notifications' replicas until ctx ends; see client.Client.Run.
func (c *Client) Run(ctx context.Context) error { return c.c.Run(ctx) }

// Deliveries lists up to limit deliveries matching f, newest first, from
// the page pageToken names ("" for the first), and the next page's token
// ("" after the last). limit 0 is the service's default.
func (c *Client) Deliveries(ctx context.Context, token string, f DeliveryFilter, limit int, pageToken string) ([]Delivery, string, error) {
	q := url.Values{}
	for k, v := range map[string]string{"event_type": f.EventType, "order_id": f.OrderID, "status": f.Status, "page_token": pageToken} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var page httpjson.List[Delivery]
	err := c.do(ctx, token, http.MethodGet, "/api/notifications/deliveries?"+q.Encode(), nil, &page)
	return page.Items, page.NextPageToken, err
}

// Delivery returns one delivery; an unknown id is ErrNotFound.
func (c *Client) Delivery(ctx context.Context, token, id string) (Delivery, error) {
	var d Delivery
	err := c.do(ctx, token, http.MethodGet, "/api/notifications/deliveries/"+url.PathEscape(id), nil, &d)
	return d, err
}

// Replay sends a sent, failed or dead delivery again; one that is pending
// already is ErrDeliveryPending.
func (c *Client) Replay(ctx context.Context, token, id string) (Delivery, error) {
	var d Delivery
	err := c.do(ctx, token, http.MethodPost, "/api/notifications/deliveries/"+url.PathEscape(id)+"/replay", nil, &d)
	return d, err
}

// CreateWebhook registers an endpoint and returns it with its signing
// secret, the only time the secret is shown. A refused URL or event type
// is a 422 problem (problem.From); past the limit, ErrTooManyWebhooks.
func (c *Client) CreateWebhook(ctx context.Context, token string, req WebhookRequest) (Webhook, error) {
	var w Webhook
	err := c.do(ctx, token, http.MethodPost, "/api/notifications/webhooks", req, &w)
	return w, err
}

// Webhooks lists the endpoints, oldest first, without their secrets.
func (c *Client) Webhooks(ctx context.Context, token string) ([]Webhook, error) {
	var list httpjson.List[Webhook]
	err := c.do(ctx, token, http.MethodGet, "/api/notifications/webhooks", nil, &list)
	return list.Items, err
}

// DeleteWebhook removes an endpoint; an unknown id is ErrNotFound.
func (c *Client) DeleteWebhook(ctx context.Context, token, id string) error {
	return c.do(ctx, token, http.MethodDelete, "/api/notifications/webhooks/"+url.PathEscape(id), nil, nil)
}

func (c *Client) do(ctx context.Context, token, method, path string, in, out any) error {
	err := c.c.Do(ctx, client.Call{Method: method, Path: path, In: in, Out: out, Header: client.Bearer(token)})
	return client.Classify("notifications", err, func(status int, slug string) error {
		switch {
		case status == http.StatusNotFound:
			return ErrNotFound
		case slug == ProblemDeliveryPending:
			return ErrDeliveryPending
		case slug == ProblemTooManyWebhooks:
			return ErrTooManyWebhooks
		}
		return nil
	})
}
