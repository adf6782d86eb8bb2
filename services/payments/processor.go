package payments

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// Processor is the card processor payments asks to hold money on a card.
//
// Only authorizations reach it. Capture, void and refund move money in
// payments' own ledger; the simulator keeps no holds, so it has nothing
// to capture or release. A processor that keeps real holds needs those
// three calls too, and payments would make them outside its transactions
// as it does Authorize.
type Processor interface {
	// Authorize asks for amount, in minor units of currency, to be held
	// on card. A refusal is a Decision with a reason, not an error. An
	// error means no answer came and nothing was held: ErrNoAnswer when
	// ctx ended first.
	Authorize(ctx context.Context, card paymentsapi.Checked, amount int64, currency string) (Decision, error)
}

// Decision is a processor's answer to an authorization.
type Decision struct {
	// Declined is why the card was refused (paymentsapi.ReasonCardDeclined,
	// paymentsapi.ReasonInsufficientFunds, ...), or "" when it was approved.
	Declined string
}

// ErrNoAnswer: the card processor had not answered when the caller gave
// up. Nothing was held, and the caller may retry with the same key.
var ErrNoAnswer = errors.New("the card processor did not answer in time")

// ProcessorConfig holds the settings of every processor payments can
// use; each takes its own part.
type ProcessorConfig struct {
	Simulator SimulatorConfig
}

// processors are the card processors --processor chooses among, by name.
func processors() map[string]func(ProcessorConfig) (Processor, error) {
	return map[string]func(ProcessorConfig) (Processor, error){
		"simulator": func(c ProcessorConfig) (Processor, error) { return NewSimulator(c.Simulator) },
	}
}

// ProcessorNames lists the names NewProcessor accepts, sorted.
func ProcessorNames() []string {
	names := make([]string, 0, len(processors()))
	for name := range processors() {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// NewProcessor returns the card processor called name, set up from cfg.
func NewProcessor(name string, cfg ProcessorConfig) (Processor, error) {
	open, ok := processors()[name]
	if !ok {
		return nil, fmt.Errorf("--processor %q: there is no such card processor; choose one of: %s", name, strings.Join(ProcessorNames(), ", "))
	}
	p, err := open(cfg)
	if err != nil {
		return nil, fmt.Errorf("--processor %s: %w", name, err)
	}
	return p, nil
}
