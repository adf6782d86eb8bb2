package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/telemetry"
)

// Relay publishes a service's outbox to JetStream.
//
// It reads a batch in outbox order, publishes it asynchronously, waits for
// every ack, then deletes the acked rows. A crash between publish and
// delete republishes those events on the next pass, and JetStream drops
// them by message id. Rows are deleted rather than marked or tracked with
// a cursor: on Postgres, concurrent transactions commit out of sequence
// order, and a cursor would skip a row that committed late.
type Relay struct {
	db       *database.DB
	js       jetstream.JetStream
	log      *slog.Logger
	batch    int
	interval time.Duration // the least time between two passes
	idleMax  time.Duration // the most time between two passes

	// Telemetry makes a span per published event, in the trace of the
	// change that wrote it; nil traces nothing.
	Telemetry *telemetry.Telemetry

	published prometheus.Counter
	failures  prometheus.Counter
	backlog   prometheus.Gauge
}

// NewRelay returns a relay for db's outbox. Its metrics are registered in reg.
func NewRelay(db *database.DB, js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer) *Relay {
	r := &Relay{
		db: db, js: js, log: log.With("component", "outbox-relay"),
		batch: 256, interval: 20 * time.Millisecond, idleMax: 5 * time.Second,
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outbox_published_total", Help: "Events the outbox relay published and the broker acknowledged.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outbox_publish_failures_total", Help: "Outbox relay passes that failed to publish (the events stay and are retried).",
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outbox_backlog", Help: "Events waiting in the outbox at the relay's last pass.",
		}),
	}
	if reg != nil {
		reg.MustRegister(r.published, r.failures, r.backlog)
	}
	return r
}

// Run publishes until ctx is done.
//
// It looks at the outbox when a commit of this process may have added
// events (DB.Commits), at most once every interval so that a burst of
// commits makes one batch. With nothing to do it looks less and less
// often, up to every idleMax: that look finds the events no commit of
// this process announced, those of another process on the same database
// that stopped before relaying them. On Postgres every look is a
// transaction of its own, and a relay that looked every 20ms cost 50
// commits a second per service with no traffic at all.
func (r *Relay) Run(ctx context.Context) error {
	commits, unsubscribe := r.db.Commits()
	defer unsubscribe()
	wait, idle := r.interval, r.interval
	var last time.Time
	failing := false
	for {
		woken := commits
		if failing {
			woken = nil // the broker is likely down: wait the full second
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		case <-woken:
			timer.Stop()
			// Keep passes interval apart: the commits of the next
			// moments join this batch.
			if d := r.interval - time.Since(last); d > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(d):
				}
			}
		}
		n, err := r.Pass(ctx)
		last = time.Now()
		failing = err != nil
		switch {
		case err != nil && ctx.Err() == nil:
			r.failures.Inc()
			r.log.Warn("publishing the outbox failed; will retry", "err", err)
			wait = time.Second // the broker is likely down; don't spin
		case n == r.batch:
			wait, idle = 0, r.interval // more is waiting
		case n > 0:
			wait, idle = r.interval, r.interval
		default:
			idle = min(2*idle, r.idleMax)
			wait = idle
		}
	}
}

type pending struct {
	seq int64
	ack jetstream.PubAckFuture
}

// Pass publishes one batch and returns how many events it published.
func (r *Relay) Pass(ctx context.Context) (int, error) {
	// The read has a deadline of its own: on a half-open connection to
	// the database it would otherwise wait as long as TCP does.
	rctx, cancel := context.WithTimeout(ctx, StoreTimeout)
	defer cancel()
	rows, err := r.db.QueryContext(rctx,
		`SELECT seq, event_id, event_type, version, occurred_at, data, trace_parent FROM outbox ORDER BY seq LIMIT $1`, r.batch)
	if err != nil {
		return 0, fmt.Errorf("reading the outbox: %w", err)
	}
	tel := r.Telemetry
	if tel == nil {
		tel = telemetry.Disabled()
	}
	var batch []*nats.Msg
	var seqs []int64
	var spans []trace.Span
	for rows.Next() {
		var (
			seq    int64
			e      Event
			at     int64
			data   string
			parent string
		)
		if err := rows.Scan(&seq, &e.ID, &e.Type, &e.Version, &at, &data, &parent); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reading the outbox: %w", err)
		}
		e.Time = time.UnixMicro(at).UTC()
		e.Data = json.RawMessage(data)
		msg, err := NewMsg(e)
		if err != nil {
			rows.Close()
			return 0, err
		}
		// OpenTelemetry's messaging conventions: "{destination} {operation}".
		sctx, span := tel.Tracer.Start(tel.FromTraceParent(ctx, parent), e.Type+" publish",
			trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.operation.type", "publish"),
				attribute.String("messaging.destination.name", e.Type), attribute.String("messaging.message.id", e.ID)))
		tel.Inject(sctx, http.Header(msg.Header))
		spans = append(spans, span)
		batch = append(batch, msg)
		seqs = append(seqs, seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reading the outbox: %w", err)
	}
	r.backlog.Set(float64(len(batch)))
	if len(batch) == 0 {
		return 0, nil
	}
	defer func() {
		for _, sp := range spans {
			sp.End()
		}
	}()

	futures := make([]pending, 0, len(batch))
	var pubErr error
	for i, msg := range batch {
		f, err := r.js.PublishMsgAsync(msg)
		if err != nil {
			pubErr = err
			break
		}
		futures = append(futures, pending{seq: seqs[i], ack: f})
	}
	var acked []int64
	refused := 0 // acks that came back as errors, after the first
	timeout := time.NewTimer(PublishTimeout)
	defer timeout.Stop()
wait:
	for _, p := range futures {
		select {
		case <-p.ack.Ok():
			acked = append(acked, p.seq)
		case err := <-p.ack.Err():
			if pubErr == nil {
				pubErr = err
			} else {
				refused++
			}
		case <-timeout.C:
			pubErr = errors.Join(pubErr, fmt.Errorf("no ack from the broker within %s", PublishTimeout))
			break wait
		case <-ctx.Done():
			pubErr = errors.Join(pubErr, ctx.Err())
			break wait
		}
	}
	if refused > 0 {
		pubErr = fmt.Errorf("%w (and %d more events of the batch)", pubErr, refused)
	}
	if len(acked) > 0 {
		if err := r.delete(ctx, acked); err != nil {
			return 0, err
		}
		r.published.Add(float64(len(acked)))
	}
	if pubErr != nil {
		return len(acked), fmt.Errorf("publishing: %w", pubErr)
	}
	return len(acked), nil
}

func (r *Relay) delete(ctx context.Context, seqs []int64) error {
	// Deleting must survive the caller's cancellation: the events are
	// already published, and leaving rows only costs a duplicate publish.
	// It must not outlive a dead database connection either, or the relay
	// stops for good: the rows left are published again on the next pass.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), StoreTimeout)
	defer cancel()
	// One statement per batch rather than one per event: on Postgres each
	// statement is a round trip. The list is padded to a power of two by
	// repeating the last seq, so that a few statement texts cover every
	// batch size and the prepared-statement caches keep them.
	n := 1
	for n < len(seqs) {
		n *= 2
	}
	var q strings.Builder
	q.WriteString(`DELETE FROM outbox WHERE seq IN (`)
	args := make([]any, n)
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "$%d", i+1)
		args[i] = seqs[min(i, len(seqs)-1)]
	}
	q.WriteString(")")
	return r.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("deleting published events: %w", err)
		}
		return nil
	})
}

// The relay's deadlines. StoreTimeout bounds each of its database
// operations (reading a batch, deleting what was published);
// PublishTimeout bounds publishing a batch, every ack included. A batch
// whose acks are not all in by then is published again on the next pass
// (the broker drops the copies by message id); the broker's connection
// forgets the acks it still waits for after as long
// (broker.Connect's jetstream.WithPublishAsyncTimeout), so acks that never
// come cannot pile up until publishing stalls.
const (
	StoreTimeout   = 10 * time.Second
	PublishTimeout = 10 * time.Second
)

// NewMsg builds the NATS message for e: the envelope as body and the
// event id as JetStream's de-duplication id.
func NewMsg(e Event) (*nats.Msg, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encoding event %s: %w", e.ID, err)
	}
	msg := nats.NewMsg(e.Type)
	msg.Data = body
	msg.Header.Set(jetstream.MsgIDHeader, e.ID)
	return msg, nil
}
