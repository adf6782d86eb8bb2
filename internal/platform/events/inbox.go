package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/telemetry"
)

// Handler applies one event inside tx, the transaction that also records
// the event as handled. Returning an error rolls both back and the event
// is redelivered later, unless the error is Permanent.
type Handler func(ctx context.Context, tx *sql.Tx, e Event) error

// Consumer is a durable JetStream consumer guarded by an inbox.
type Consumer struct {
	// Name is the durable consumer's name, shared by every replica of the
	// consuming service so each event goes to one of them.
	Name string
	// Stream is the publishing service's stream, e.g. StreamName("orders").
	Stream string
	// Subjects filters the stream, e.g. "orders.cancelled".
	Subjects []string
	Handle   Handler
	// Prepare, when set, runs before the inbox transaction, for work
	// that must not hold a transaction open, such as a call to another
	// service whose answer Handle then reads from the service's own
	// tables. It runs again on a redelivery (and for a duplicate), so it
	// must be idempotent. A Permanent error dead-letters the event;
	// another makes it redelivered later.
	Prepare func(ctx context.Context, e Event) error

	DB  *database.DB
	JS  jetstream.JetStream
	Log *slog.Logger
	// Metrics, when set, counts outcomes; see NewConsumerMetrics.
	Metrics *ConsumerMetrics
	// Telemetry, when set, makes a span per event in the trace that
	// published it.
	Telemetry *telemetry.Telemetry
	// HandleTimeout bounds handling one event, its transaction included
	// (HandleTimeout when zero). It is below AckWait so that a handler
	// stuck on a dead database connection gives up, and the event is
	// redelivered, before the broker hands it to another replica.
	HandleTimeout time.Duration
}

// The consumers' deadlines: the broker redelivers an event it has not had
// an ack for within AckWait; handling gives up after HandleTimeout.
const (
	AckWait       = 30 * time.Second
	HandleTimeout = 20 * time.Second
)

// ConsumerMetrics count what consumers did with events.
type ConsumerMetrics struct {
	handled *prometheus.CounterVec

	mu        sync.Mutex
	consumers map[string]lagSource // by consumer name
}

// lagSource is a running consumer whose lag is read at scrape time.
type lagSource struct {
	stream string
	cons   jetstream.Consumer
}

var lagDesc = prometheus.NewDesc("events_consumer_lag",
	"Events waiting in the stream for a consumer (JetStream's pending count), read at scrape time.",
	[]string{"consumer", "stream"}, nil)

// Describe and Collect make the lag of every running consumer a gauge.
func (m *ConsumerMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (m *ConsumerMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	sources := make(map[string]lagSource, len(m.consumers))
	for k, v := range m.consumers {
		sources[k] = v
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for name, src := range sources {
		info, err := src.cons.Info(ctx)
		if err != nil {
			continue // the broker is away: no figure rather than a wrong one
		}
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(info.NumPending), name, src.stream)
	}
}

func (m *ConsumerMetrics) track(name, stream string, cons jetstream.Consumer) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cons == nil {
		delete(m.consumers, name)
		return
	}
	m.consumers[name] = lagSource{stream: stream, cons: cons}
}

// NewConsumerMetrics registers the consumer counters in reg.
func NewConsumerMetrics(reg prometheus.Registerer) *ConsumerMetrics {
	m := &ConsumerMetrics{handled: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "events_consumed_total",
		Help: "Events received by a consumer, by consumer, event type and outcome (handled, duplicate, retry, dead_letter).",
	}, []string{"consumer", "type", "outcome"}), consumers: map[string]lagSource{}}
	reg.MustRegister(m.handled, m)
	return m
}

func (m *ConsumerMetrics) count(consumer, typ, outcome string) {
	if m != nil {
		m.handled.WithLabelValues(consumer, typ, outcome).Inc()
	}
}

// Run creates the durable consumer if needed and handles events until ctx
// is done. Events are handled one at a time, in stream order.
func (c *Consumer) Run(ctx context.Context) error {
	log := c.Log.With("consumer", c.Name, "stream", c.Stream)
	cfg := jetstream.ConsumerConfig{
		Durable:       c.Name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1000,
	}
	// One subject goes in FilterSubject, which NATS servers before 2.10
	// understand too; only several need FilterSubjects.
	if len(c.Subjects) == 1 {
		cfg.FilterSubject = c.Subjects[0]
	} else {
		cfg.FilterSubjects = c.Subjects
	}
	var cons jetstream.Consumer
	// The stream belongs to another service and may not exist yet when
	// this one starts first: wait for it instead of failing.
	for {
		var err error
		cons, err = c.JS.CreateOrUpdateConsumer(ctx, c.Stream, cfg)
		if err == nil {
			break
		}
		log.Warn("waiting to create the durable consumer", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(64))
	if err != nil {
		return fmt.Errorf("consuming %s: %w", c.Stream, err)
	}
	c.Metrics.track(c.Name, c.Stream, cons)
	defer c.Metrics.track(c.Name, c.Stream, nil)
	// Drain rather than Stop when ctx ends: Stop drops the messages the
	// client has pulled but not handled, and the broker holds them for
	// AckWait (30s) before anyone else gets them. Draining hands them to
	// the loop below, which gives them back once the broker has dropped
	// this subscription, so they go to the next consumer at once instead
	// of straight back to this one.
	go func() {
		<-ctx.Done()
		it.Drain()
	}()
	var held []jetstream.Msg
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				for _, m := range held {
					_ = m.Nak()
				}
				return nil
			}
			log.Warn("receiving an event", "err", err)
			continue
		}
		if ctx.Err() != nil {
			held = append(held, msg)
			continue
		}
		c.deliver(ctx, log, msg)
	}
}

// deliver handles msg and acknowledges it, or asks for a later redelivery.
func (c *Consumer) deliver(ctx context.Context, log *slog.Logger, msg jetstream.Msg) {
	var e Event
	if err := json.Unmarshal(msg.Data(), &e); err != nil || e.ID == "" {
		if err == nil {
			err = errors.New("the envelope has no id")
		}
		c.deadLetter(ctx, log, Event{ID: msg.Headers().Get(jetstream.MsgIDHeader), Type: msg.Subject(), Data: msg.Data()}, err)
		_ = msg.Ack()
		return
	}
	if err := checkOrigin(msg, e); err != nil {
		c.Metrics.count(c.Name, e.Type, "dead_letter")
		c.deadLetter(ctx, log, e, err)
		_ = msg.Ack()
		return
	}
	tel := c.Telemetry
	if tel == nil {
		tel = telemetry.Disabled()
	}
	// OpenTelemetry's messaging conventions: "{destination} {operation}".
	ctx, span := tel.Tracer.Start(tel.Extract(ctx, http.Header(msg.Headers())), msg.Subject()+" process",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", msg.Subject()),
			attribute.String("messaging.consumer.group.name", c.Name), attribute.String("messaging.message.id", e.ID)))
	defer span.End()
	limit := c.HandleTimeout
	if limit <= 0 {
		limit = HandleTimeout
	}
	hctx, cancel := context.WithTimeout(ctx, limit)
	outcome, err := c.HandleEvent(hctx, e)
	cancel()
	span.SetAttributes(attribute.String("outcome", outcome))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	c.Metrics.count(c.Name, e.Type, outcome)
	switch {
	case err == nil:
		_ = msg.Ack()
	case IsPermanent(err):
		c.deadLetter(ctx, log, e, err)
		_ = msg.Ack()
	default:
		n := uint64(1)
		if md, mdErr := msg.Metadata(); mdErr == nil {
			n = md.NumDelivered
		}
		delay := redeliveryDelay(n)
		log.Warn("handling an event failed; it will be redelivered", "event_id", e.ID, "type", e.Type, "attempt", n, "retry_in", delay.String(), "err", err)
		_ = msg.NakWithDelay(delay)
	}
}

// checkOrigin refuses an event that did not come from its subject's
// owner: its type must be the subject it arrived on, and that subject
// must have come through the owner's stream. The broker's permissions
// already let only the owner publish its subjects; this check keeps a
// misconfigured broker (or an outside one without authentication, with a
// stream made by someone else over the owner's subjects) from letting one
// service speak for another.
func checkOrigin(msg jetstream.Msg, e Event) error {
	if e.Type != msg.Subject() {
		return fmt.Errorf("event %s says it is a %s but arrived on %s", e.ID, e.Type, msg.Subject())
	}
	md, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("event %s: reading where it came from: %w", e.ID, err)
	}
	if want := StreamName(Owner(msg.Subject())); md.Stream != want {
		return fmt.Errorf("event %s on %s came through stream %s, not %s, the stream of %s", e.ID, msg.Subject(), md.Stream, want, Owner(msg.Subject()))
	}
	return nil
}

// HandleEvent runs the handler for e inside the inbox guard. It returns
// the outcome: "handled", "duplicate" (the inbox already had e), or
// "retry"/"dead_letter" with the error. Tests and replays call it directly.
func (c *Consumer) HandleEvent(ctx context.Context, e Event) (string, error) {
	if c.Prepare != nil {
		if err := c.Prepare(ctx, e); err != nil {
			if IsPermanent(err) {
				return "dead_letter", err
			}
			return "retry", err
		}
	}
	outcome := "handled"
	err := c.DB.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO inbox (consumer, event_id, handled_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			c.Name, e.ID, time.Now().UnixMilli())
		if err != nil {
			return fmt.Errorf("recording event %s in the inbox: %w", e.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("recording event %s in the inbox: %w", e.ID, err)
		} else if n == 0 {
			outcome = "duplicate"
			return nil
		}
		return c.Handle(ctx, tx, e)
	})
	if err != nil {
		if IsPermanent(err) {
			return "dead_letter", err
		}
		return "retry", err
	}
	return outcome, nil
}

func (c *Consumer) deadLetter(ctx context.Context, log *slog.Logger, e Event, reason error) {
	log.Error("event moved to dead letters", "event_id", e.ID, "type", e.Type, "reason", reason)
	err := c.DB.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO dead_letters (consumer, event_id, event_type, data, reason, received_at)
			 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
			c.Name, e.ID, e.Type, string(e.Data), reason.Error(), time.Now().UnixMilli())
		return err
	})
	if err != nil {
		log.Error("recording a dead letter failed", "event_id", e.ID, "err", err)
	}
}

// redeliveryDelay backs off exponentially from 250ms to 30s.
func redeliveryDelay(attempt uint64) time.Duration {
	d := 250 * time.Millisecond
	for i := uint64(1); i < attempt && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}
