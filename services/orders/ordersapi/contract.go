// Package ordersapi is the contract of orders, what other services may know of it: the shapes
// of its API and the events it publishes. Nothing here reaches orders'
// internals or database.
package ordersapi

import "time"

// Order statuses. PENDING is the only one that is not final, except that
// a CONFIRMED order may later be CANCELLED.
const (
	StatusPending   = "PENDING"
	StatusConfirmed = "CONFIRMED"
	StatusRejected  = "REJECTED"
	StatusCancelled = "CANCELLED"
)

// Reasons an order was rejected.
const (
	ReasonOutOfStock           = "out_of_stock"
	ReasonPaymentDeclined      = "payment_declined"
	ReasonPaymentUnavailable   = "payment_unavailable"
	ReasonInventoryUnavailable = "inventory_unavailable"
	ReasonReservationExpired   = "reservation_expired"
	// ReasonInterrupted: orders stopped before the card was charged and,
	// since it never stores card numbers, cannot charge it after a restart.
	ReasonInterrupted = "interrupted"
)

// Line is one product of an order.
type Line struct {
	SKU        string `json:"sku"`
	Quantity   int64  `json:"quantity"`
	PriceCents int64  `json:"price_cents"`
}

// Address is where an order ships.
type Address struct {
	Name       string `json:"name"`
	Street     string `json:"street"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// CardSummary is what an order keeps of the card: never the number.
type CardSummary struct {
	Brand string `json:"brand"`
	Last4 string `json:"last4"`
}

// Order is an order as the API returns it.
type Order struct {
	ID              string      `json:"id"`
	Status          string      `json:"status"`
	Reason          string      `json:"reason,omitempty"`
	Lines           []Line      `json:"lines"`
	TotalCents      int64       `json:"total_cents"`
	Currency        string      `json:"currency"`
	ShippingAddress Address     `json:"shipping_address"`
	Card            CardSummary `json:"card"`
	PaymentID       string      `json:"payment_id,omitempty"`
	CreatedAt       time.Time   `json:"created_at"`
	UpdatedAt       time.Time   `json:"updated_at"`
}

// The orders.* events name the customer by id only (version 2). Version
// 1 also carried the customer's email, which left personal data in the
// stream for as long as it keeps events; notifications now learns the
// address from users (docs/privacy.md). Consumers decode both with
// events.Event.DecodeSince(&body, 1) until the version 1 events have
// aged out of the stream; the V1 types below document them.

// OrderConfirmed is published when an order is paid and its stock sold.
type OrderConfirmed struct {
	OrderID     string    `json:"order_id"`
	UserID      string    `json:"user_id"`
	Lines       []Line    `json:"lines"`
	TotalCents  int64     `json:"total_cents"`
	Currency    string    `json:"currency"`
	PaymentID   string    `json:"payment_id"`
	ConfirmedAt time.Time `json:"confirmed_at"`
}

func (OrderConfirmed) EventType() string { return "orders.confirmed" }
func (OrderConfirmed) EventVersion() int { return 2 }

// OrderRejected is published when an order cannot be completed.
type OrderRejected struct {
	OrderID    string    `json:"order_id"`
	UserID     string    `json:"user_id"`
	Reason     string    `json:"reason"`
	Lines      []Line    `json:"lines"`
	TotalCents int64     `json:"total_cents"`
	Currency   string    `json:"currency"`
	RejectedAt time.Time `json:"rejected_at"`
}

func (OrderRejected) EventType() string { return "orders.rejected" }
func (OrderRejected) EventVersion() int { return 2 }

// OrderCancelled is published when a confirmed order has been refunded
// and its stock returned.
type OrderCancelled struct {
	OrderID       string    `json:"order_id"`
	UserID        string    `json:"user_id"`
	Lines         []Line    `json:"lines"`
	TotalCents    int64     `json:"total_cents"`
	RefundedCents int64     `json:"refunded_cents"`
	Currency      string    `json:"currency"`
	CancelledAt   time.Time `json:"cancelled_at"`
}

func (OrderCancelled) EventType() string { return "orders.cancelled" }
func (OrderCancelled) EventVersion() int { return 2 }

// OrderConfirmedV1 is orders.confirmed as orders published it before
// version 2: with the customer's email.
type OrderConfirmedV1 struct {
	OrderID     string    `json:"order_id"`
	UserID      string    `json:"user_id"`
	Email       string    `json:"email"`
	Lines       []Line    `json:"lines"`
	TotalCents  int64     `json:"total_cents"`
	Currency    string    `json:"currency"`
	PaymentID   string    `json:"payment_id"`
	ConfirmedAt time.Time `json:"confirmed_at"`
}

func (OrderConfirmedV1) EventType() string { return "orders.confirmed" }
func (OrderConfirmedV1) EventVersion() int { return 1 }

// OrderRejectedV1 is orders.rejected before version 2: with the email.
type OrderRejectedV1 struct {
	OrderID    string    `json:"order_id"`
	UserID     string    `json:"user_id"`
	Email      string    `json:"email"`
	Reason     string    `json:"reason"`
	Lines      []Line    `json:"lines"`
	TotalCents int64     `json:"total_cents"`
	Currency   string    `json:"currency"`
	RejectedAt time.Time `json:"rejected_at"`
}

func (OrderRejectedV1) EventType() string { return "orders.rejected" }
func (OrderRejectedV1) EventVersion() int { return 1 }

// OrderCancelledV1 is orders.cancelled before version 2: with the email.
type OrderCancelledV1 struct {
	OrderID       string    `json:"order_id"`
	UserID        string    `json:"user_id"`
	Email         string    `json:"email"`
	Lines         []Line    `json:"lines"`
	TotalCents    int64     `json:"total_cents"`
	RefundedCents int64     `json:"refunded_cents"`
	Currency      string    `json:"currency"`
	CancelledAt   time.Time `json:"cancelled_at"`
}

func (OrderCancelledV1) EventType() string { return "orders.cancelled" }
func (OrderCancelledV1) EventVersion() int { return 1 }

// SagaEntry is one line of an order's saga log.
type SagaEntry struct {
	Step   string    `json:"step"`
	Event  string    `json:"event"` // started, succeeded, failed, retrying
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}
