// Package payments owns payments and their double-entry ledger. It
// authorizes, captures, voids and refunds card payments for orders, asking
// a card Processor for every authorization, and announces
// payments.captured, payments.refunded and payments.failed.
//
// The one processor today is a simulated one (--processor simulator): no
// card network is called. Its test cards (spaces and dashes are allowed):
//
//	4242 4242 4242 4242  approved
//	4000 0000 0000 0002  declined, reason card_declined
//	4000 0000 0000 9995  declined, reason insufficient_funds
//	4000 0000 0000 0077  answers after --slow-card-delay (10s), then
//	                     approves; a caller that gives up first frees it
//
// Two flags make the simulator behave like a remote processor, for load tests
// and demos: --processor-latency adds a round trip to every
// authorization, and --processor-connections bounds how many a process
// has at the processor at once (more wait in line), so one process's
// authorizations per second are connections / latency, and each replica
// adds as many again. Both are off (0) by default.
//
// Any other valid card (Luhn, 12-19 digits, visa, mastercard, amex or
// discover, not expired, a cvc of 3 digits or 4 for amex) is approved.
// Of a card only its brand and last four digits are ever stored; the
// number and cvc live in memory for the length of one request.
//
// Its routes are internal, for orders only (authorize, capture, void,
// refund, list by order; every write under an Idempotency-Key), and
// admin (list payments, one payment, the ledger).
package payments

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// Config holds the payments service's settings.
type Config struct {
	// Processor is the card processor authorizations go to (see
	// NewProcessor); nil is the simulator with its zero settings.
	Processor Processor
	// IdempotencyTTL is how long the answer to an idempotency key is kept
	// (0: forever).
	IdempotencyTTL time.Duration
}

// Service is the payments service.
type Service struct {
	cfg    Config
	db     *database.DB
	store  store
	outbox events.Outbox
	proc   Processor
	// keys serialises requests that share an idempotency key.
	keys keyLocks
	log  *slog.Logger
	now  func() time.Time
}

// Deps are what the payments service works with.
type Deps struct {
	DB  *database.DB
	Log *slog.Logger
}

// New returns the service over its database. It does no work at start,
// so ctx goes unused; it is there so every service is built the same way.
// A nil cfg.Processor is the simulator with its zero settings.
func New(_ context.Context, cfg Config, deps Deps) (*Service, error) {
	db, log := deps.DB, deps.Log
	proc := cfg.Processor
	if proc == nil {
		proc, _ = NewSimulator(SimulatorConfig{}) // zero settings are valid
	}
	return &Service{cfg: cfg, db: db, store: store{db: db}, proc: proc,
		keys: keyLocks{held: map[string]*keyLock{}}, log: log, now: now}, nil
}

// now is the service's clock, at the millisecond the database keeps, so
// an answer shows the times that a later read shows.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// Outcome keeps the result of a write with its idempotency key. A write
// calls Save inside its own transaction, so the answer exists exactly
// when the change does, and a retry finds it.
type Outcome interface {
	Save(ctx context.Context, tx *sql.Tx, result any, err error) error
}

// authorization is a validated request to hold money on a card.
type authorization struct {
	orderID  string
	amount   int64
	currency string
	card     paymentsapi.Checked
}

// newAuthorization checks every field of req as of now, returning one
// problem per invalid field.
func newAuthorization(req paymentsapi.AuthorizeRequest, now time.Time) (authorization, []validation.FieldError) {
	var errs []validation.FieldError
	if reason := orderIDProblem(req.OrderID); reason != "" {
		errs = append(errs, validation.FieldError{Field: "order_id", Reason: reason})
	}
	if reason := amountProblem(req.AmountCents); reason != "" {
		errs = append(errs, validation.FieldError{Field: "amount_cents", Reason: reason})
	}
	if reason := validation.Currency(req.Currency); reason != "" {
		errs = append(errs, validation.FieldError{Field: "currency", Reason: reason})
	}
	c, cardErrs := parseCard(req.Card, now)
	errs = append(errs, cardErrs...)
	if len(errs) > 0 {
		return authorization{}, errs
	}
	return authorization{orderID: req.OrderID, amount: req.AmountCents, currency: req.Currency, card: c}, nil
}

// parseCard checks every field of in as of now with the contract's
// Check, so orders' early check and payments agree on every card: field
// names are prefixed with "card." and reasons never echo the number or
// the cvc. The checked card holds the number only in memory, for the
// processor, and prints and logs masked.
func parseCard(in paymentsapi.Card, now time.Time) (paymentsapi.Checked, []validation.FieldError) {
	return in.Check(now)
}

const maxOrderID = 100

func orderIDProblem(id string) string {
	switch {
	case id == "":
		return "is required"
	case len(id) > maxOrderID:
		return fmt.Sprintf("must be at most %d bytes", maxOrderID)
	case !utf8.ValidString(id):
		return "must be valid UTF-8"
	case strings.IndexFunc(id, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0:
		return "must not hold spaces or control characters"
	}
	return ""
}

func amountProblem(cents int64) string {
	if cents < paymentsapi.MinAmountCents || cents > paymentsapi.MaxAmountCents {
		return fmt.Sprintf("must be from %d to %d (minor units)", paymentsapi.MinAmountCents, paymentsapi.MaxAmountCents)
	}
	return ""
}

// Authorize asks the processor to hold a's amount on its card and records
// the payment, authorized or declined. A decline is a
// *contract.DeclinedError, recorded and announced as payments.failed. An
// order voided before is refused with contract.ErrOrderVoided.
func (s *Service) Authorize(ctx context.Context, a authorization, out Outcome) (paymentsapi.Payment, error) {
	// Spare the processor a doomed call; the check that counts is the
	// one under the order's lock below.
	if voided, err := s.store.orderVoided(ctx, a.orderID); err != nil {
		return paymentsapi.Payment{}, err
	} else if voided {
		return paymentsapi.Payment{}, paymentsapi.ErrOrderVoided
	}
	// The processor is asked outside the transaction: a slow answer must
	// not hold the database's writer.
	d, err := s.proc.Authorize(ctx, a.card, a.amount, a.currency)
	if err != nil {
		return paymentsapi.Payment{}, fmt.Errorf("asking the card processor for order %s: %w", a.orderID, err)
	}
	now := s.now()
	p := payment{id: ids.New(), orderID: a.orderID, status: paymentsapi.StatusAuthorized, amount: a.amount,
		currency: a.currency, brand: a.card.Brand(), last4: a.card.Last4(), createdAt: now, updatedAt: now}
	var declined error
	if d.Declined != "" {
		p.status, p.declineReason = paymentsapi.StatusDeclined, d.Declined
		declined = &paymentsapi.DeclinedError{Reason: d.Declined, PaymentID: p.id}
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		voided, err := s.store.lockOrder(ctx, tx, a.orderID)
		if err != nil {
			return err
		}
		if voided {
			return paymentsapi.ErrOrderVoided
		}
		if err := s.store.insertPayment(ctx, tx, p); err != nil {
			return err
		}
		if declined != nil {
			if _, err := s.outbox.Add(ctx, tx, paymentsapi.PaymentFailed{PaymentID: p.id, OrderID: p.orderID,
				AmountCents: p.amount, Currency: p.currency, Reason: p.declineReason}); err != nil {
				return err
			}
			return out.Save(ctx, tx, nil, declined)
		}
		if err := s.store.post(ctx, tx, moveAuthorize, ids.New(), p, p.amount, now); err != nil {
			return err
		}
		return out.Save(ctx, tx, p.public(), nil)
	})
	if err != nil {
		return paymentsapi.Payment{}, fmt.Errorf("authorizing a payment for order %s: %w", a.orderID, err)
	}
	if declined != nil {
		return paymentsapi.Payment{}, declined
	}
	return p.public(), nil
}

// Capture takes the whole amount of authorized payment id. amount, when
// not nil, must equal it. A payment is captured once: any later capture
// is contract.ErrAlreadyCaptured.
func (s *Service) Capture(ctx context.Context, id string, amount *int64, out Outcome) (paymentsapi.Payment, error) {
	var p payment
	want := int64(-1)
	if amount != nil {
		want = *amount
	}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		var ok bool
		var err error
		if p, ok, err = s.store.capture(ctx, tx, id, want, now); err != nil {
			return err
		}
		if !ok {
			// Say why: read what is there, in the order the checks
			// have always been made.
			if p, err = s.store.payment(ctx, tx, id); err != nil {
				return err
			}
			if err := capturable(p); err != nil {
				return err
			}
			if amount != nil && *amount != p.amount {
				return validation.Errors{{Field: "amount_cents",
					Reason: fmt.Sprintf("must equal the authorized amount, %d, or be left out", p.amount)}}
			}
			return fmt.Errorf("payment %s is %s and yet could not be captured", id, p.status)
		}
		if err := s.store.post(ctx, tx, moveCapture, ids.New(), p, p.amount, now); err != nil {
			return err
		}
		if _, err := s.outbox.Add(ctx, tx, paymentsapi.PaymentCaptured{PaymentID: p.id, OrderID: p.orderID,
			AmountCents: p.amount, Currency: p.currency}); err != nil {
			return err
		}
		return out.Save(ctx, tx, p.public(), nil)
	})
	if err != nil {
		return paymentsapi.Payment{}, fmt.Errorf("capturing payment %s: %w", id, err)
	}
	return p.public(), nil
}

// capturable says why p cannot be captured, or nil.
func capturable(p payment) error {
	switch p.status {
	case paymentsapi.StatusAuthorized:
		return nil
	case paymentsapi.StatusCaptured:
		return paymentsapi.ErrAlreadyCaptured
	case paymentsapi.StatusVoided:
		return paymentsapi.ErrPaymentVoided
	default:
		return paymentsapi.ErrNotAuthorized
	}
}

// Void releases the holds of every authorized payment of orderID and
// leaves a tombstone, so a late authorization for the order is refused.
// Captured payments are left alone and listed in the result; voiding
// again gives the same result.
func (s *Service) Void(ctx context.Context, orderID string, out Outcome) (paymentsapi.VoidResult, error) {
	res := paymentsapi.VoidResult{OrderID: orderID, Voided: []string{}, Captured: []string{}}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		// The tombstone first: it takes the order's lock, so an
		// authorization in flight either committed before (and is voided
		// below) or sees the tombstone.
		if err := s.store.tombstone(ctx, tx, orderID, now); err != nil {
			return err
		}
		voided, err := s.store.voidAuthorized(ctx, tx, orderID, now)
		if err != nil {
			return err
		}
		for _, p := range voided {
			if err := s.store.post(ctx, tx, moveVoid, ids.New(), p, p.amount, now); err != nil {
				return err
			}
		}
		all, err := s.store.byOrder(ctx, tx, orderID)
		if err != nil {
			return err
		}
		for _, p := range all {
			switch p.status {
			case paymentsapi.StatusVoided:
				res.Voided = append(res.Voided, p.id)
			case paymentsapi.StatusCaptured:
				res.Captured = append(res.Captured, p.id)
			}
		}
		return out.Save(ctx, tx, res, nil)
	})
	if err != nil {
		return paymentsapi.VoidResult{}, fmt.Errorf("voiding order %s: %w", orderID, err)
	}
	return res, nil
}

// Refund gives amount of captured payment id back. The refunds of a
// payment never pass its captured amount (contract.ErrRefundExceeds).
func (s *Service) Refund(ctx context.Context, id string, amount int64, out Outcome) (paymentsapi.Payment, error) {
	var p payment
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if p, err = s.store.payment(ctx, tx, id); err != nil {
			return err
		}
		if p.status != paymentsapi.StatusCaptured {
			return paymentsapi.ErrNotCaptured
		}
		now := s.now()
		total, ok, err := s.store.refund(ctx, tx, id, amount, now)
		if err != nil {
			return err
		}
		if !ok {
			return paymentsapi.ErrRefundExceeds
		}
		p.refunded, p.updatedAt = total, now
		if err := s.store.post(ctx, tx, moveRefund, ids.New(), p, amount, now); err != nil {
			return err
		}
		if _, err := s.outbox.Add(ctx, tx, paymentsapi.PaymentRefunded{PaymentID: p.id, OrderID: p.orderID,
			AmountCents: amount, RefundedCentsTotal: total, Currency: p.currency}); err != nil {
			return err
		}
		return out.Save(ctx, tx, p.public(), nil)
	})
	if err != nil {
		return paymentsapi.Payment{}, fmt.Errorf("refunding payment %s: %w", id, err)
	}
	return p.public(), nil
}

// ByOrder lists an order's payments, oldest first.
func (s *Service) ByOrder(ctx context.Context, orderID string) ([]paymentsapi.Payment, error) {
	ps, err := s.store.byOrder(ctx, s.db, orderID)
	if err != nil {
		return nil, err
	}
	return publics(ps), nil
}

// Payments lists up to limit payments older than before, newest first, of
// one order when orderID is set, and says whether more follow.
func (s *Service) Payments(ctx context.Context, orderID, before string, limit int) ([]paymentsapi.Payment, bool, error) {
	ps, err := s.store.list(ctx, orderID, before, limit+1)
	if err != nil {
		return nil, false, err
	}
	more := len(ps) > limit
	if more {
		ps = ps[:limit]
	}
	return publics(ps), more, nil
}

// Payment returns one payment.
func (s *Service) Payment(ctx context.Context, id string) (paymentsapi.Payment, error) {
	p, err := s.store.payment(ctx, s.db, id)
	if err != nil {
		return paymentsapi.Payment{}, err
	}
	return p.public(), nil
}

// Ledger sums the ledger, or one payment's part of it.
func (s *Service) Ledger(ctx context.Context, paymentID string) (paymentsapi.Ledger, error) {
	return s.store.ledger(ctx, paymentID)
}

// RunKeyExpiry deletes the answers of idempotency keys older than the
// configured TTL, every hour, until ctx is done.
func (s *Service) RunKeyExpiry(ctx context.Context) error {
	const interval = time.Hour
	if s.cfg.IdempotencyTTL <= 0 {
		return nil
	}
	for {
		n, err := s.store.forgetAnswers(ctx, s.now().Add(-s.cfg.IdempotencyTTL))
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("forgetting old idempotency keys failed; will retry", "err", err)
		case n > 0:
			s.log.Info("forgot old idempotency keys", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

func publics(ps []payment) []paymentsapi.Payment {
	out := make([]paymentsapi.Payment, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.public())
	}
	return out
}
