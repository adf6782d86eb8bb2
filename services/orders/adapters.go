package orders

import (
	"context"
	"errors"
	"fmt"

	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// inventoryAdapter speaks to inventory through its contract client and
// turns its answers into what the saga understands.
type inventoryAdapter struct{ c *inventoryapi.Client }

func (a inventoryAdapter) Quote(ctx context.Context, lines []LineRequest) ([]ordersapi.Line, int64, string, error) {
	q, err := a.c.Quote(ctx, reserveLines(lines))
	if err != nil {
		if errors.Is(err, inventoryapi.ErrNotFound) || isInvalid(err) {
			return nil, 0, "", fmt.Errorf("%w: %v", ErrUnknownProduct, problemDetail(err))
		}
		return nil, 0, "", err
	}
	return toLines(q.Lines), q.TotalCents, q.Currency, nil
}

func (a inventoryAdapter) Reserve(ctx context.Context, orderID string, lines []LineRequest) ([]ordersapi.Line, int64, string, error) {
	r, err := a.c.Reserve(ctx, inventoryapi.ReserveRequest{OrderID: orderID, Lines: reserveLines(lines)})
	switch {
	case errors.Is(err, inventoryapi.ErrOutOfStock):
		return nil, 0, "", fmt.Errorf("%w: %v", ErrOutOfStock, err)
	case isInvalid(err):
		return nil, 0, "", fmt.Errorf("%w: %v", ErrUnknownProduct, problemDetail(err))
	case err != nil:
		return nil, 0, "", err
	}
	return toLines(r.Lines), r.TotalCents, r.Currency, nil
}

func (a inventoryAdapter) Commit(ctx context.Context, orderID string) error {
	_, err := a.c.Commit(ctx, orderID)
	if errors.Is(err, inventoryapi.ErrReservationReleased) || errors.Is(err, inventoryapi.ErrNotFound) {
		return fmt.Errorf("%w: %v", ErrReservationReleased, err)
	}
	return err
}

func (a inventoryAdapter) Release(ctx context.Context, orderID string) error {
	_, err := a.c.Release(ctx, orderID)
	if errors.Is(err, inventoryapi.ErrNotFound) {
		return nil // nothing was reserved: nothing to give back
	}
	return err
}

func reserveLines(lines []LineRequest) []inventoryapi.ReserveLine {
	out := make([]inventoryapi.ReserveLine, len(lines))
	for i, l := range lines {
		out[i] = inventoryapi.ReserveLine{SKU: l.SKU, Quantity: l.Quantity}
	}
	return out
}

func toLines(lines []inventoryapi.ReservationLine) []ordersapi.Line {
	out := make([]ordersapi.Line, len(lines))
	for i, l := range lines {
		out[i] = ordersapi.Line{SKU: l.SKU, Quantity: l.Quantity, PriceCents: l.PriceCents}
	}
	return out
}

// isInvalid reports a 422 from the target: the request itself was wrong.
func isInvalid(err error) bool {
	p := problem.From(err)
	return p != nil && p.Status == 422
}

func problemDetail(err error) string {
	if p := problem.From(err); p != nil {
		if len(p.Errors) > 0 {
			return p.Errors[0].Field + " " + p.Errors[0].Reason
		}
		return p.Detail
	}
	return err.Error()
}

// paymentsAdapter speaks to payments through its contract client.
type paymentsAdapter struct{ c *paymentsapi.Client }

func (a paymentsAdapter) Authorize(ctx context.Context, key, orderID string, amount int64, currency string, card paymentsapi.Card) (string, error) {
	p, err := a.c.Authorize(ctx, key, paymentsapi.AuthorizeRequest{OrderID: orderID, AmountCents: amount, Currency: currency, Card: card})
	switch {
	case errors.Is(err, paymentsapi.ErrDeclined):
		return "", fmt.Errorf("%w: %v", ErrDeclined, err)
	case errors.Is(err, paymentsapi.ErrOrderVoided):
		return "", fmt.Errorf("%w: %v", ErrOrderVoided, err)
	case isInvalid(err):
		// payments refused the card outright: as good as a decline.
		return "", fmt.Errorf("%w: %v", ErrDeclined, problemDetail(err))
	case err != nil:
		return "", err
	}
	return p.ID, nil
}

func (a paymentsAdapter) Capture(ctx context.Context, key, paymentID string, amount int64) error {
	_, err := a.c.Capture(ctx, key, paymentID, amount)
	if errors.Is(err, paymentsapi.ErrAlreadyCaptured) {
		return nil // one capture per payment: it already happened
	}
	return err
}

func (a paymentsAdapter) Void(ctx context.Context, key, orderID string) error {
	_, err := a.c.Void(ctx, key, orderID)
	return err
}

func (a paymentsAdapter) Refund(ctx context.Context, key, paymentID string, amount int64) error {
	_, err := a.c.Refund(ctx, key, paymentID, amount)
	return err
}

func (a paymentsAdapter) Authorized(ctx context.Context, orderID string) (string, error) {
	ps, err := a.c.ByOrder(ctx, orderID)
	if err != nil {
		return "", err
	}
	for _, p := range ps {
		if p.Status == "authorized" || p.Status == "captured" {
			return p.ID, nil
		}
	}
	return "", nil
}
