package paymentsapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/problem"
)

// Client calls payments' internal routes with the caller's service
// credential (only orders is allowed). Every write carries an idempotency
// key: sending the same call again with the same key returns the first
// answer and moves no money twice, so the platform client retries them
// safely after a timeout or a 503. Use one key per step of a saga, such
// as "<order id>:authorize".
type Client struct {
	c *client.Client
}

// NewClient returns a client of payments at baseURL
// (e.g. "http://127.0.0.1:8084"). creds sign each call; opts and metrics
// tune and count them as for any platform client (metrics may be nil).
func NewClient(baseURL string, creds *auth.Credentials, opts client.Options, metrics *client.Metrics) *Client {
	return &Client{c: client.New("payments", strings.TrimRight(baseURL, "/"), creds, opts, metrics)}
}

// Run probes payments' replicas until ctx ends; see client.Client.Run.
func (c *Client) Run(ctx context.Context) error { return c.c.Run(ctx) }

// Authorize holds req's amount on its card. A refusal is a *DeclinedError
// (errors.Is(err, ErrDeclined)); an order voided before is ErrOrderVoided.
func (c *Client) Authorize(ctx context.Context, key string, req AuthorizeRequest) (Payment, error) {
	var p Payment
	err := c.do(ctx, http.MethodPost, "/internal/payments/authorize", key, req, &p)
	return p, err
}

// Capture takes the money of authorized payment id. amount must be the
// authorized amount, or 0 for all of it. A payment is captured once:
// a capture under another key is ErrAlreadyCaptured.
func (c *Client) Capture(ctx context.Context, key, id string, amount int64) (Payment, error) {
	var req CaptureRequest
	if amount != 0 {
		req.AmountCents = &amount
	}
	var p Payment
	err := c.do(ctx, http.MethodPost, "/internal/payments/"+url.PathEscape(id)+"/capture", key, req, &p)
	return p, err
}

// Void releases the holds of orderID's uncaptured payments and makes
// payments refuse any later authorization for it (ErrOrderVoided).
// Captured payments are left alone and listed in the result.
func (c *Client) Void(ctx context.Context, key, orderID string) (VoidResult, error) {
	var v VoidResult
	err := c.do(ctx, http.MethodPost, "/internal/payments/void", key, VoidRequest{OrderID: orderID}, &v)
	return v, err
}

// Refund gives amount of captured payment id back; refunds never exceed
// the captured amount in total (ErrRefundExceeds).
func (c *Client) Refund(ctx context.Context, key, id string, amount int64) (Payment, error) {
	var p Payment
	err := c.do(ctx, http.MethodPost, "/internal/payments/"+url.PathEscape(id)+"/refund", key, RefundRequest{AmountCents: amount}, &p)
	return p, err
}

// ByOrder lists orderID's payments, oldest first, declined ones included:
// orders uses it to find where a saga stopped after a crash.
func (c *Client) ByOrder(ctx context.Context, orderID string) ([]Payment, error) {
	var list struct {
		Items []Payment `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/internal/payments?order_id="+url.QueryEscape(orderID), "", nil, &list)
	return list.Items, err
}

func (c *Client) do(ctx context.Context, method, path, key string, in, out any) error {
	if method != http.MethodGet && key == "" {
		return errors.New("payments: a write needs an idempotency key")
	}
	err := c.c.Do(ctx, client.Call{Method: method, Path: path, In: in, Out: out, IdempotencyKey: key})
	return classify(err)
}

// kinds maps payments' problem types to sentinels.
var kinds = map[string]error{
	ProblemOrderVoided:     ErrOrderVoided,
	ProblemAlreadyCaptured: ErrAlreadyCaptured,
	ProblemPaymentVoided:   ErrPaymentVoided,
	ProblemNotAuthorized:   ErrNotAuthorized,
	ProblemNotCaptured:     ErrNotCaptured,
	ProblemRefundExceeds:   ErrRefundExceeds,
	ProblemKeyReuse:        ErrKeyReuse,
}

// classify turns a problem answered by payments into the contract's
// errors. Other errors (client.ErrUnavailable) pass unchanged.
func classify(err error) error {
	p := problem.From(err)
	if p == nil || errors.Is(err, client.ErrUnavailable) {
		return err
	}
	slug := p.Type[strings.LastIndex(p.Type, "/")+1:]
	switch {
	case p.Status == http.StatusPaymentRequired && slug == ProblemDeclined:
		reason, _ := p.Extensions["reason"].(string)
		id, _ := p.Extensions["payment_id"].(string)
		return &DeclinedError{Reason: reason, PaymentID: id, Problem: p}
	case p.Status == http.StatusNotFound:
		return &client.Error{Target: "payments", Kind: ErrNotFound, Problem: p}
	}
	return &client.Error{Target: "payments", Kind: kinds[slug], Problem: p}
}
