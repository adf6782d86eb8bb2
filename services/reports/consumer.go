package reports

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// subscription is one subject reports consumes and how an event of it
// changes the read model.
type subscription struct {
	service string // the publishing service, whose stream carries the subject
	subject string
	apply   func(ctx context.Context, tx *sql.Tx, e events.Event) error
}

// subscriptions lists every event reports reads. Each one only inserts
// its own rows or fills its own columns, keyed by ids the events carry,
// and reports sum them when asked: that is what makes the model the same
// whatever order the events arrive in (docs/reports.md).
func (s *Service) subscriptions() []subscription {
	return []subscription{
		{"orders", "orders.confirmed", s.orderConfirmed},
		{"orders", "orders.rejected", s.orderRejected},
		{"orders", "orders.cancelled", s.orderCancelled},
		{"payments", "payments.captured", s.paymentCaptured},
		{"payments", "payments.refunded", s.paymentRefunded},
		{"payments", "payments.failed", s.paymentFailed},
		{"inventory", "inventory.reserved", s.stockReserved},
		{"inventory", "inventory.released", s.stockReleased},
		{"inventory", "inventory.low_stock", s.lowStock},
	}
}

// consumerName is the durable consumer of one subject:
// "orders.confirmed" -> "reports-orders-confirmed".
func consumerName(subject string) string { return events.DurableName("reports", subject) }

// newConsumers makes one inbox-guarded durable consumer per subject.
// One per subject, not one per stream with several filter subjects,
// because NATS servers before 2.10 cannot filter a consumer on several.
func (s *Service) newConsumers() []*events.Consumer {
	var out []*events.Consumer
	for _, sub := range s.subscriptions() {
		out = append(out, &events.Consumer{
			Name:     consumerName(sub.subject),
			Stream:   events.StreamName(sub.service),
			Subjects: []string{sub.subject},
			Handle:   s.handler(sub.apply),
			DB:       s.store.db,
		})
	}
	return out
}

// handler counts the event in report_state before applying it. That
// update takes the lock of the one report_state row, so every handler
// and a rebuild's wipe (which updates that row first too) run one after
// the other: on Postgres, a handler can never write into a table the
// wipe is emptying and have its inbox row survive without its effect.
func (s *Service) handler(apply func(context.Context, *sql.Tx, events.Event) error) events.Handler {
	return func(ctx context.Context, tx *sql.Tx, e events.Event) error {
		if err := s.store.countEvent(ctx, tx); err != nil {
			return fmt.Errorf("counting event %s: %w", e.ID, err)
		}
		return apply(ctx, tx, e)
	}
}

// errBadEvent marks an event whose content no retry can make usable.
var errBadEvent = errors.New("unusable event")

func bad(e events.Event, why string) error {
	return events.Permanent(fmt.Errorf("%w: %s %s: %s", errBadEvent, e.Type, e.ID, why))
}

// at is a time in the model's unit, unix milliseconds; a zero time falls
// back to the envelope's.
func at(t time.Time, e events.Event) int64 {
	if t.IsZero() {
		t = e.Time
	}
	return t.UnixMilli()
}

func checkLines(e events.Event, lines []ordersapi.Line) error {
	for _, l := range lines {
		if l.SKU == "" || l.Quantity <= 0 || l.PriceCents < 0 {
			return bad(e, "a line has no sku, no units or a negative price")
		}
	}
	return nil
}

func (s *Service) orderConfirmed(ctx context.Context, tx *sql.Tx, e events.Event) error {
	var b ordersapi.OrderConfirmed
	if err := e.DecodeSince(&b, 1); err != nil { // version 1 also had the email, which reports never kept
		return err
	}
	if b.OrderID == "" || b.TotalCents < 0 {
		return bad(e, "no order id or a negative total")
	}
	if err := checkLines(e, b.Lines); err != nil {
		return err
	}
	return s.store.confirmOrder(ctx, tx, b, at(b.ConfirmedAt, e))
}

func (s *Service) orderRejected(ctx context.Context, tx *sql.Tx, e events.Event) error {
	var b ordersapi.OrderRejected
	if err := e.DecodeSince(&b, 1); err != nil { // version 1 also had the email, which reports never kept
		return err
	}
	if b.OrderID == "" {
		return bad(e, "no order id")
	}
	return s.store.rejectOrder(ctx, tx, b, at(b.RejectedAt, e))
}

func (s *Service) orderCancelled(ctx context.Context, tx *sql.Tx, e events.Event) error {
	var b ordersapi.OrderCancelled
	if err := e.DecodeSince(&b, 1); err != nil { // version 1 also had the email, which reports never kept
		return err
	}
	if b.OrderID == "" || b.TotalCents < 0 {
		return bad(e, "no order id or a negative total")
	}
	if err := checkLines(e, b.Lines); err != nil {
		return err
	}
	return s.store.cancelOrder(ctx, tx, b, at(b.CancelledAt, e))
}

func (s *Service) paymentCaptured(ctx context.Context, tx *sql.Tx, e events.Event) error {
	var b paymentsapi.PaymentCaptured
	if err := e.Decode(&b); err != nil {
		return err
	}
	if b.PaymentID == "" || b.AmountCents < 0 {
		return bad(e, "no payment id or a negative amount")
	}
	return s.store.capturePayment(ctx, tx, b, e.Time.UnixMilli())
}

// paymentRefunded records one refund, dated by its event: the body has no
// time of its own.
func (s *Service) paymentRefunded(ctx context.Context, tx *sql.Tx, e events.Event) error {
	var b paymentsapi.PaymentRefunded
	if err := e.Decode(&b); err != nil {
		return err
	}
	if b.PaymentID == "" || b.AmountCents < 0 {
		return bad(e, "no payment id or a negative amount")
	}
	return s.store.refund(ctx, tx, e.ID, b, e.Time.UnixMilli())
}

func (s *Service) paymentFailed(ctx context.Context, tx *sql.Tx, e events.Event) error {
	var b paymentsapi.PaymentFailed
	if err := e.Decode(&b); err != nil {
		return err
	}
	if b.PaymentID == "" {
		return bad(e, "no payment id")
	}
	return s.store.failPayment(ctx, tx, b, e.Time.UnixMilli())
}

func (s *Service) stockReserved(ctx context.Context, tx *sql.Tx, e events.Event) error {
	var b inventoryapi.StockReserved
	if err := e.Decode(&b); err != nil {
		return err
	}
	if b.OrderID == "" {
		return bad(e, "no order id")
	}
	return s.store.reserve(ctx, tx, b.OrderID, e.Time.UnixMilli())
}

func (s *Service) stockReleased(ctx context.Context, tx *sql.Tx, e events.Event) error {
	var b inventoryapi.StockReleased
	if err := e.Decode(&b); err != nil {
		return err
	}
	if b.OrderID == "" {
		return bad(e, "no order id")
	}
	return s.store.release(ctx, tx, b, e.Time.UnixMilli())
}

func (s *Service) lowStock(ctx context.Context, tx *sql.Tx, e events.Event) error {
	var b inventoryapi.LowStock
	if err := e.Decode(&b); err != nil {
		return err
	}
	if b.SKU == "" {
		return bad(e, "no sku")
	}
	return s.store.lowStock(ctx, tx, e.ID, b, e.Time.UnixMilli())
}
