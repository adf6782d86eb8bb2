package orders

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// The checkout saga, orchestrated by orders:
//
//	reserve   inventory holds the stock     out of stock: REJECTED
//	authorize payments authorizes the card  declined: release, REJECTED
//	commit    inventory sells the stock     expired: void, REJECTED
//	capture   payments takes the money      then CONFIRMED
//
// Each step is idempotent by order id (inventory) or by an
// Idempotency-Key derived from it (payments), so running a step twice,
// after a timeout or a crash, changes nothing. The order row names the
// next step; it is written in the same transaction that records a step's
// result in the saga log, so a restarted orders resumes exactly there.
//
// Reserve and authorize are retried until the step's deadline and then
// compensated. Authorization is the saga's pivot: after it, the saga only
// goes forward (commit, capture, retried until they succeed) unless the
// reservation has expired. Compensations (void, release, refund) are
// retried until they succeed.
const (
	stepReserve   = "reserve"
	stepAuthorize = "authorize"
	stepCommit    = "commit"
	stepCapture   = "capture"
	stepVoid      = "void"    // compensation: cancel the authorization
	stepRelease   = "release" // compensation: give the stock back, then REJECTED
	stepRefund    = "refund"  // cancel: refund the capture
	stepReturn    = "return"  // cancel: give the sold stock back, then CANCELLED
	stepDone      = "done"
)

// Inventory is what the saga needs of the inventory service.
type Inventory interface {
	// Quote prices lines without holding stock; unknown skus are an error
	// the caller shows the client.
	Quote(ctx context.Context, lines []LineRequest) ([]ordersapi.Line, int64, string, error)
	Reserve(ctx context.Context, orderID string, lines []LineRequest) ([]ordersapi.Line, int64, string, error)
	Commit(ctx context.Context, orderID string) error
	Release(ctx context.Context, orderID string) error
}

// Payments is what the saga needs of the payments service.
type Payments interface {
	Authorize(ctx context.Context, key, orderID string, amount int64, currency string, card paymentsapi.Card) (paymentID string, err error)
	Capture(ctx context.Context, key, paymentID string, amount int64) error
	Void(ctx context.Context, key, orderID string) error
	Refund(ctx context.Context, key, paymentID string, amount int64) error
	// Authorized returns the id of the order's authorized payment, or "".
	Authorized(ctx context.Context, orderID string) (string, error)
}

// Outcomes the adapters report with errors.Is.
var (
	ErrOutOfStock          = errors.New("out of stock")
	ErrDeclined            = errors.New("payment declined")
	ErrReservationReleased = errors.New("reservation released or expired")
	ErrOrderVoided         = errors.New("the order's payments were voided")
	ErrUnknownProduct      = errors.New("unknown product")
)

// sagas runs checkout and cancel sagas.
type sagas struct {
	store    store
	db       *database.DB
	outbox   events.Outbox
	inv      Inventory
	pay      Payments
	log      *slog.Logger
	owner    string
	stepTime time.Duration // how long reserve/authorize may keep retrying
	lease    time.Duration
	metrics  *sagaMetrics
	tracer   trace.Tracer
	now      func() time.Time

	mu      sync.Mutex
	running map[string]running // the sagas running in this process
	stopped bool               // RunSagas has stopped: sagas start cancelled
	wg      sync.WaitGroup
}

// running is a saga in progress in this process.
type running struct {
	done   chan struct{} // closed when the saga stops here
	cancel context.CancelFunc
}

// start runs the saga of id in the background unless this process already
// runs it. card is nil when resuming: the card is never stored.
//
// Whoever moves a saga to a step records that step as started in the same
// transaction (the order's insert, the previous step's end, a cancel), so
// a step costs one commit; a saga that is resumed records it again.
func (s *sagas) start(ctx context.Context, id string, card *paymentsapi.Card) <-chan struct{} {
	done, _ := s.startAt(ctx, id, card, false, nil)
	return done
}

// startNew runs the saga of o, which this process has just stored with
// its lease: the saga starts from o as it is, without reading it back.
// Once done is closed, final returns the order as the saga's last
// transaction left it, if the saga ran here to its end.
func (s *sagas) startNew(ctx context.Context, o order, card *paymentsapi.Card) (done <-chan struct{}, final func() (order, bool)) {
	return s.startAt(ctx, o.ID, card, false, &o)
}

// resumeSaga runs the saga of id, which this process just claimed.
func (s *sagas) resumeSaga(ctx context.Context, id string) <-chan struct{} {
	done, _ := s.startAt(ctx, id, nil, true, nil)
	return done
}

// The saga outlives ctx, which may be a request's, but keeps its values
// (the trace); it stops when it ends or when the service stops (stopAll).
func (s *sagas) startAt(ctx context.Context, id string, card *paymentsapi.Card, resumed bool, fresh *order) (<-chan struct{}, func() (order, bool)) {
	none := func() (order, bool) { return order{}, false }
	s.mu.Lock()
	if r, ok := s.running[id]; ok {
		s.mu.Unlock()
		return r.done, none
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if s.stopped {
		cancel()
	}
	ch := make(chan struct{})
	s.running[id] = running{done: ch, cancel: cancel}
	s.wg.Add(1)
	s.mu.Unlock()
	var (
		last     order // written before ch closes, read after
		finished bool
	)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.running, id)
			s.mu.Unlock()
			cancel()
			close(ch)
		}()
		o, err := s.run(ctx, id, card, resumed, fresh)
		if err != nil && ctx.Err() == nil {
			s.log.Error("saga stopped; it will be resumed", "order_id", id, "err", err)
		}
		last, finished = o, err == nil && o.SagaStep == stepDone
	}()
	return ch, func() (order, bool) {
		select {
		case <-ch:
			return last, finished
		default:
			return order{}, false
		}
	}
}

// run drives the saga of id from its current step until it is done, the
// lease is lost, or ctx ends. It must hold the lease (claimed by the
// caller, or set when the order was created). It reads the order and
// renews the lease once, unless fresh is the order this process has just
// stored with a new lease; after that each step's transaction renews the
// lease (only while this owner holds it), and the saga keeps the order
// as the transactions leave it.
func (s *sagas) run(ctx context.Context, id string, card *paymentsapi.Card, resumed bool, fresh *order) (order, error) {
	if ctx.Err() != nil {
		return order{}, ctx.Err()
	}
	var o order
	if fresh != nil {
		o = *fresh
	} else {
		var err error
		if o, err = s.store.get(ctx, s.db, id); err != nil {
			return order{}, err
		}
		if o.SagaStep == stepDone {
			return o, nil
		}
		if ok, err := s.store.renew(ctx, id, s.owner, s.now().Add(s.lease)); err != nil {
			return order{}, err
		} else if !ok {
			return order{}, fmt.Errorf("lost the saga lease of %s to another orders process", id)
		}
	}
	var err error
	if resumed {
		// The step has not run yet, so stopping here loses nothing: the
		// saga is resumed again, from this step, when the database answers.
		if err := s.store.log(ctx, s.db.Writer(), o.ID, s.now(), entry{o.SagaStep, "started", ""}); err != nil {
			return order{}, fmt.Errorf("resuming the saga of %s: %w", o.ID, err)
		}
	}
	for o.SagaStep != stepDone {
		if ctx.Err() != nil {
			return order{}, ctx.Err()
		}
		if o, err = s.step(ctx, o, card); err != nil {
			return order{}, err
		}
	}
	return o, nil
}

// errLeaseLost: another orders process holds the saga's lease now.
var errLeaseLost = errors.New("lost the saga lease to another orders process")

// step runs o's current step once (with its retries), records where the
// saga goes next, and returns the order as that left it.
func (s *sagas) step(ctx context.Context, o order, card *paymentsapi.Card) (_ order, err error) {
	ctx, span := s.tracer.Start(ctx, "saga "+o.SagaStep, trace.WithAttributes(
		attribute.String("order.id", o.ID), attribute.String("saga.step", o.SagaStep)))
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	switch o.SagaStep {
	case stepReserve:
		var lines []ordersapi.Line
		var total int64
		var currency string
		err := s.attempt(ctx, o, true, func(ctx context.Context) error {
			var err error
			lines, total, currency, err = s.inv.Reserve(ctx, o.ID, requestLines(o.Lines))
			return err
		})
		switch {
		case err == nil:
			return s.advance(ctx, o, stepAuthorize, "reserved "+fmt.Sprint(total)+" "+currency, func(tx *sql.Tx, o *order) error {
				if err := s.store.setLines(ctx, tx, o.ID, o.Lines, lines); err != nil {
					return err
				}
				o.Lines, o.TotalCents, o.Currency = lines, total, currency
				return nil
			})
		case errors.Is(err, ErrOutOfStock):
			return s.finish(ctx, o, ordersapi.StatusRejected, ordersapi.ReasonOutOfStock, err.Error())
		case errors.Is(err, ErrUnknownProduct):
			return s.finish(ctx, o, ordersapi.StatusRejected, ordersapi.ReasonOutOfStock, err.Error())
		default:
			// The reservation may have been made before inventory became
			// unreachable: give it back.
			return s.compensate(ctx, o, stepRelease, ordersapi.ReasonInventoryUnavailable, err)
		}

	case stepAuthorize:
		if card == nil {
			// Resumed after a restart: the card is gone. If payments
			// authorized it before we stopped, carry on; else give up.
			var pid string
			err := s.forever(ctx, o, func(ctx context.Context) error {
				var err error
				pid, err = s.pay.Authorized(ctx, o.ID)
				return err
			})
			if err != nil {
				return order{}, err
			}
			if pid != "" {
				return s.advance(ctx, o, stepCommit, "found authorization "+pid+" after a restart", func(tx *sql.Tx, o *order) error {
					o.PaymentID = pid
					return nil
				})
			}
			return s.compensate(ctx, o, stepVoid, ordersapi.ReasonInterrupted, errors.New("the card is not kept across restarts"))
		}
		var pid string
		err := s.attempt(ctx, o, true, func(ctx context.Context) error {
			var err error
			pid, err = s.pay.Authorize(ctx, "authorize:"+o.ID, o.ID, o.TotalCents, o.Currency, *card)
			return err
		})
		switch {
		case err == nil:
			return s.advance(ctx, o, stepCommit, "authorized "+pid, func(tx *sql.Tx, o *order) error {
				o.PaymentID = pid
				return nil
			})
		case errors.Is(err, ErrDeclined):
			return s.compensate(ctx, o, stepRelease, ordersapi.ReasonPaymentDeclined, err)
		case errors.Is(err, ErrOrderVoided):
			return s.compensate(ctx, o, stepRelease, ordersapi.ReasonPaymentUnavailable, err)
		default:
			// Timed out or unreachable: payments may still authorize it
			// late, so void the order's payments before giving the stock back.
			return s.compensate(ctx, o, stepVoid, ordersapi.ReasonPaymentUnavailable, err)
		}

	case stepCommit:
		err := s.forever(ctx, o, func(ctx context.Context) error {
			err := s.inv.Commit(ctx, o.ID)
			if errors.Is(err, ErrReservationReleased) {
				return permanent{err}
			}
			return err
		})
		switch {
		case err == nil:
			return s.advance(ctx, o, stepCapture, "stock sold", nil)
		case errors.Is(err, ErrReservationReleased):
			return s.compensate(ctx, o, stepVoid, ordersapi.ReasonReservationExpired, err)
		default:
			return order{}, err
		}

	case stepCapture:
		err := s.forever(ctx, o, func(ctx context.Context) error {
			return s.pay.Capture(ctx, "capture:"+o.ID, o.PaymentID, o.TotalCents)
		})
		if err != nil {
			return order{}, err
		}
		return s.finish(ctx, o, ordersapi.StatusConfirmed, "", "captured "+fmt.Sprint(o.TotalCents))

	case stepVoid:
		err := s.forever(ctx, o, func(ctx context.Context) error {
			return s.pay.Void(ctx, "void:"+o.ID, o.ID)
		})
		if err != nil {
			return order{}, err
		}
		return s.advance(ctx, o, stepRelease, "payments voided", nil)

	case stepRelease:
		err := s.forever(ctx, o, func(ctx context.Context) error { return s.inv.Release(ctx, o.ID) })
		if err != nil {
			return order{}, err
		}
		return s.finish(ctx, o, ordersapi.StatusRejected, o.Reason, "stock released")

	case stepRefund:
		err := s.forever(ctx, o, func(ctx context.Context) error {
			return s.pay.Refund(ctx, "refund:"+o.ID, o.PaymentID, o.TotalCents)
		})
		if err != nil {
			return order{}, err
		}
		return s.advance(ctx, o, stepReturn, "refunded "+fmt.Sprint(o.TotalCents), nil)

	case stepReturn:
		err := s.forever(ctx, o, func(ctx context.Context) error { return s.inv.Release(ctx, o.ID) })
		if err != nil {
			return order{}, err
		}
		return s.finish(ctx, o, ordersapi.StatusCancelled, "", "stock returned")
	}
	return order{}, fmt.Errorf("order %s is at an unknown saga step %q", o.ID, o.SagaStep)
}

// permanent marks an error that retrying cannot fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// retryable reports whether err is the kind a later try may not repeat:
// the target was unreachable, timed out, or said it was unavailable.
func retryable(err error) bool {
	var p permanent
	if errors.As(err, &p) {
		return false
	}
	return errors.Is(err, client.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// attempt runs call, retrying what is retryable with backoff until the
// step's deadline (set when the step began, so a restart does not extend
// it). A non-retryable error returns at once.
func (s *sagas) attempt(ctx context.Context, o order, bounded bool, call func(context.Context) error) error {
	deadline := o.StepDeadline
	if deadline.IsZero() {
		deadline = s.now().Add(s.stepTime)
	}
	for i := 0; ; i++ {
		cctx, cancel := context.WithDeadline(ctx, deadline)
		err := call(cctx)
		cancel()
		if err == nil || !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if bounded && !s.now().Before(deadline) {
			return fmt.Errorf("%s did not succeed before its deadline: %w", o.SagaStep, err)
		}
		s.noteRetry(ctx, o, err)
		if err := s.sleep(ctx, o, i); err != nil {
			return err
		}
	}
}

// forever retries call until it succeeds or fails for good. Steps after
// the pivot and compensations use it: they must happen eventually.
func (s *sagas) forever(ctx context.Context, o order, call func(context.Context) error) error {
	for i := 0; ; i++ {
		cctx, cancel := context.WithTimeout(ctx, s.stepTime)
		err := call(cctx)
		cancel()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.metrics.retry(o.SagaStep)
		s.noteRetry(ctx, o, err)
		if err := s.sleep(ctx, o, i); err != nil {
			return err
		}
	}
}

// noteRetry records in the saga log that o's step failed with cause and
// will be tried again. The entry is a record for people, not state the
// saga resumes from, so failing to write it must not stop a retry that
// may be moving money back; it is logged instead. A database that is
// really gone stops the saga at the lease renewal in sleep, which follows.
func (s *sagas) noteRetry(ctx context.Context, o order, cause error) {
	if err := s.store.log(ctx, s.db.Writer(), o.ID, s.now(), entry{o.SagaStep, "retrying", cause.Error()}); err != nil && ctx.Err() == nil {
		s.log.Warn("recording a saga retry", "order_id", o.ID, "step", o.SagaStep, "cause", cause, "err", err)
	}
}

// sleep backs off with full jitter (capped at 2s) and renews the lease.
func (s *sagas) sleep(ctx context.Context, o order, attempt int) error {
	limit := min(50*time.Millisecond<<min(attempt, 6), 2*time.Second)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(rand.Int64N(int64(limit)) + 1)):
	}
	if ok, err := s.store.renew(ctx, o.ID, s.owner, s.now().Add(s.lease)); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("lost the saga lease of %s", o.ID)
	}
	return nil
}

// advance records a step's success and moves to next in one transaction,
// which also records next as started. also, when set, makes the step's
// own changes in tx and to the order it is given. It returns the order as
// the transaction left it.
func (s *sagas) advance(ctx context.Context, o order, next, detail string, also func(tx *sql.Tx, o *order) error) (order, error) {
	now := s.now()
	var deadline time.Time
	if next == stepReserve || next == stepAuthorize {
		deadline = now.Add(s.stepTime)
	}
	given := o
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		o = given // a run again (group commit) starts from the order as given
		if also != nil {
			if err := also(tx, &o); err != nil {
				return err
			}
		}
		return s.moveTo(ctx, tx, &o, next, deadline, now, entry{given.SagaStep, "succeeded", detail})
	})
	if err != nil {
		return order{}, err
	}
	return o, nil
}

// moveTo sets the saga of o at step (renewing the lease, which must still
// be this owner's), stores what the step changed in o, and records ended
// (how the step before went) and step as started, in tx; o follows.
func (s *sagas) moveTo(ctx context.Context, tx *sql.Tx, o *order, step string, deadline, now time.Time, ended entry) error {
	lease := now.Add(s.lease)
	if step == stepDone {
		lease = now
	}
	if err := s.store.advance(ctx, tx, o, step, deadline, lease, now, s.owner); err != nil {
		return err
	}
	entries := []entry{ended}
	if step != stepDone {
		entries = append(entries, entry{step, "started", ""})
	}
	if err := s.store.log(ctx, tx, o.ID, now, entries...); err != nil {
		return err
	}
	o.SagaStep, o.StepDeadline, o.UpdatedAt = step, deadline, now
	return nil
}

// compensate records a failed step and turns the saga to a compensation.
func (s *sagas) compensate(ctx context.Context, o order, next, reason string, cause error) (order, error) {
	now := s.now()
	s.metrics.compensation(reason)
	given := o
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		o = given // a run again (group commit) starts from the order as given
		o.Reason = reason
		return s.moveTo(ctx, tx, &o, next, time.Time{}, now, entry{given.SagaStep, "failed", reason + ": " + cause.Error()})
	})
	if err != nil {
		return order{}, err
	}
	return o, nil
}

// finish gives the order its final status and publishes it, in one
// transaction with the saga's end.
func (s *sagas) finish(ctx context.Context, o order, status, reason, detail string) (order, error) {
	now := s.now()
	event := "succeeded"
	if status == ordersapi.StatusRejected && o.SagaStep != stepRelease {
		event = "failed"
	}
	given := o
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		o = given // a run again (group commit) starts from the order as given
		o.Status, o.Reason = status, reason
		if err := s.moveTo(ctx, tx, &o, stepDone, time.Time{}, now, entry{given.SagaStep, event, detail}); err != nil {
			return err
		}
		lines := o.Lines
		var body events.Body
		switch status {
		case ordersapi.StatusConfirmed:
			body = ordersapi.OrderConfirmed{OrderID: o.ID, UserID: o.UserID, Lines: lines,
				TotalCents: o.TotalCents, Currency: o.Currency, PaymentID: o.PaymentID, ConfirmedAt: now.UTC()}
		case ordersapi.StatusRejected:
			body = ordersapi.OrderRejected{OrderID: o.ID, UserID: o.UserID, Reason: reason, Lines: lines,
				TotalCents: o.TotalCents, Currency: o.Currency, RejectedAt: now.UTC()}
		case ordersapi.StatusCancelled:
			body = ordersapi.OrderCancelled{OrderID: o.ID, UserID: o.UserID, Lines: lines,
				TotalCents: o.TotalCents, RefundedCents: o.TotalCents, Currency: o.Currency, CancelledAt: now.UTC()}
		}
		_, err := s.outbox.Add(ctx, tx, body)
		return err
	})
	if err != nil {
		return order{}, err
	}
	s.metrics.finished(status, reason, now.Sub(o.CreatedAt))
	return o, nil
}

// requestLines turns stored lines back into reservation lines.
func requestLines(lines []ordersapi.Line) []LineRequest {
	out := make([]LineRequest, len(lines))
	for i, l := range lines {
		out[i] = LineRequest{SKU: l.SKU, Quantity: l.Quantity}
	}
	return out
}

// stopAll stops every saga running in this process, and any started
// after it.
func (s *sagas) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for _, r := range s.running {
		r.cancel()
	}
}

// resume claims and runs unfinished sagas. At start it also reclaims the
// sagas this owner held before a restart; afterwards, every interval, it
// picks up sagas whose owner's lease ran out (a crashed replica).
func (s *sagas) resume(ctx context.Context, interval time.Duration) error {
	reclaimOwn := true
	for {
		ids, err := s.store.unfinished(ctx, s.owner, reclaimOwn, s.now(), 1000)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("looking for unfinished sagas failed", "err", err)
		}
		for _, id := range ids {
			s.mu.Lock()
			_, mine := s.running[id]
			s.mu.Unlock()
			if mine {
				continue
			}
			ok, err := s.store.claim(ctx, id, s.owner, reclaimOwn, s.now(), s.now().Add(s.lease))
			if err != nil {
				s.log.Warn("claiming a saga failed", "order_id", id, "err", err)
				continue
			}
			if ok {
				s.log.Info("resuming saga", "order_id", id)
				s.metrics.resumed()
				s.resumeSaga(ctx, id)
			}
		}
		reclaimOwn = false
		select {
		case <-ctx.Done():
			// Stopping: once this process's sagas have stopped, hand their
			// leases back so another replica resumes them at once instead
			// of waiting for the leases to run out.
			s.stopAll()
			s.wg.Wait()
			if err := s.store.releaseLeases(context.WithoutCancel(ctx), s.owner); err != nil {
				s.log.Warn("handing back saga leases failed; they expire by themselves", "err", err)
			}
			return nil
		case <-time.After(interval):
		}
	}
}
