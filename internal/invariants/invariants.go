// Package invariants checks, from the outside, that the system is
// consistent after any crash, restart or retry. It reads each service
// only through its public API (as an admin, through the gateway), never
// through a database:
//
//   - every accepted order has reached a final state;
//   - stock is conserved: for every product, received = available +
//     reserved + sold, nothing stays reserved once the system settles, and
//     sold equals the units of confirmed orders;
//   - a confirmed order has exactly one capture, of exactly its total; a
//     rejected one has none; a cancelled one was refunded in full;
//   - the payments ledger balances to zero;
//   - one Idempotency-Key never made two orders.
//
// The demos (internal/demo), chaos and the black-box tests share it.
package invariants

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// Checker reads the system through its gateway as an admin: Admin, or
// else AdminToken at Gateway.
type Checker struct {
	Admin *shopclient.Session

	Gateway    string
	AdminToken string
}

func (c *Checker) admin() (*shopclient.Session, error) {
	if c.Admin != nil {
		return c.Admin, nil
	}
	shop, err := shopclient.New(c.Gateway, shopclient.Options{Timeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	return shop.As(c.AdminToken), nil
}

// Expect is what the test knows from the client side.
type Expect struct {
	// Received is each product's received stock before the test, if known;
	// a product's received count must not change unless restocked.
	Received map[string]int64
	// Accepted are the ids of orders the API accepted (201 or 202).
	Accepted []string
	// Keys maps each Idempotency-Key used to the order ids it was answered
	// with; every answer for one key must name the same order.
	Keys map[string][]string
}

// Report is what Check found.
type Report struct {
	Orders, Confirmed, Rejected, Cancelled, Pending int
	Violations                                      []string
}

func (r *Report) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

// Settle waits until no order is PENDING (or timeout passes), then checks.
func (c *Checker) Settle(ctx context.Context, timeout time.Duration, exp Expect) (Report, error) {
	deadline := time.Now().Add(timeout)
	for {
		all, err := c.Orders(ctx)
		if err != nil {
			return Report{}, err
		}
		pending := 0
		for _, o := range all {
			if o.Status == ordersapi.StatusPending {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return Report{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return c.Check(ctx, exp)
}

// Check reads every service once and reports each broken invariant.
func (c *Checker) Check(ctx context.Context, exp Expect) (Report, error) {
	var rep Report
	all, err := c.Orders(ctx)
	if err != nil {
		return rep, err
	}
	byID := map[string]ordersapi.Order{}
	soldBy := map[string]int64{} // units of confirmed orders per sku
	for _, o := range all {
		byID[o.ID] = o
		rep.Orders++
		switch o.Status {
		case ordersapi.StatusConfirmed:
			rep.Confirmed++
			for _, l := range o.Lines {
				soldBy[l.SKU] += l.Quantity
			}
		case ordersapi.StatusRejected:
			rep.Rejected++
		case ordersapi.StatusCancelled:
			rep.Cancelled++
		case ordersapi.StatusPending:
			rep.Pending++
			rep.violate("order %s is still PENDING after the system settled", o.ID)
		default:
			rep.violate("order %s has an unknown status %q", o.ID, o.Status)
		}
		var sum int64
		for _, l := range o.Lines {
			sum += l.Quantity * l.PriceCents
		}
		if sum != o.TotalCents {
			rep.violate("order %s: total %d is not the sum of its lines %d", o.ID, o.TotalCents, sum)
		}
	}
	for _, id := range exp.Accepted {
		if _, ok := byID[id]; !ok {
			rep.violate("accepted order %s does not exist", id)
		}
	}
	for key, answered := range exp.Keys {
		distinct := map[string]bool{}
		for _, id := range answered {
			distinct[id] = true
		}
		if len(distinct) > 1 {
			rep.violate("Idempotency-Key %q made %d orders: %v", key, len(distinct), slices.Sorted(maps.Keys(distinct)))
		}
	}

	// Stock.
	admin, err := c.admin()
	if err != nil {
		return rep, err
	}
	stock, err := admin.Stock(ctx)
	if err != nil {
		return rep, err
	}
	for _, s := range stock {
		if s.Received != s.Available+s.Reserved+s.Sold {
			rep.violate("stock of %s is not conserved: received %d != available %d + reserved %d + sold %d",
				s.SKU, s.Received, s.Available, s.Reserved, s.Sold)
		}
		if s.Reserved != 0 {
			rep.violate("%s still has %d units reserved after the system settled", s.SKU, s.Reserved)
		}
		if s.Sold != soldBy[s.SKU] {
			rep.violate("%s: inventory sold %d units but confirmed orders hold %d", s.SKU, s.Sold, soldBy[s.SKU])
		}
		if want, ok := exp.Received[s.SKU]; ok && want != s.Received {
			rep.violate("%s: received stock changed from %d to %d", s.SKU, want, s.Received)
		}
	}

	// Payments.
	pays, err := c.Payments(ctx)
	if err != nil {
		return rep, err
	}
	byOrder := map[string][]paymentsapi.Payment{}
	for _, p := range pays {
		byOrder[p.OrderID] = append(byOrder[p.OrderID], p)
	}
	for _, o := range all {
		var captures []paymentsapi.Payment
		for _, p := range byOrder[o.ID] {
			if p.CapturedCents > 0 {
				captures = append(captures, p)
			}
		}
		switch o.Status {
		case ordersapi.StatusConfirmed, ordersapi.StatusCancelled:
			if len(captures) != 1 {
				rep.violate("%s order %s has %d captures, want exactly 1", o.Status, o.ID, len(captures))
				continue
			}
			if captures[0].CapturedCents != o.TotalCents {
				rep.violate("%s order %s: captured %d, want its total %d", o.Status, o.ID, captures[0].CapturedCents, o.TotalCents)
			}
			wantRefund := int64(0)
			if o.Status == ordersapi.StatusCancelled {
				wantRefund = o.TotalCents
			}
			if captures[0].RefundedCents != wantRefund {
				rep.violate("%s order %s: refunded %d, want %d", o.Status, o.ID, captures[0].RefundedCents, wantRefund)
			}
		case ordersapi.StatusRejected:
			if len(captures) != 0 {
				rep.violate("rejected order %s has %d captures, want none", o.ID, len(captures))
			}
		}
	}
	for orderID := range byOrder {
		if _, ok := byID[orderID]; !ok {
			rep.violate("payments has payments for order %s, which orders does not know", orderID)
		}
	}
	ledger, err := admin.Ledger(ctx)
	if err != nil {
		return rep, err
	}
	if ledger.TotalCents != 0 || !ledger.Balanced {
		rep.violate("the ledger does not balance: total %d, balanced %t", ledger.TotalCents, ledger.Balanced)
	}
	sort.Strings(rep.Violations)
	return rep, nil
}

// Orders lists every customer's orders.
func (c *Checker) Orders(ctx context.Context) ([]ordersapi.Order, error) {
	admin, err := c.admin()
	if err != nil {
		return nil, err
	}
	return admin.AllOrders(ctx)
}

// Payments lists every payment.
func (c *Checker) Payments(ctx context.Context) ([]paymentsapi.Payment, error) {
	admin, err := c.admin()
	if err != nil {
		return nil, err
	}
	return admin.Payments(ctx)
}
