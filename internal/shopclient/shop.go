package shopclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/mailbox"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
	"github.com/microshop/microshop/services/reports/reportsapi"
)

// Test cards of payments' built-in processor.
const (
	CardApproved     = "4242 4242 4242 4242"
	CardDeclined     = "4000 0000 0000 0002"
	CardInsufficient = "4000 0000 0000 9995"
	CardSlow         = "4000 0000 0000 0077"
)

// TestCard is a card with number that expires in a few years.
func TestCard(number string) paymentsapi.Card {
	return paymentsapi.Card{Number: number, ExpMonth: 12, ExpYear: time.Now().Year() + 3, CVC: "123"}
}

// TestAddress is a shipping address for tools and tests.
var TestAddress = ordersapi.Address{Name: "Test Shopper", Street: "1 Test Road", City: "London", PostalCode: "N1 9GU", Country: "GB"}

// ProductQuery selects a page of the catalog.
type ProductQuery struct {
	Q         string // words of the name or description
	Limit     int    // 0: the API's default
	PageToken string
}

// Products reads a page of the catalog.
func (c *Client) Products(ctx context.Context, q ProductQuery) (Page[inventoryapi.Product], error) {
	var p Page[inventoryapi.Product]
	limit := ""
	if q.Limit > 0 {
		limit = strconv.Itoa(q.Limit)
	}
	err := c.Get(ctx, query("/api/inventory/products", "q", q.Q, "limit", limit, "page_token", q.PageToken), &p)
	if err == nil && p.Items == nil {
		err = fmt.Errorf("GET /api/inventory/products: %w: no items", ErrBadResponse)
	}
	return p, err
}

// Product reads one product.
func (c *Client) Product(ctx context.Context, sku string) (inventoryapi.Product, error) {
	var p inventoryapi.Product
	err := c.Get(ctx, "/api/inventory/products/"+url.PathEscape(sku), &p)
	if err == nil && p.SKU != sku {
		err = fmt.Errorf("GET /api/inventory/products/%s: %w: the answer is about %q", sku, ErrBadResponse, p.SKU)
	}
	return p, err
}

// Line is one product of a new order.
type Line = ordersapi.LineRequest

// NewOrder is a checkout: what to buy, where to ship it, how to pay.
type NewOrder = ordersapi.PlaceOrder

// Checkout is an order of lines to TestAddress paid with TestCard(card).
func Checkout(card string, lines ...Line) NewOrder {
	return NewOrder{Lines: lines, ShippingAddress: TestAddress, Card: TestCard(card)}
}

// PlaceOrder places an order under key: the same key sent again answers
// the same order. done is true for a 201 (the saga ended before the
// answer), false for a 202 (the order is PENDING: WaitOrder follows it).
func (s *Session) PlaceOrder(ctx context.Context, key string, o NewOrder) (order ordersapi.Order, done bool, err error) {
	res, err := s.Do(ctx, Request{Method: http.MethodPost, Path: "/api/orders", IdempotencyKey: key, Body: o,
		Want: []int{http.StatusCreated, http.StatusAccepted}}, &order)
	if err != nil {
		return order, false, err
	}
	if err := checkOrder("POST /api/orders", order); err != nil {
		return order, false, err
	}
	// The order is polled on the gateway, never where a Location points.
	if loc := res.Header.Get("Location"); loc != "" {
		if u, err := s.c.base.Parse(loc); err != nil || u.Host != s.c.base.Host {
			return order, false, fmt.Errorf("POST /api/orders: %w: Location %q is not on the gateway", ErrBadResponse, loc)
		}
	}
	return order, res.Status == http.StatusCreated, nil
}

func checkOrder(what string, o ordersapi.Order) error {
	if o.ID == "" || o.Status == "" {
		return fmt.Errorf("%s: %w: an order without id or status", what, ErrBadResponse)
	}
	return nil
}

// Order reads one of the session's orders (any order, for an admin).
func (s *Session) Order(ctx context.Context, id string) (ordersapi.Order, error) {
	var o ordersapi.Order
	path := "/api/orders/" + url.PathEscape(id)
	if err := s.Get(ctx, path, &o); err != nil {
		return o, err
	}
	return o, checkOrder("GET "+path, o)
}

// WaitOrder polls an order until it is no longer PENDING, or ctx ends.
func (s *Session) WaitOrder(ctx context.Context, id string) (ordersapi.Order, error) {
	wait := 10 * time.Millisecond
	for {
		o, err := s.Order(ctx, id)
		if err != nil || o.Status != ordersapi.StatusPending {
			return o, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return o, fmt.Errorf("waiting for order %s: still %s: %w", id, o.Status, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// Checkout places an order and waits for its final state.
func (s *Session) Checkout(ctx context.Context, key string, o NewOrder) (ordersapi.Order, error) {
	order, done, err := s.PlaceOrder(ctx, key, o)
	if err != nil || done {
		return order, err
	}
	return s.WaitOrder(ctx, order.ID)
}

// CancelOrder cancels a confirmed order; it answers the order, CANCELLED
// or (202) on its way there. Cancelling again changes nothing.
func (s *Session) CancelOrder(ctx context.Context, id string) (ordersapi.Order, error) {
	var o ordersapi.Order
	_, err := s.Do(ctx, Request{Method: http.MethodPost, Path: "/api/orders/" + url.PathEscape(id) + "/cancel",
		Want: []int{http.StatusOK, http.StatusAccepted}}, &o)
	return o, err
}

// Orders reads a page of the session's orders, newest first.
func (s *Session) Orders(ctx context.Context, limit int, pageToken string) (Page[ordersapi.Order], error) {
	var p Page[ordersapi.Order]
	err := s.Get(ctx, query("/api/orders", "limit", strconv.Itoa(limit), "page_token", pageToken), &p)
	if err == nil && p.Items == nil {
		err = fmt.Errorf("GET /api/orders: %w: no items", ErrBadResponse)
	}
	return p, err
}

// AllOrders reads every customer's orders (admin).
func (s *Session) AllOrders(ctx context.Context) ([]ordersapi.Order, error) {
	return all[ordersapi.Order](ctx, s, "/api/orders?all=true&limit=100")
}

// Saga reads an order's saga log.
func (s *Session) Saga(ctx context.Context, id string) ([]ordersapi.SagaEntry, error) {
	var p Page[ordersapi.SagaEntry]
	return p.Items, s.Get(ctx, "/api/orders/"+url.PathEscape(id)+"/saga", &p)
}

// Stock reads every product's stock (admin).
func (s *Session) Stock(ctx context.Context) ([]inventoryapi.StockLevel, error) {
	var p Page[inventoryapi.StockLevel]
	return p.Items, s.Get(ctx, "/api/inventory/stock", &p)
}

// Restock receives quantity more units of sku (admin).
func (s *Session) Restock(ctx context.Context, sku string, quantity int64) (inventoryapi.StockLevel, error) {
	var l inventoryapi.StockLevel
	_, err := s.Do(ctx, Request{Method: http.MethodPost, Path: "/api/inventory/products/" + url.PathEscape(sku) + "/restock",
		Body: map[string]int64{"quantity": quantity}, Want: []int{http.StatusOK}}, &l)
	return l, err
}

// NewProduct is a product to add to the catalog, with its first stock.
type NewProduct = inventoryapi.NewProduct

// CreateProduct adds a product (admin).
func (s *Session) CreateProduct(ctx context.Context, p NewProduct) (inventoryapi.Product, error) {
	var out inventoryapi.Product
	_, err := s.Do(ctx, Request{Method: http.MethodPost, Path: "/api/inventory/products", Body: p, Want: []int{http.StatusCreated}}, &out)
	return out, err
}

// SetPrice changes a product's price (admin).
func (s *Session) SetPrice(ctx context.Context, sku string, priceCents int64) (inventoryapi.Product, error) {
	var out inventoryapi.Product
	_, err := s.Do(ctx, Request{Method: http.MethodPatch, Path: "/api/inventory/products/" + url.PathEscape(sku),
		Body: map[string]int64{"price_cents": priceCents}, Want: []int{http.StatusOK}}, &out)
	return out, err
}

// Payments reads every payment (admin).
func (s *Session) Payments(ctx context.Context) ([]paymentsapi.Payment, error) {
	return all[paymentsapi.Payment](ctx, s, "/api/payments?limit=100")
}

// Ledger reads payments' ledger (admin).
func (s *Session) Ledger(ctx context.Context) (paymentsapi.Ledger, error) {
	var l paymentsapi.Ledger
	return l, s.Get(ctx, "/api/payments/ledger", &l)
}

// Summary reads reports' figures over all time in currency ("" for the
// shop's own) (admin).
func (s *Session) Summary(ctx context.Context, currency string) (reportsapi.Summary, error) {
	var out reportsapi.Summary
	return out, s.Get(ctx, query("/api/reports/summary", "currency", currency), &out)
}

// Sales reads reports' sales by bucket (hour, day, week) over [from, to)
// (admin).
func (s *Session) Sales(ctx context.Context, bucket string, from, to time.Time) (reportsapi.Sales, error) {
	var out reportsapi.Sales
	return out, s.Get(ctx, query("/api/reports/sales", "bucket", bucket,
		"from", from.UTC().Format(time.RFC3339), "to", to.UTC().Format(time.RFC3339)), &out)
}

// MailFilter selects messages of run's built-in mailbox.
type MailFilter struct {
	To, Subject string // parts of the recipients and the subject
	Limit       int    // 0: 1000, the most the mailbox shows
}

// Mailbox reads the newest messages of run's built-in mailbox (admin).
func (s *Session) Mailbox(ctx context.Context, f MailFilter) ([]mailbox.Message, error) {
	if f.Limit == 0 {
		f.Limit = 1000
	}
	var p Page[mailbox.Message]
	return p.Items, s.Get(ctx, query("/api/mailbox/messages", "limit", strconv.Itoa(f.Limit), "to", f.To, "subject", f.Subject), &p)
}

// ReceiptSubject is the subject of the receipt notifications mails for a
// confirmed order (its template's).
func ReceiptSubject(orderID string) string {
	return "Your microshop order " + orderID + " is confirmed"
}

// ReceiptOf returns the order whose receipt m is, if m is a receipt.
func ReceiptOf(m mailbox.Message) (orderID string, ok bool) {
	id, prefixed := strings.CutPrefix(m.Subject, "Your microshop order ")
	id, ok = strings.CutSuffix(id, " is confirmed")
	return id, prefixed && ok
}

// Receipts reads the receipts in run's built-in mailbox sent to to (""
// for anyone) and counts them per order and per Message-ID (admin).
func (s *Session) Receipts(ctx context.Context, to string) (perOrder, perMessageID map[string]int, err error) {
	box, err := s.Mailbox(ctx, MailFilter{To: to, Subject: " is confirmed"})
	if err != nil {
		return nil, nil, err
	}
	perOrder, perMessageID = map[string]int{}, map[string]int{}
	for _, m := range box {
		if id, ok := ReceiptOf(m); ok {
			perOrder[id]++
			perMessageID[m.MessageID]++
		}
	}
	return perOrder, perMessageID, nil
}

// Stream is one of the broker's streams as run's telemetry reports it.
type Stream struct {
	Name      string     `json:"name"`
	Messages  uint64     `json:"messages"`
	Consumers []Consumer `json:"consumers"`
}

// Consumer is one durable consumer of a stream.
type Consumer struct {
	Name string `json:"name"`
	// Lag is how many events wait for it; AckPending were given to it
	// and not yet acknowledged.
	Lag         uint64 `json:"lag"`
	AckPending  int    `json:"ack_pending"`
	Redelivered int    `json:"redelivered"`
}

// Streams reads the broker's streams and their consumers' lag (admin).
func (s *Session) Streams(ctx context.Context) ([]Stream, error) {
	var p Page[Stream]
	return p.Items, s.Get(ctx, "/api/telemetry/streams", &p)
}
