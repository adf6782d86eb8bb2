// Package reportsapi is the contract of reports, what other programs may know of it: the shapes
// of its admin API. reports publishes no events and serves no internal
// routes; the CLI, the invariant checker and tests read these types.
package reportsapi

import "time"

// Buckets of the sales report. Boundaries are in UTC; a week starts on
// Monday (ISO 8601).
const (
	BucketHour = "hour"
	BucketDay  = "day"
	BucketWeek = "week"
)

// RebuildingHeader is set on every report answered while a rebuild runs;
// its value is the rebuild's id. The figures are then partial.
const RebuildingHeader = "X-Reports-Rebuilding"

// Figures are the sales figures of a bucket or of a whole report. Money is
// in minor units of the report's currency.
type Figures struct {
	// Orders is how many orders were confirmed (by confirmation time).
	Orders int64 `json:"orders"`
	// RevenueCents is the total of the orders confirmed, cancelled ones
	// included: their money comes back as refunds.
	RevenueCents int64 `json:"revenue_cents"`
	// RefundsCents is the money refunded (by refund time).
	RefundsCents int64 `json:"refunds_cents"`
	// NetCents is RevenueCents - RefundsCents.
	NetCents int64 `json:"net_cents"`
}

// Bucket is one hour, day or week of sales.
type Bucket struct {
	Start time.Time `json:"start"`
	Figures
}

// Sales is GET /api/reports/sales: every bucket of [From, To), empty
// ones included, and the totals of the range.
type Sales struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Bucket   string    `json:"bucket"`
	Currency string    `json:"currency"`
	Buckets  []Bucket  `json:"buckets"`
	Totals   Figures   `json:"totals"`
	// Rebuilding says the read model is being rebuilt: figures are partial.
	Rebuilding bool `json:"rebuilding,omitempty"`
}

// Product is one product's sales in a range, by the confirmation time of
// its orders.
type Product struct {
	SKU string `json:"sku"`
	// Units sold in orders that are still confirmed: the units of orders
	// cancelled since are not in it, but in CancelledUnits.
	Units          int64 `json:"units"`
	CancelledUnits int64 `json:"cancelled_units"`
	// RevenueCents is the money of Units, at the orders' prices.
	RevenueCents int64 `json:"revenue_cents"`
}

// TopProducts is GET /api/reports/top-products, best sellers first.
type TopProducts struct {
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Currency   string    `json:"currency"`
	Items      []Product `json:"items"`
	Rebuilding bool      `json:"rebuilding,omitempty"`
}

// Summary is GET /api/reports/summary: figures over all time. Order
// counts follow orders' statuses (a confirmed order later cancelled counts
// as cancelled) and cover every currency; money is in Currency.
type Summary struct {
	Currency        string `json:"currency"`
	OrdersConfirmed int64  `json:"orders_confirmed"`
	OrdersRejected  int64  `json:"orders_rejected"`
	OrdersCancelled int64  `json:"orders_cancelled"`
	// RevenueCents is the total of every order ever confirmed; once the
	// system settles, RevenueCents - RefundsCents (NetCents) is the total
	// of the orders that are CONFIRMED.
	RevenueCents int64 `json:"revenue_cents"`
	RefundsCents int64 `json:"refunds_cents"`
	NetCents     int64 `json:"net_cents"`
	// CapturedCents is what payments captured; once settled it equals
	// RevenueCents (every confirmed order has one capture of its total).
	CapturedCents       int64 `json:"captured_cents"`
	PaymentsFailed      int64 `json:"payments_failed"`
	ReservationsExpired int64 `json:"reservations_expired"`
	LowStockAlerts      int64 `json:"low_stock_alerts"`
	// EventsApplied counts the events the read model holds, each once.
	EventsApplied int64 `json:"events_applied"`
	// EventsDeadLettered counts events no retry can apply (an unknown
	// version, a body that does not decode), kept aside for a person.
	EventsDeadLettered int64 `json:"events_dead_lettered"`
	Rebuilding         bool  `json:"rebuilding,omitempty"`
}

// LowStockAlert is one inventory.low_stock event.
type LowStockAlert struct {
	SKU       string    `json:"sku"`
	Name      string    `json:"name"`
	Available int64     `json:"available"`
	Threshold int64     `json:"threshold"`
	At        time.Time `json:"at"`
}

// LowStock is GET /api/reports/low-stock, newest first.
type LowStock struct {
	Items      []LowStockAlert `json:"items"`
	Rebuilding bool            `json:"rebuilding,omitempty"`
}

// Rebuild states.
const (
	RebuildIdle    = "idle"
	RebuildRunning = "running"
	RebuildDone    = "done"
	RebuildFailed  = "failed"
)

// Rebuild is the latest rebuild of the read model and its progress.
type Rebuild struct {
	// ID is empty while no rebuild ever ran (State idle).
	ID    string `json:"id,omitempty"`
	State string `json:"state"`
	// Applied is how many stream messages the rebuild has replayed; Total
	// is how many the streams held when it began.
	Applied    int64      `json:"applied"`
	Total      int64      `json:"total"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Error      string     `json:"error,omitempty"`
}
