package payments

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// The test cards of the simulated processor. Any other valid number is
// approved.
const (
	CardApproved          = "4242424242424242"
	CardDeclined          = "4000000000000002" // card_declined
	CardInsufficientFunds = "4000000000009995" // insufficient_funds
	// CardSlow answers after --slow-card-delay (10s by default), or when
	// the caller gives up, whichever comes first; then it approves.
	CardSlow = "4000000000000077"
)

// SimulatorConfig sets up the simulated card processor (--processor
// simulator). Latency and Connections make it behave like a remote
// processor reached over a fixed number of connections, for load tests
// and demos; both are off (0) by default.
type SimulatorConfig struct {
	// SlowCardDelay is how long CardSlow takes to answer
	// (--slow-card-delay).
	SlowCardDelay time.Duration
	// Latency is added to every authorization, as a remote processor's
	// round trip would be (--processor-latency; 0: none).
	Latency time.Duration
	// Connections bounds the authorizations this process has at the
	// processor at once; the others wait in line
	// (--processor-connections; 0: no limit).
	Connections int
}

// Simulator is a simulated card processor: no card network is ever
// called. It answers like a real processor for the test cards above: it
// approves, declines with a reason, or takes its time. It keeps nothing.
//
// Every authorization takes cfg.Latency, and at most cfg.Connections are
// at the processor at once from this process; the others wait in line.
// Scaling payments out multiplies the connections, which is what
// `microshop demo independent-scaling` shows.
type Simulator struct {
	cfg   SimulatorConfig
	lanes chan struct{} // nil: no limit
}

// NewSimulator returns a simulated processor.
func NewSimulator(cfg SimulatorConfig) (*Simulator, error) {
	if cfg.SlowCardDelay < 0 || cfg.Latency < 0 || cfg.Connections < 0 {
		return nil, errors.New("--slow-card-delay, --processor-latency and --processor-connections must not be negative")
	}
	s := &Simulator{cfg: cfg}
	if cfg.Connections > 0 {
		s.lanes = make(chan struct{}, cfg.Connections)
	}
	return s, nil
}

// Authorize decides by the card's number. It fails only when ctx ends
// before it answers: a slow card, or a wait for the latency or for a free
// connection.
func (s *Simulator) Authorize(ctx context.Context, c paymentsapi.Checked, amount int64, currency string) (Decision, error) {
	if s.lanes != nil {
		select {
		case s.lanes <- struct{}{}:
			defer func() { <-s.lanes }()
		case <-ctx.Done():
			return Decision{}, fmt.Errorf("%w: %w", ErrNoAnswer, ctx.Err())
		}
	}
	if s.cfg.Latency > 0 {
		if err := wait(ctx, s.cfg.Latency); err != nil {
			return Decision{}, err
		}
	}
	switch c.Number() {
	case CardDeclined:
		return Decision{Declined: paymentsapi.ReasonCardDeclined}, nil
	case CardInsufficientFunds:
		return Decision{Declined: paymentsapi.ReasonInsufficientFunds}, nil
	case CardSlow:
		if err := wait(ctx, s.cfg.SlowCardDelay); err != nil {
			return Decision{}, err
		}
	}
	return Decision{}, nil
}

// wait lets d pass, or fails with ErrNoAnswer when ctx ends first.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNoAnswer, ctx.Err())
	}
}
