// Package reports is microshop's read model: sales, revenue, refunds,
// best-selling products and low-stock alerts, built only from the events
// orders, payments and inventory publish. It reads no other service's
// database or API, so it can be thrown away and rebuilt by replaying the
// streams (rebuild.go).
package reports

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/services/reports/reportsapi"
)

// Config is what reports needs besides its stores.
type Config struct {
	// Currency is the reports' currency when a request names none.
	Currency string
	// StaleRebuild is how long a running rebuild may go without a
	// heartbeat before another process takes it over (its owner died).
	StaleRebuild time.Duration
}

// ErrRebuildRunning: a rebuild is already running; wait for it.
var ErrRebuildRunning = errors.New("a rebuild is already running")

// Service answers reports from the read model and keeps it up to date.
type Service struct {
	store     store
	log       *slog.Logger
	currency  string
	consumers []*events.Consumer
	rebuilds  *rebuilder
	now       func() time.Time
}

// Deps are what the reports service works with.
type Deps struct {
	DB *database.DB
	// JS is where a rebuild replays the streams from.
	JS  jetstream.JetStream
	Log *slog.Logger
}

// New returns reports over its database. It does no work at start, so
// ctx goes unused; it is there so every service is built the same way.
func New(_ context.Context, cfg Config, deps Deps) (*Service, error) {
	db, js, log := deps.DB, deps.JS, deps.Log
	if cfg.Currency == "" {
		cfg.Currency = "USD"
	}
	if cfg.StaleRebuild <= 0 {
		cfg.StaleRebuild = 10 * time.Second
	}
	s := &Service{store: store{db: db}, log: log, currency: cfg.Currency, now: time.Now}
	s.consumers = s.newConsumers()
	s.rebuilds = newRebuilder(s.store, js, log, s.subscriptions(), s.consumers, ids.New(), cfg.StaleRebuild)
	return s, nil
}

// Consumers are the durable consumers that keep the model up to date,
// one per subject; the runtime runs them.
func (s *Service) Consumers() []*events.Consumer { return s.consumers }

// Sales sums confirmed orders and refunds of q's range by bucket. Every
// bucket of the range is listed, empty ones too.
func (s *Service) Sales(ctx context.Context, q SalesQuery) (reportsapi.Sales, error) {
	b := buckets[q.Bucket]
	from, to := q.fromMS(), q.toMS()
	sums, err := s.store.sales(ctx, from, to, b, q.Currency)
	if err != nil {
		return reportsapi.Sales{}, err
	}
	out := reportsapi.Sales{From: q.From, To: q.To, Bucket: q.Bucket, Currency: q.Currency, Buckets: []reportsapi.Bucket{}}
	for start := b.start(from); start < to; start += b.size {
		r := sums[start]
		f := reportsapi.Figures{Orders: r.orders, RevenueCents: r.revenue, RefundsCents: r.refunds, NetCents: r.revenue - r.refunds}
		out.Buckets = append(out.Buckets, reportsapi.Bucket{Start: msTime(start), Figures: f})
		out.Totals.Orders += f.Orders
		out.Totals.RevenueCents += f.RevenueCents
		out.Totals.RefundsCents += f.RefundsCents
		out.Totals.NetCents += f.NetCents
	}
	return out, nil
}

// TopProducts lists the products of the orders confirmed in q's range,
// by units still sold.
func (s *Service) TopProducts(ctx context.Context, q TopQuery) (reportsapi.TopProducts, error) {
	items, err := s.store.topProducts(ctx, q.fromMS(), q.toMS(), q.Currency, q.Limit)
	if err != nil {
		return reportsapi.TopProducts{}, err
	}
	return reportsapi.TopProducts{From: q.From, To: q.To, Currency: q.Currency, Items: items}, nil
}

// Summary sums the whole model, money in currency.
func (s *Service) Summary(ctx context.Context, currency string) (reportsapi.Summary, error) {
	return s.store.summary(ctx, currency)
}

// LowStock lists the newest low-stock alerts.
func (s *Service) LowStock(ctx context.Context, limit int) (reportsapi.LowStock, error) {
	items, err := s.store.lowStockAlerts(ctx, limit)
	if err != nil {
		return reportsapi.LowStock{}, err
	}
	return reportsapi.LowStock{Items: items}, nil
}

// Rebuilding returns the id of the rebuild running now, or "". Reports
// answered meanwhile come from a partial model.
func (s *Service) Rebuilding(ctx context.Context) (string, error) {
	r, err := s.store.rebuild(ctx)
	if err != nil || r.state != reportsapi.RebuildRunning {
		return "", err
	}
	return r.id, nil
}

// StartRebuild wipes and replays the model in the background. It returns
// ErrRebuildRunning, with the running rebuild, when one runs already.
func (s *Service) StartRebuild(ctx context.Context) (reportsapi.Rebuild, error) {
	return s.rebuilds.start(ctx)
}

// RebuildStatus shows the latest rebuild.
func (s *Service) RebuildStatus(ctx context.Context) (reportsapi.Rebuild, error) {
	return s.rebuilds.status(ctx)
}

// RunRebuilds runs the rebuilds this process starts or takes over, until
// ctx is done.
func (s *Service) RunRebuilds(ctx context.Context) error { return s.rebuilds.run(ctx) }
