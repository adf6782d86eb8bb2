package orders

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// Limits on an order. Totals stay far from int64 overflow: 100 lines x
// 1,000 units x inventory's maximum price of 10^9 cents is 10^14.
const (
	maxLines    = 100
	maxQuantity = 1000
	maxKeyLen   = 200
)

var skuPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// PlaceOrder is the body of POST /api/orders, as its contract gives it;
// the service adds its validation.
type PlaceOrder ordersapi.PlaceOrder

// LineRequest is one product and quantity.
type LineRequest = ordersapi.LineRequest

// Valid checks the order field by field.
func (p *PlaceOrder) Valid() []validation.FieldError {
	var errs []validation.FieldError
	add := func(field, reason string) { errs = append(errs, validation.FieldError{Field: field, Reason: reason}) }
	switch {
	case len(p.Lines) == 0:
		add("lines", "an order needs at least one line")
	case len(p.Lines) > maxLines:
		add("lines", fmt.Sprintf("an order may have at most %d lines", maxLines))
	}
	if len(p.Lines) <= maxLines {
		seen := map[string]bool{}
		for i, l := range p.Lines {
			f := fmt.Sprintf("lines[%d]", i)
			if !skuPattern.MatchString(l.SKU) {
				add(f+".sku", "must be 1-64 letters, digits, - or _")
			} else if seen[l.SKU] {
				add(f+".sku", "appears twice; give one line per product")
			}
			seen[l.SKU] = true
			if l.Quantity < 1 || l.Quantity > maxQuantity {
				add(f+".quantity", fmt.Sprintf("must be between 1 and %d", maxQuantity))
			}
		}
	}
	a := p.ShippingAddress
	for _, f := range []struct {
		name, value string
		max         int
	}{{"name", a.Name, 100}, {"street", a.Street, 200}, {"city", a.City, 100}, {"postal_code", a.PostalCode, 20}} {
		v := strings.TrimSpace(f.value)
		if v == "" {
			add("shipping_address."+f.name, "is required")
		} else if why := validation.Text(v, f.max); why != "" {
			add("shipping_address."+f.name, why)
		}
	}
	if len(a.Country) != 2 || strings.ToUpper(a.Country) != a.Country || !isLetters(a.Country) {
		add("shipping_address.country", "must be a two-letter ISO 3166 code such as DE or US")
	}
	// The card is checked as payments will check it, so an order with a
	// card payments would refuse is refused before anything is stored.
	_, cardErrs := p.Card.Check(time.Now())
	return append(errs, cardErrs...)
}

func isLetters(s string) bool {
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// hash identifies a request for the idempotency check: the same key with
// another body is refused. It covers what the order is (lines, address)
// and which card, by the checked card's last four digits and the expiry
// only: a hash of the whole number would be guessable.
func (p *PlaceOrder) hash(card paymentsapi.Checked) string {
	b, _ := json.Marshal(struct {
		Lines []LineRequest
		Addr  ordersapi.Address
		Last4 string
		Exp   string
	}{p.Lines, p.ShippingAddress, card.Last4(), fmt.Sprintf("%d/%d", p.Card.ExpMonth, p.Card.ExpYear)})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// order is an order as orders keeps it.
type order struct {
	ID             string
	UserID         string
	IdempotencyKey string
	RequestHash    string
	Status         string
	Reason         string
	Lines          []ordersapi.Line
	TotalCents     int64
	Currency       string
	Shipping       ordersapi.Address
	Card           ordersapi.CardSummary
	PaymentID      string
	SagaStep       string
	StepDeadline   time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

func (o order) public() ordersapi.Order {
	return ordersapi.Order{ID: o.ID, Status: o.Status, Reason: o.Reason, Lines: o.Lines, TotalCents: o.TotalCents,
		Currency: o.Currency, ShippingAddress: o.Shipping, Card: o.Card, PaymentID: o.PaymentID,
		CreatedAt: o.CreatedAt.UTC(), UpdatedAt: o.UpdatedAt.UTC()}
}

// final reports whether the order's saga has ended.
func (o order) final() bool { return o.SagaStep == stepDone }
