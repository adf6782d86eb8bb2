package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// Test cards of payments' simulated card processor.
const (
	cardApproved     = "4242424242424242"
	cardDeclined     = "4000000000000002"
	cardInsufficient = "4000000000009995"
	cardSlow         = "4000000000000077"
)

// api talks to the system's gateway as its clients do.
type api struct {
	gw string
	hc *http.Client
}

func newAPI(gateway string) *api {
	return &api{gw: gateway, hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second,
	}}}
}

// apiError is an answer that was not the one wanted.
type apiError struct {
	method, path string
	status       int
	body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, strings.TrimSpace(e.body))
}

// do sends one request and returns the status and body; err is set only
// when no answer came.
func (a *api) do(ctx context.Context, method, path, token string, body any, headers ...string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.gw+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// call sends one request and decodes the answer into out when its status
// is want.
func (a *api) call(ctx context.Context, method, path, token string, body any, want int, out any, headers ...string) error {
	status, b, err := a.do(ctx, method, path, token, body, headers...)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status != want {
		return &apiError{method: method, path: path, status: status, body: string(b)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

func (a *api) get(ctx context.Context, path, token string, out any) error {
	return a.call(ctx, http.MethodGet, path, token, nil, http.StatusOK, out)
}

// login returns an access token.
func (a *api) login(ctx context.Context, email, password string) (string, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err := a.call(ctx, http.MethodPost, "/api/users/login", "", map[string]string{"email": email, "password": password}, http.StatusOK, &tok)
	return tok.AccessToken, err
}

// customer is a registered, logged-in shopper.
type customer struct {
	Email, Password, Token string
}

// customers registers and logs in n customers at once.
func (a *api) customers(ctx context.Context, prefix string, n int) ([]customer, error) {
	out := make([]customer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c := customer{Email: fmt.Sprintf("%s-%d@demo.example", prefix, i+1), Password: "demo password " + prefix}
			if err := a.call(ctx, http.MethodPost, "/api/users/register", "",
				map[string]string{"email": c.Email, "password": c.Password, "name": fmt.Sprintf("Shopper %d", i+1)}, http.StatusCreated, nil); err != nil {
				errs[i] = err
				return
			}
			c.Token, errs[i] = a.login(ctx, c.Email, c.Password)
			out[i] = c
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// createProduct adds a product with stock units (as an admin).
func (a *api) createProduct(ctx context.Context, admin, sku, name string, priceCents, stock int64) error {
	return a.call(ctx, http.MethodPost, "/api/inventory/products", admin, map[string]any{
		"sku": sku, "name": name, "description": "A product the demo made for itself.",
		"price_cents": priceCents, "currency": "USD", "stock": stock,
	}, http.StatusCreated, nil)
}

// orderBody is a checkout of lines paid with card.
func orderBody(card string, lines ...ordersapi.Line) map[string]any {
	var ls []map[string]any
	for _, l := range lines {
		ls = append(ls, map[string]any{"sku": l.SKU, "quantity": l.Quantity})
	}
	return map[string]any{
		"lines":            ls,
		"shipping_address": map[string]string{"name": "Demo Shopper", "street": "1 Demo Way", "city": "Lisbon", "postal_code": "1100-148", "country": "PT"},
		"card":             map[string]any{"number": card, "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"},
	}
}

// line is one line of an order.
func line(sku string, qty int64) ordersapi.Line { return ordersapi.Line{SKU: sku, Quantity: qty} }

// checkout places one order and waits for its final state (polling after
// a 202).
func (a *api) checkout(ctx context.Context, token, key, card string, lines ...ordersapi.Line) (ordersapi.Order, error) {
	var o ordersapi.Order
	status, b, err := a.do(ctx, http.MethodPost, "/api/orders", token, orderBody(card, lines...), "Idempotency-Key", key)
	if err != nil {
		return o, fmt.Errorf("POST /api/orders: %w", err)
	}
	if status != http.StatusCreated && status != http.StatusAccepted {
		return o, &apiError{method: http.MethodPost, path: "/api/orders", status: status, body: string(b)}
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return o, err
	}
	return a.await(ctx, token, o)
}

// await polls a pending order until it is final, for up to 30 seconds.
func (a *api) await(ctx context.Context, token string, o ordersapi.Order) (ordersapi.Order, error) {
	deadline := time.Now().Add(30 * time.Second)
	for o.Status == ordersapi.StatusPending {
		if time.Now().After(deadline) {
			return o, fmt.Errorf("order %s is still PENDING after 30s", o.ID)
		}
		select {
		case <-ctx.Done():
			return o, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if err := a.get(ctx, "/api/orders/"+o.ID, token, &o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// saga returns an order's saga log.
func (a *api) saga(ctx context.Context, token, id string) ([]ordersapi.SagaEntry, error) {
	var l struct{ Items []ordersapi.SagaEntry }
	err := a.get(ctx, "/api/orders/"+id+"/saga", token, &l)
	return l.Items, err
}

// stock returns every product's stock (admin).
func (a *api) stock(ctx context.Context, admin string) (map[string]inventoryapi.StockLevel, error) {
	var l struct{ Items []inventoryapi.StockLevel }
	if err := a.get(ctx, "/api/inventory/stock", admin, &l); err != nil {
		return nil, err
	}
	out := map[string]inventoryapi.StockLevel{}
	for _, s := range l.Items {
		out[s.SKU] = s
	}
	return out, nil
}

// ledger returns payments' ledger (admin).
func (a *api) ledger(ctx context.Context, admin string) (paymentsapi.Ledger, error) {
	var l paymentsapi.Ledger
	err := a.get(ctx, "/api/payments/ledger", admin, &l)
	return l, err
}

// message is one email in run's built-in mailbox.
type message struct {
	MessageID string   `json:"message_id"`
	To        []string `json:"to"`
	Subject   string   `json:"subject"`
}

// receipts reads the mailbox (admin) and counts the order receipts
// ("Your microshop order <id> is confirmed") per order id, and the
// messages per Message-ID.
func (a *api) receipts(ctx context.Context, admin string) (perOrder, perMessageID map[string]int, err error) {
	var box struct{ Items []message }
	if err := a.get(ctx, "/api/mailbox/messages?limit=1000&subject="+url.QueryEscape(" is confirmed"), admin, &box); err != nil {
		return nil, nil, err
	}
	perOrder, perMessageID = map[string]int{}, map[string]int{}
	for _, m := range box.Items {
		id, ok := strings.CutPrefix(m.Subject, "Your microshop order ")
		if !ok || !strings.HasSuffix(id, " is confirmed") {
			continue
		}
		perOrder[strings.TrimSuffix(id, " is confirmed")]++
		perMessageID[m.MessageID]++
	}
	return perOrder, perMessageID, nil
}

// salesSummary is the part of reports' GET /api/reports/summary the
// demos compare with the orders.
type salesSummary struct {
	Currency        string `json:"currency"`
	OrdersConfirmed int64  `json:"orders_confirmed"`
	OrdersRejected  int64  `json:"orders_rejected"`
	OrdersCancelled int64  `json:"orders_cancelled"`
	RevenueCents    int64  `json:"revenue_cents"`
	RefundsCents    int64  `json:"refunds_cents"`
	NetCents        int64  `json:"net_cents"`
	CapturedCents   int64  `json:"captured_cents"`
	EventsApplied   int64  `json:"events_applied"`
}

func (a *api) summary(ctx context.Context, admin string) (salesSummary, error) {
	var s salesSummary
	err := a.get(ctx, "/api/reports/summary?currency=USD", admin, &s)
	return s, err
}
