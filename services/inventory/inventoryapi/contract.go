// Package inventoryapi is the contract of inventory, what other services may know of it: the
// shapes of its public and internal APIs, its event types, and a typed
// client for the internal reservation routes that orders calls. Nothing
// here reaches inventory's internals or database.
package inventoryapi

import (
	"errors"
	"time"
)

// NewProduct is the body of POST /api/inventory/products: a product to
// add to the catalog, with the units received with it.
type NewProduct struct {
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	PriceCents  int64  `json:"price_cents"`
	Currency    string `json:"currency"`
	// Stock is the number of units received with the product.
	Stock int64 `json:"stock"`
}

// Product is a catalog entry as the public API returns it.
type Product struct {
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	PriceCents  int64  `json:"price_cents"`
	Currency    string `json:"currency"`
	// Available is how many units can be reserved now.
	Available int64 `json:"available"`
}

// StockLevel is one product's stock as admins see it. Stock is conserved:
// Received == Available + Reserved + Sold, always.
type StockLevel struct {
	SKU       string `json:"sku"`
	Received  int64  `json:"received"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
	Sold      int64  `json:"sold"`
}

// ReserveRequest asks inventory to hold stock for an order. It is
// idempotent by OrderID: sending it again returns the reservation made
// the first time.
type ReserveRequest struct {
	OrderID string        `json:"order_id"`
	Lines   []ReserveLine `json:"lines"`
}

// ReserveLine is one product and how many units of it to hold.
type ReserveLine struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// QuoteRequest asks for the current prices of some lines, reserving
// nothing.
type QuoteRequest struct {
	Lines []ReserveLine `json:"lines"`
}

// Quote prices lines at the catalog's current prices. A reservation made
// later may differ if an admin changes a price in between; the
// reservation's prices are the ones that hold.
type Quote struct {
	Lines      []ReservationLine `json:"lines"`
	TotalCents int64             `json:"total_cents"`
	Currency   string            `json:"currency"`
}

// Reservation statuses.
const (
	StatusHeld      = "held"
	StatusCommitted = "committed"
	StatusReleased  = "released"
)

// Reasons a reservation was released.
const (
	ReasonReleased = "released" // the order asked for it
	ReasonExpired  = "expired"  // nobody committed it in time
)

// Reservation is stock held, sold or given back for one order.
type Reservation struct {
	OrderID string `json:"order_id"`
	// Status is held, committed or released.
	Status string            `json:"status"`
	Lines  []ReservationLine `json:"lines"`
	// TotalCents is the sum of the lines at the prices of reservation time.
	TotalCents int64     `json:"total_cents"`
	Currency   string    `json:"currency"`
	CreatedAt  time.Time `json:"created_at"`
	// ExpiresAt is when a held reservation is released unless committed.
	ExpiresAt time.Time `json:"expires_at"`
	// ReleaseReason says why a released reservation was released.
	ReleaseReason string `json:"release_reason,omitempty"`
}

// ReservationLine is a held line with its price at reservation time.
type ReservationLine struct {
	SKU        string `json:"sku"`
	Quantity   int64  `json:"quantity"`
	PriceCents int64  `json:"price_cents"`
	Currency   string `json:"currency"`
}

// Errors the internal API answers with, as the Client reports them.
var (
	// ErrOutOfStock: some line asks for more than is available; nothing
	// was reserved. The error is an *OutOfStockError naming the skus (the
	// problem's "skus" member).
	ErrOutOfStock = errors.New("out of stock")
	// ErrReservationReleased: the reservation was released or expired, so
	// it can no longer be committed.
	ErrReservationReleased = errors.New("the reservation was released or has expired")
	// ErrReservationMismatch: the order id was already reserved with other lines.
	ErrReservationMismatch = errors.New("the order id was already reserved with other lines")
	// ErrNotFound: no reservation for this order id.
	ErrNotFound = errors.New("no reservation for this order")
)

// Problem type slugs of inventory's own problems (after
// https://microshop.dev/problems/).
const (
	ProblemOutOfStock          = "out-of-stock"
	ProblemReservationReleased = "reservation-released"
	ProblemReservationMismatch = "reservation-mismatch"
)

// StockReserved is published when stock is held for an order.
type StockReserved struct {
	OrderID    string            `json:"order_id"`
	Lines      []ReservationLine `json:"lines"`
	TotalCents int64             `json:"total_cents"`
	Currency   string            `json:"currency"`
}

func (StockReserved) EventType() string { return "inventory.reserved" }
func (StockReserved) EventVersion() int { return 1 }

// StockReleased is published when a reservation gives its stock back:
// because the order asked (reason "released", also after a commit when a
// confirmed order is cancelled) or because it expired (reason "expired").
type StockReleased struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
	// PreviousStatus is held or committed.
	PreviousStatus string            `json:"previous_status"`
	Lines          []ReservationLine `json:"lines"`
}

func (StockReleased) EventType() string { return "inventory.released" }
func (StockReleased) EventVersion() int { return 1 }

// LowStock is published when a reservation takes a product's available
// stock from at or above the threshold to below it, once per crossing.
type LowStock struct {
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Available int64  `json:"available"`
	Threshold int64  `json:"threshold"`
}

func (LowStock) EventType() string { return "inventory.low_stock" }
func (LowStock) EventVersion() int { return 1 }
