package payments

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// recorder stands for a card network: it notes every authorization and
// answers with whatever decide says.
type recorder struct {
	mu     sync.Mutex
	calls  []string
	decide func(amount int64) (Decision, error)
}

func (r *recorder) Authorize(_ context.Context, c paymentsapi.Checked, amount int64, currency string) (Decision, error) {
	r.mu.Lock()
	r.calls = append(r.calls, fmt.Sprintf("%s %d %s", c.Number(), amount, currency))
	r.mu.Unlock()
	return r.decide(amount)
}

// discard is an Outcome that keeps no answer.
type discard struct{}

func (discard) Save(context.Context, *sql.Tx, any, error) error { return nil }

// The service asks the processor it is given, and only it, and records
// what that processor answered: the test card 4242... would be approved
// by the simulator, so a decline can only come from the recorder.
func TestServiceUsesItsProcessor(t *testing.T) {
	ctx := context.Background()
	db := dbtest.SQLite(t)
	log := slog.New(slog.DiscardHandler)
	if err := db.Migrate(ctx, log, "events", events.Migrations()); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, log, "payments", Spec().Migrations()); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{decide: func(amount int64) (Decision, error) {
		switch amount {
		case 999:
			return Decision{Declined: paymentsapi.ReasonInsufficientFunds}, nil
		case 500:
			return Decision{}, fmt.Errorf("the network is down: %w", ErrNoAnswer)
		}
		return Decision{}, nil
	}}
	s, err := New(ctx, Config{Processor: rec}, Deps{DB: db, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	authorize := func(order string, amount int64) (paymentsapi.Payment, error) {
		t.Helper()
		a, errs := newAuthorization(paymentsapi.AuthorizeRequest{OrderID: order, AmountCents: amount, Currency: "EUR",
			Card: paymentsapi.Card{Number: CardApproved, ExpMonth: 12, ExpYear: s.now().Year() + 1, CVC: "123"}}, s.now())
		if len(errs) > 0 {
			t.Fatalf("authorization: %v", errs)
		}
		return s.Authorize(ctx, a, discard{})
	}

	if p, err := authorize("o-1", 1250); err != nil || p.Status != paymentsapi.StatusAuthorized {
		t.Fatalf("approved: %+v %v", p, err)
	}
	var declined *paymentsapi.DeclinedError
	if _, err := authorize("o-2", 999); !errors.As(err, &declined) || declined.Reason != paymentsapi.ReasonInsufficientFunds {
		t.Fatalf("declined by the processor: %v", err)
	}
	if _, err := authorize("o-3", 500); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("no answer from the processor: %v", err)
	}
	if ps, err := s.ByOrder(ctx, "o-3"); err != nil || len(ps) != 0 {
		t.Fatalf("a payment was stored without an answer: %+v %v", ps, err)
	}
	want := []string{CardApproved + " 1250 EUR", CardApproved + " 999 EUR", CardApproved + " 500 EUR"}
	if strings.Join(rec.calls, "|") != strings.Join(want, "|") {
		t.Fatalf("the processor was asked %q, want %q", rec.calls, want)
	}
}

func TestNewProcessor(t *testing.T) {
	p, err := NewProcessor("simulator", ProcessorConfig{})
	if _, ok := p.(*Simulator); err != nil || !ok {
		t.Fatalf("simulator: %T %v", p, err)
	}
	if _, err := NewProcessor("stripe", ProcessorConfig{}); err == nil || !strings.Contains(err.Error(), `"stripe"`) ||
		!strings.Contains(err.Error(), "choose one of: simulator") {
		t.Fatalf("an unknown processor: %v", err)
	}
	if _, err := NewProcessor("simulator", ProcessorConfig{Simulator: SimulatorConfig{Latency: -1}}); err == nil {
		t.Fatal("a negative latency was accepted")
	}
}
