// Package paymentsapi is the contract of payments, what other services may know of it: the
// shapes of its internal and admin APIs, its event types, and a typed
// client for the internal routes that orders calls. Nothing here reaches
// payments' internals or database.
//
// Money is integer minor units (amount_cents) with an ISO 4217 currency.
// A card travels only in an AuthorizeRequest; payments keeps its brand and
// last four digits, never the number or the cvc.
package paymentsapi

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/microshop/microshop/internal/platform/problem"
)

// Payment statuses.
const (
	// StatusAuthorized: the amount is held on the card; capture or void it.
	StatusAuthorized = "authorized"
	// StatusCaptured: the money was taken. Refunds keep this status and
	// grow RefundedCents.
	StatusCaptured = "captured"
	// StatusVoided: the hold was released; no money moved.
	StatusVoided = "voided"
	// StatusDeclined: the card processor refused the authorization.
	StatusDeclined = "declined"
)

// Decline reasons, in DeclinedError.Reason and PaymentFailed.Reason.
const (
	ReasonCardDeclined      = "card_declined"
	ReasonInsufficientFunds = "insufficient_funds"
)

// Limits of a payment's amount.
const (
	MinAmountCents int64 = 1
	MaxAmountCents int64 = 1_000_000_000_000
)

// Card is a card as the caller sends it. Number may hold spaces and
// dashes. String and LogValue show only its last four digits, so a card
// printed or logged by mistake does not leak. Check (card.go) validates
// it as payments does.
type Card struct {
	Number   string `json:"number"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	CVC      string `json:"cvc"`
}

// String masks the card.
func (c Card) String() string {
	digits := digitsOf(c.Number)
	if len(digits) < 4 {
		return "card ****"
	}
	return "card ****" + digits[len(digits)-4:]
}

// GoString masks the card for %#v too.
func (c Card) GoString() string { return c.String() }

// LogValue masks the card in structured logs.
func (c Card) LogValue() slog.Value { return slog.StringValue(c.String()) }

// AuthorizeRequest asks payments to hold Amount on a card for an order.
type AuthorizeRequest struct {
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Card        Card   `json:"card"`
}

// LogValue logs the request with its card masked: a JSON log handler
// would otherwise print the card's fields one by one.
func (r AuthorizeRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("order_id", r.OrderID), slog.Int64("amount_cents", r.AmountCents),
		slog.String("currency", r.Currency), slog.String("card", r.Card.String()))
}

// CaptureRequest takes the money of an authorized payment. AmountCents,
// when given, must equal the authorized amount; nil captures it all.
type CaptureRequest struct {
	AmountCents *int64 `json:"amount_cents,omitempty"`
}

// RefundRequest gives back part or all of a captured payment.
type RefundRequest struct {
	AmountCents int64 `json:"amount_cents"`
}

// VoidRequest releases the holds of an order's uncaptured payments and
// refuses any later authorization for the order.
type VoidRequest struct {
	OrderID string `json:"order_id"`
}

// Payment is one authorization attempt and what became of it.
type Payment struct {
	ID          string `json:"id"`
	OrderID     string `json:"order_id"`
	Status      string `json:"status"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Brand       string `json:"brand"`
	Last4       string `json:"last4"`
	// CapturedCents is 0 or AmountCents: a payment is captured once, whole.
	CapturedCents int64 `json:"captured_cents"`
	// RefundedCents is the sum of its refunds, at most CapturedCents.
	RefundedCents int64 `json:"refunded_cents"`
	// DeclineReason says why a declined payment was refused.
	DeclineReason string    `json:"decline_reason,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// VoidResult says what voiding an order did. Voiding again returns the
// same lists.
type VoidResult struct {
	OrderID string `json:"order_id"`
	// Voided are the order's voided payments, by this call or before.
	Voided []string `json:"voided"`
	// Captured are the order's captured payments, left alone: money that
	// was taken comes back by refund, not by void.
	Captured []string `json:"captured"`
}

// Ledger is the state of the double-entry ledger.
type Ledger struct {
	Accounts []AccountBalance `json:"accounts"`
	// TotalCents is the sum of every entry; it is 0 when the books balance.
	TotalCents int64 `json:"total_cents"`
	// Balanced: the total is 0 in every currency and every movement is one
	// debit and one credit of the same amount.
	Balanced bool `json:"balanced"`
	// Entries counts the ledger entries (two per movement).
	Entries int64 `json:"entries"`
}

// AccountBalance is one account's balance in one currency. Debits count
// positive, credits negative.
type AccountBalance struct {
	Account      string `json:"account"`
	Currency     string `json:"currency"`
	BalanceCents int64  `json:"balance_cents"`
}

// Ledger accounts.
const (
	AccountCustomerCard       = "customer_card"
	AccountAuthorizationsHeld = "authorizations_held"
	AccountMerchantRevenue    = "merchant_revenue"
)

// PaymentCaptured is published when a payment's money is taken.
type PaymentCaptured struct {
	PaymentID   string `json:"payment_id"`
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
}

func (PaymentCaptured) EventType() string { return "payments.captured" }
func (PaymentCaptured) EventVersion() int { return 1 }

// PaymentRefunded is published for each refund.
type PaymentRefunded struct {
	PaymentID   string `json:"payment_id"`
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	// RefundedCentsTotal is the payment's refunds so far, this one included.
	RefundedCentsTotal int64  `json:"refunded_cents_total"`
	Currency           string `json:"currency"`
}

func (PaymentRefunded) EventType() string { return "payments.refunded" }
func (PaymentRefunded) EventVersion() int { return 1 }

// PaymentFailed is published when the card processor declines an
// authorization.
type PaymentFailed struct {
	PaymentID   string `json:"payment_id"`
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	// Reason is card_declined or insufficient_funds.
	Reason string `json:"reason"`
}

func (PaymentFailed) EventType() string { return "payments.failed" }
func (PaymentFailed) EventVersion() int { return 1 }

// Problem type slugs of payments' own problems (after
// https://microshop.dev/problems/).
const (
	ProblemDeclined         = "payment-declined"
	ProblemOrderVoided      = "order-voided"
	ProblemAlreadyCaptured  = "already-captured"
	ProblemPaymentVoided    = "payment-voided"
	ProblemNotAuthorized    = "payment-not-authorized"
	ProblemNotCaptured      = "payment-not-captured"
	ProblemRefundExceeds    = "refund-exceeds-captured"
	ProblemKeyReuse         = "idempotency-key-reuse"
	ProblemKeyRequired      = "idempotency-key-required"
	ProblemProcessorTimeout = "processor-timeout"
)

// Errors the internal API answers with, as the Client reports them. Each
// wraps the problem document too, so problem.From finds it.
var (
	// ErrDeclined: the card was refused. The error is a *DeclinedError
	// carrying the reason.
	ErrDeclined = errors.New("the card was declined")
	// ErrOrderVoided: the order's payments were voided; it takes no new
	// authorization.
	ErrOrderVoided = errors.New("the order was voided")
	// ErrAlreadyCaptured: the payment was captured before, by another call.
	ErrAlreadyCaptured = errors.New("the payment is already captured")
	// ErrPaymentVoided: the payment was voided; it cannot be captured.
	ErrPaymentVoided = errors.New("the payment was voided")
	// ErrNotAuthorized: the payment was declined; there is nothing to capture.
	ErrNotAuthorized = errors.New("the payment was not authorized")
	// ErrNotCaptured: only a captured payment can be refunded.
	ErrNotCaptured = errors.New("the payment is not captured")
	// ErrRefundExceeds: the refunds would pass the captured amount.
	ErrRefundExceeds = errors.New("the refunds would exceed the captured amount")
	// ErrKeyReuse: the idempotency key was used before for another request.
	ErrKeyReuse = errors.New("the idempotency key was used for another request")
	// ErrNotFound: no such payment.
	ErrNotFound = errors.New("no such payment")
)

// DeclinedError is a declined authorization. errors.Is(err, ErrDeclined)
// holds for it.
type DeclinedError struct {
	// Reason is card_declined or insufficient_funds.
	Reason string
	// PaymentID is the declined payment, as ByOrder lists it.
	PaymentID string
	Problem   *problem.Problem
}

func (e *DeclinedError) Error() string {
	return fmt.Sprintf("payments: the card was declined (%s)", e.Reason)
}

// Is makes errors.Is(err, ErrDeclined) true.
func (e *DeclinedError) Is(target error) bool { return target == ErrDeclined }

// Unwrap lets problem.From find the problem.
func (e *DeclinedError) Unwrap() error {
	if e.Problem == nil {
		return nil
	}
	return e.Problem
}
