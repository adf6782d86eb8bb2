package payments

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/payments/paymentsapi"
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
func parseCard(in paymentsapi.Card, now time.Time) (paymentsapi.Checked, []validation.FieldError) {
	return in.Check(now)
}

// errNoAnswer: the card processor had not answered when the caller gave up.
var errNoAnswer = errors.New("the card processor did not answer in time")

// processor is the built-in card processor. It behaves like a real one
// for the test cards above: it approves, declines with a reason, or takes
// its time. It keeps nothing.
//
// latency and lanes make it behave like a remote processor reached over a
// fixed number of connections: every authorization takes latency, and at
// most cap(lanes) are at the processor at once from this process; the
// others wait in line. Scaling payments out multiplies the lanes, which is
// what `microshop demo independent-scaling` shows.
type processor struct {
	slowDelay time.Duration
	latency   time.Duration
	lanes     chan struct{} // nil: no limit
}

// newProcessor returns a processor; connections 0 means no limit.
func newProcessor(slowDelay, latency time.Duration, connections int) processor {
	p := processor{slowDelay: slowDelay, latency: latency}
	if connections > 0 {
		p.lanes = make(chan struct{}, connections)
	}
	return p
}

// decision is the processor's answer: declined with a reason, or approved.
type decision struct {
	declined string
}

// authorize asks for amount to be held on c. It fails only when ctx ends
// before it answers: a slow card, or a wait for the processor's latency
// or for a free connection.
func (p processor) authorize(ctx context.Context, c paymentsapi.Checked, amount int64) (decision, error) {
	if p.lanes != nil {
		select {
		case p.lanes <- struct{}{}:
			defer func() { <-p.lanes }()
		case <-ctx.Done():
			return decision{}, fmt.Errorf("%w: %w", errNoAnswer, ctx.Err())
		}
	}
	if p.latency > 0 {
		if err := wait(ctx, p.latency); err != nil {
			return decision{}, err
		}
	}
	switch c.Number() {
	case CardDeclined:
		return decision{declined: paymentsapi.ReasonCardDeclined}, nil
	case CardInsufficientFunds:
		return decision{declined: paymentsapi.ReasonInsufficientFunds}, nil
	case CardSlow:
		if err := wait(ctx, p.slowDelay); err != nil {
			return decision{}, err
		}
	}
	return decision{}, nil
}

// wait lets d pass, or fails with errNoAnswer when ctx ends first.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errNoAnswer, ctx.Err())
	}
}
