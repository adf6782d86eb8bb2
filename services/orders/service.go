// Package orders owns orders, their lines and the checkout saga that
// keeps three databases consistent: it reserves stock in inventory,
// authorizes the card in payments, commits the stock, captures the
// money, and confirms the order, compensating when a step fails. It
// announces the outcome as orders.confirmed, orders.rejected or
// orders.cancelled.
package orders

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/platform/telemetry"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// Errors of the orders domain; http.go maps them to statuses.
var (
	ErrNotFound       = errors.New("no such order")
	ErrKeyReused      = errors.New("this Idempotency-Key was used for a different order")
	ErrNotCancellable = errors.New("the order cannot be cancelled")
	ErrAdminsOnly     = errors.New("only admins may list every customer's orders")
)

// Config holds the orders service's settings.
type Config struct {
	// StepTimeout is how long reserve and authorize keep retrying an
	// unreachable service before the saga compensates.
	StepTimeout time.Duration
	// Wait is how long POST /api/orders waits for the saga before it
	// answers 202 with a Location to poll.
	Wait time.Duration
	// Owner names this process for saga leases; it must be stable across
	// restarts of the same replica so it can reclaim its sagas at once.
	Owner string
}

// Service is the orders service.
type Service struct {
	cfg   Config
	db    *database.DB
	store store
	inv   Inventory
	sagas *sagas
	log   *slog.Logger
}

// Place stores a new order and starts its saga; it returns the order as
// it stands when the saga ends or cfg.Wait passes. created says whether
// this call made the order (false: an earlier call with the same key did).
func (s *Service) Place(ctx context.Context, c *auth.Claims, key string, req PlaceOrder) (o order, created bool, err error) {
	// The handler's Valid checked the card already; this check, as of
	// the saga's clock, gives the brand and last four digits to keep.
	checked, cardErrs := req.Card.Check(s.sagas.now())
	if len(cardErrs) > 0 {
		return order{}, false, validation.Errors(cardErrs)
	}
	hash := req.hash(checked)
	if existing, err := s.store.byKey(ctx, c.UserID(), key); err == nil {
		if existing.RequestHash != hash {
			return order{}, false, ErrKeyReused
		}
		return s.waitFor(ctx, existing.ID), false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return order{}, false, err
	}

	// Prices come from inventory, never from the client; an unknown
	// product is refused before anything is stored.
	lines, total, currency, err := s.inv.Quote(ctx, req.Lines)
	if err != nil {
		return order{}, false, err
	}
	now := s.sagas.now()
	o = order{
		ID: ids.New(), UserID: c.UserID(), IdempotencyKey: key, RequestHash: hash,
		Status: ordersapi.StatusPending, Lines: lines, TotalCents: total, Currency: currency,
		Shipping: trimAddress(req.ShippingAddress), Card: ordersapi.CardSummary{Brand: checked.Brand(), Last4: checked.Last4()},
		SagaStep: stepReserve, StepDeadline: now.Add(s.cfg.StepTimeout), CreatedAt: now, UpdatedAt: now,
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.store.insert(ctx, tx, o, s.cfg.Owner, now.Add(s.sagas.lease)); err != nil {
			return err
		}
		return s.store.log(ctx, tx, o.ID, now, entry{"create", "succeeded", fmt.Sprintf("%d lines, %d %s", len(lines), total, currency)},
			entry{stepReserve, "started", ""})
	})
	if errors.Is(err, errDuplicateKey) {
		// A concurrent request with the same key won the race.
		return s.Place(ctx, c, key, req)
	}
	if err != nil {
		return order{}, false, err
	}
	card := req.Card
	// The saga outlives the request but stays in its trace.
	done, final := s.sagas.startNew(ctx, o, &card)
	s.wait(ctx, done)
	if f, ok := final(); ok {
		// The saga ended here: its last transaction wrote this order,
		// so there is nothing to read back. Times as the database keeps
		// them, to the millisecond.
		f.CreatedAt, f.UpdatedAt = time.UnixMilli(f.CreatedAt.UnixMilli()), time.UnixMilli(f.UpdatedAt.UnixMilli())
		return f, true, nil
	}
	o, err = s.store.get(ctx, s.db, o.ID)
	return o, true, err
}

func trimAddress(a ordersapi.Address) ordersapi.Address {
	return ordersapi.Address{Name: strings.TrimSpace(a.Name), Street: strings.TrimSpace(a.Street),
		City: strings.TrimSpace(a.City), PostalCode: strings.TrimSpace(a.PostalCode), Country: a.Country}
}

// wait blocks until done closes, cfg.Wait passes, or ctx ends.
func (s *Service) wait(ctx context.Context, done <-chan struct{}) {
	t := time.NewTimer(s.cfg.Wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// waitFor waits a little for a saga this process is running, then returns
// the order as it stands.
func (s *Service) waitFor(ctx context.Context, id string) order {
	s.sagas.mu.Lock()
	r, running := s.sagas.running[id]
	s.sagas.mu.Unlock()
	if running {
		s.wait(ctx, r.done)
	}
	o, err := s.store.get(ctx, s.db, id)
	if err != nil {
		s.log.Warn("reading an order after waiting", "order_id", id, "err", err)
	}
	return o
}

// Get returns an order its owner (or an admin) may see. Another
// customer's order is ErrNotFound, as if it did not exist.
func (s *Service) Get(ctx context.Context, c *auth.Claims, id string) (order, error) {
	if !ids.Valid(id) {
		return order{}, ErrNotFound
	}
	o, err := s.store.get(ctx, s.db, id)
	if err != nil {
		return order{}, err
	}
	if o.UserID != c.UserID() && !c.HasRole(auth.RoleAdmin) {
		return order{}, ErrNotFound
	}
	return o, nil
}

// List returns the caller's orders, newest first; admins may ask for
// everyone's.
func (s *Service) List(ctx context.Context, c *auth.Claims, all bool, after string, limit int) ([]order, error) {
	user := c.UserID()
	if all {
		if !c.HasRole(auth.RoleAdmin) {
			return nil, ErrAdminsOnly
		}
		user = ""
	}
	return s.store.list(ctx, user, after, limit)
}

// Saga returns an order's saga log.
func (s *Service) Saga(ctx context.Context, c *auth.Claims, id string) ([]ordersapi.SagaEntry, error) {
	if _, err := s.Get(ctx, c, id); err != nil {
		return nil, err
	}
	return s.store.sagaLog(ctx, id)
}

// Cancel cancels a confirmed order: it refunds the payment, returns the
// stock and marks it CANCELLED, through the same saga machinery.
func (s *Service) Cancel(ctx context.Context, c *auth.Claims, id string) (order, error) {
	o, err := s.Get(ctx, c, id)
	if err != nil {
		return order{}, err
	}
	switch {
	case o.Status == ordersapi.StatusCancelled, o.SagaStep == stepRefund, o.SagaStep == stepReturn:
		return s.waitFor(ctx, id), nil // already cancelled, or cancelling
	case o.Status == ordersapi.StatusPending:
		return order{}, fmt.Errorf("%w: it is still being placed; try again in a moment", ErrNotCancellable)
	case o.Status != ordersapi.StatusConfirmed:
		return order{}, fmt.Errorf("%w: it is %s", ErrNotCancellable, o.Status)
	}
	now := s.sagas.now()
	var moved bool
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if moved, err = s.store.startCancel(ctx, tx, id, s.cfg.Owner, now.Add(s.sagas.lease), now); err != nil || !moved {
			return err
		}
		return s.store.log(ctx, tx, id, now, entry{"cancel", "started", "requested by " + c.UserID()}, entry{stepRefund, "started", ""})
	})
	if err != nil {
		return order{}, err
	}
	if moved {
		s.wait(ctx, s.sagas.start(ctx, id, nil))
	}
	return s.waitFor(ctx, id), nil
}

// Deps are what the orders service works with.
type Deps struct {
	DB        *database.DB
	Inventory Inventory
	Payments  Payments
	// Registry takes the saga metrics.
	Registry prometheus.Registerer
	Log      *slog.Logger
	// Telemetry traces the saga's steps; nil traces nothing.
	Telemetry *telemetry.Telemetry
}

// New builds the orders service. It does no work at start, so ctx goes
// unused; it is there so every service is built the same way. The sagas
// it starts run until they end or RunSagas stops.
func New(_ context.Context, cfg Config, deps Deps) (*Service, error) {
	db, inv, pay, reg, log := deps.DB, deps.Inventory, deps.Payments, deps.Registry, deps.Log
	st := store{db: db}
	if deps.Telemetry == nil {
		deps.Telemetry = telemetry.Disabled()
	}
	sg := &sagas{store: st, db: db, inv: inv, pay: pay, log: log, owner: cfg.Owner, tracer: deps.Telemetry.Tracer,
		stepTime: cfg.StepTimeout, lease: 30 * time.Second, now: time.Now, running: map[string]running{}}
	sg.metrics = newSagaMetrics(reg, st.sagaCounts)
	return &Service{cfg: cfg, db: db, store: st, inv: inv, sagas: sg, log: log}, nil
}

// RunSagas claims and runs the sagas left unfinished (by this replica
// before a restart, or by one that crashed) until ctx is done; then it
// stops every saga running here and hands their leases back.
func (s *Service) RunSagas(ctx context.Context) error { return s.sagas.resume(ctx, 5*time.Second) }
