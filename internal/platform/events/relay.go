package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
	interval time.Duration

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
		batch: 256, interval: 20 * time.Millisecond,
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
func (r *Relay) Run(ctx context.Context) error {
	wait := r.interval
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		n, err := r.Pass(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.failures.Inc()
			r.log.Warn("publishing the outbox failed; will retry", "err", err)
			wait = time.Second // the broker is likely down; don't spin
		case n == r.batch:
			wait = 0 // more is waiting
		default:
			wait = r.interval
		}
	}
}

type pending struct {
	seq int64
	ack jetstream.PubAckFuture
}

// Pass publishes one batch and returns how many events it published.
func (r *Relay) Pass(ctx context.Context) (int, error) {
	rows, err := r.db.QueryContext(ctx,
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
		sctx, span := tel.Tracer.Start(tel.FromTraceParent(ctx, parent), "publish "+e.Type,
			trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.message.id", e.ID)))
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
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
wait:
	for _, p := range futures {
		select {
		case <-p.ack.Ok():
			acked = append(acked, p.seq)
		case err := <-p.ack.Err():
			pubErr = errors.Join(pubErr, err)
		case <-timeout.C:
			pubErr = errors.Join(pubErr, errors.New("timed out waiting for the broker's acks"))
			break wait
		case <-ctx.Done():
			pubErr = errors.Join(pubErr, ctx.Err())
			break wait
		}
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
	ctx = context.WithoutCancel(ctx)
	return r.db.InTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `DELETE FROM outbox WHERE seq = $1`)
		if err != nil {
			return fmt.Errorf("deleting published events: %w", err)
		}
		defer stmt.Close()
		for _, s := range seqs {
			if _, err := stmt.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("deleting published events: %w", err)
			}
		}
		return nil
	})
}

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
