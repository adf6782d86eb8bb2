package reports

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
	"github.com/microshop/microshop/services/reports/reportsapi"
)

// Scenario is a week of a shop's events, as orders, payments and
// inventory publish them, with the figures reports must arrive at. The
// black-box tests publish it to NATS; the internal ones apply it in many
// orders. It is exported (from a test file) for both.
type Scenario struct {
	// Events in publish order, which is out of order on purpose: order
	// o3's refund and cancellation come before its confirmation.
	Events []events.Event
	// Redelivered is one of Events, to deliver a second time.
	Redelivered events.Event
	// Unknown is an orders.confirmed of a major version reports does not
	// know: it must go to the dead letters.
	Unknown events.Event
	// During are events published while a rebuild runs: o10 confirmed,
	// 250 (1 C), the next Tuesday.
	During []events.Event
	// Later are events published while reports is down: o8 confirmed,
	// 300 (1 A), the next Monday.
	Later []events.Event
}

// Monday is the scenario's first day, a Monday, 2025-03-03.
var Monday = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

func day(n int, clock string) time.Time {
	c, err := time.Parse("15:04:05.000", clock)
	if err != nil {
		panic(err)
	}
	return Monday.AddDate(0, 0, n).Add(time.Duration(c.Hour())*time.Hour + time.Duration(c.Minute())*time.Minute +
		time.Duration(c.Second())*time.Second + time.Duration(c.Nanosecond()))
}

func envelope(body events.Body, t time.Time) events.Event {
	data, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return events.Event{ID: ids.New(), Type: body.EventType(), Version: body.EventVersion(), Time: t, Data: data}
}

func lines(skuQty ...any) ([]ordersapi.Line, int64) {
	prices := map[string]int64{"SKU-A": 300, "SKU-B": 400, "SKU-C": 250, "SKU-E": 999}
	var out []ordersapi.Line
	var total int64
	for i := 0; i+1 < len(skuQty); i += 2 {
		sku, n := skuQty[i].(string), int64(skuQty[i+1].(int))
		out = append(out, ordersapi.Line{SKU: sku, Quantity: n, PriceCents: prices[sku]})
		total += n * prices[sku]
	}
	return out, total
}

func confirmed(id, currency string, t time.Time, skuQty ...any) events.Event {
	ls, total := lines(skuQty...)
	return envelope(ordersapi.OrderConfirmed{OrderID: id, UserID: "u-" + id, Lines: ls,
		TotalCents: total, Currency: currency, PaymentID: "pay-" + id, ConfirmedAt: t}, t)
}

func cancelled(id string, t time.Time, skuQty ...any) events.Event {
	ls, total := lines(skuQty...)
	return envelope(ordersapi.OrderCancelled{OrderID: id, UserID: "u-" + id, Lines: ls, TotalCents: total,
		RefundedCents: total, Currency: "USD", CancelledAt: t}, t)
}

func captured(id, currency string, amount int64, t time.Time) events.Event {
	return envelope(paymentsapi.PaymentCaptured{PaymentID: "pay-" + id, OrderID: id, AmountCents: amount, Currency: currency}, t)
}

func refunded(id string, amount, sofar int64, t time.Time) events.Event {
	return envelope(paymentsapi.PaymentRefunded{PaymentID: "pay-" + id, OrderID: id, AmountCents: amount,
		RefundedCentsTotal: sofar, Currency: "USD"}, t)
}

func reserved(id string, t time.Time) events.Event {
	return envelope(inventoryapi.StockReserved{OrderID: id, Currency: "USD"}, t)
}

// NewScenario makes the scenario's events, with fresh ids.
//
//	o1 confirmed Mon 10:15, 1000 (2 A, 1 B); 200 refunded Thu (a partial refund)
//	o2 confirmed Mon 10:45, 500 (2 C)
//	o3 confirmed Mon 11:05, 700 (1 A, 1 B); refunded and cancelled Wed
//	o4 confirmed Sun 23:59:59.999, 400 (1 B): the last instant of the week
//	o5 confirmed the next Monday 00:00, 250 (1 C)
//	o6 rejected Tue (payment declined)
//	o7 confirmed Tue in EUR, 999: counted, but not in USD money
//	two low-stock alerts, one reservation that expired
func NewScenario() Scenario {
	o3 := confirmed("o3", "USD", day(0, "11:05:00.000"), "SKU-A", 1, "SKU-B", 1)
	o2 := confirmed("o2", "USD", day(0, "10:45:00.000"), "SKU-C", 2)
	s := Scenario{
		Events: []events.Event{
			reserved("o1", day(0, "10:14:00.000")),
			reserved("o3", day(0, "11:04:00.000")),
			refunded("o3", 700, 700, day(2, "08:59:00.000")),
			cancelled("o3", day(2, "09:00:00.000"), "SKU-A", 1, "SKU-B", 1),
			captured("o1", "USD", 1000, day(0, "10:15:00.000")),
			confirmed("o1", "USD", day(0, "10:15:00.000"), "SKU-A", 2, "SKU-B", 1),
			o2,
			captured("o2", "USD", 500, day(0, "10:45:00.000")),
			o3,
			captured("o3", "USD", 700, day(0, "11:05:00.000")),
			envelope(paymentsapi.PaymentFailed{PaymentID: "pay-o6", OrderID: "o6", AmountCents: 300, Currency: "USD",
				Reason: paymentsapi.ReasonCardDeclined}, day(1, "09:00:00.000")),
			envelope(ordersapi.OrderRejected{OrderID: "o6", Reason: ordersapi.ReasonPaymentDeclined, TotalCents: 300,
				Currency: "USD", RejectedAt: day(1, "09:00:01.000")}, day(1, "09:00:01.000")),
			envelope(inventoryapi.StockReleased{OrderID: "o6", Reason: inventoryapi.ReasonReleased, PreviousStatus: inventoryapi.StatusHeld},
				day(1, "09:00:01.000")),
			envelope(inventoryapi.StockReleased{OrderID: "o9", Reason: inventoryapi.ReasonExpired, PreviousStatus: inventoryapi.StatusHeld},
				day(1, "10:00:00.000")),
			confirmed("o7", "EUR", day(1, "12:00:00.000"), "SKU-E", 1),
			captured("o7", "EUR", 999, day(1, "12:00:00.000")),
			envelope(inventoryapi.LowStock{SKU: "SKU-A", Name: "Anvil", Available: 3, Threshold: 5}, day(1, "13:00:00.000")),
			envelope(inventoryapi.LowStock{SKU: "SKU-D", Name: "=HYPERLINK(\"x\")", Available: 0, Threshold: 2}, day(2, "13:00:00.000")),
			refunded("o1", 200, 200, day(3, "12:00:00.000")),
			confirmed("o4", "USD", day(6, "23:59:59.999"), "SKU-B", 1),
			captured("o4", "USD", 400, day(6, "23:59:59.999")),
			confirmed("o5", "USD", day(7, "00:00:00.000"), "SKU-C", 1),
			captured("o5", "USD", 250, day(7, "00:00:00.000")),
		},
		Redelivered: o2,
		During: []events.Event{
			confirmed("o10", "USD", day(8, "09:00:00.000"), "SKU-C", 1),
			captured("o10", "USD", 250, day(8, "09:00:00.000")),
		},
		Later: []events.Event{
			confirmed("o8", "USD", day(7, "09:00:00.000"), "SKU-A", 1),
			captured("o8", "USD", 300, day(7, "09:00:00.000")),
		},
	}
	// One past the newest version orders publishes, so the fixture stays
	// unknown when orders.* moves on (version 2 became known once).
	s.Unknown = confirmed("o-next", "USD", day(0, "12:00:00.000"), "SKU-A", 1)
	s.Unknown.Version = ordersapi.OrderConfirmed{}.EventVersion() + 1
	return s
}

// WantSummary is the summary of the scenario's Events.
var WantSummary = reportsapi.Summary{
	Currency: "USD", OrdersConfirmed: 5, OrdersRejected: 1, OrdersCancelled: 1,
	RevenueCents: 2850, RefundsCents: 900, NetCents: 1950, CapturedCents: 2850,
	PaymentsFailed: 1, ReservationsExpired: 1, LowStockAlerts: 2, EventsApplied: 23,
}

// WantDays are the scenario's USD figures by day from Monday to the next
// Monday, both included.
var WantDays = []reportsapi.Figures{
	{Orders: 3, RevenueCents: 2200, NetCents: 2200},
	{},
	{RefundsCents: 700, NetCents: -700},
	{RefundsCents: 200, NetCents: -200},
	{}, {},
	{Orders: 1, RevenueCents: 400, NetCents: 400},
	{Orders: 1, RevenueCents: 250, NetCents: 250},
}

// WantTop are the best sellers of the orders confirmed from Monday to
// Sunday (o5, the next Monday, is not in it): o3's units are cancelled.
var WantTop = []reportsapi.Product{
	{SKU: "SKU-B", Units: 2, CancelledUnits: 1, RevenueCents: 800},
	{SKU: "SKU-A", Units: 2, CancelledUnits: 1, RevenueCents: 600},
	{SKU: "SKU-C", Units: 2, RevenueCents: 500},
}

// Burst makes 3n events across the three streams, three weeks after the
// scenario's week: n orders confirmed (300 each, 1 A), their captures,
// and n low-stock alerts.
func Burst(prefix string, n int) []events.Event {
	var out []events.Event
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		t := Monday.AddDate(0, 0, 21).Add(time.Duration(i) * time.Second)
		out = append(out, confirmed(id, "USD", t, "SKU-A", 1), captured(id, "USD", 300, t),
			envelope(inventoryapi.LowStock{SKU: "SKU-A", Name: "Anvil", Available: 1, Threshold: 5}, t))
	}
	return out
}
