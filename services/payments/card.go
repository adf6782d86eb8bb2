package payments

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/services/payments/contract"
)

// The test cards of the built-in processor. Any other valid number is
// approved.
const (
	CardApproved          = "4242424242424242"
	CardDeclined          = "4000000000000002" // card_declined
	CardInsufficientFunds = "4000000000009995" // insufficient_funds
	// CardSlow answers after --slow-card-delay (10s by default), or when
	// the caller gives up, whichever comes first; then it approves.
	CardSlow = "4000000000000077"
)

// parseCard checks every field of in as of now with the contract's
// Check, so orders' early check and payments agree on every card: field
// names are prefixed with "card." and reasons never echo the number or
// the cvc. The checked card holds the number only in memory, for the
// processor, and prints and logs masked.
func parseCard(in contract.Card, now time.Time) (contract.Checked, []problem.FieldError) {
	return in.Check(now)
}

// errNoAnswer: the card processor had not answered when the caller gave up.
var errNoAnswer = errors.New("the card processor did not answer in time")

// processor is the built-in card processor. It behaves like a real one
// for the test cards above: it approves, declines with a reason, or takes
// its time. It keeps nothing.
type processor struct {
	slowDelay time.Duration
}

// decision is the processor's answer: declined with a reason, or approved.
type decision struct {
	declined string
}

// authorize asks for amount to be held on c. Only a slow card can fail,
// when ctx ends before it answers.
func (p processor) authorize(ctx context.Context, c contract.Checked, amount int64) (decision, error) {
	switch c.Number() {
	case CardDeclined:
		return decision{declined: contract.ReasonCardDeclined}, nil
	case CardInsufficientFunds:
		return decision{declined: contract.ReasonInsufficientFunds}, nil
	case CardSlow:
		t := time.NewTimer(p.slowDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return decision{}, fmt.Errorf("%w: %w", errNoAnswer, ctx.Err())
		}
	}
	return decision{}, nil
}
