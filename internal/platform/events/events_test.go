package events_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/events"
)

// NATSEnv points the broker tests at a running NATS JetStream server too.
const NATSEnv = "MICROSHOP_TEST_NATS_URL"

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// thing is the test event body. Its type carries the test's service name,
// so runs against a shared NATS never meet.
type thing struct {
	typ string
	ID  string `json:"id"`
	N   int    `json:"n"`
}

func (b thing) EventType() string { return b.typ }
func (thing) EventVersion() int   { return 1 }

// thingV2 is the same event in a major version v1 consumers do not know.
type thingV2 struct{ thing }

func (thingV2) EventVersion() int { return 2 }

// testTables holds the effects consumers' handlers make.
var testTables = fstest.MapFS{"00001_effects.sql": {Data: []byte(`-- +goose Up
CREATE TABLE effects (event_id TEXT NOT NULL, consumer TEXT NOT NULL, n BIGINT NOT NULL);
`)}}

// prepare applies the events migrations and the test tables to db.
func prepare(t *testing.T, db *database.DB) {
	t.Helper()
	ctx := context.Background()
	if err := db.Migrate(ctx, quietLog(), "events", events.Migrations()); err != nil {
		t.Fatalf("migrating events: %v", err)
	}
	if err := db.Migrate(ctx, quietLog(), "test", testTables); err != nil {
		t.Fatalf("migrating test tables: %v", err)
	}
}

func suffix() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func countRows(t *testing.T, db *database.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func outboxLen(t *testing.T, db *database.DB) int {
	t.Helper()
	return countRows(t, db, "SELECT COUNT(*) FROM outbox")
}

// add writes bodies to db's outbox in one committed transaction.
func add(t *testing.T, db *database.DB, bodies ...events.Body) []events.Event {
	t.Helper()
	var out []events.Event
	err := db.InTx(context.Background(), func(tx *sql.Tx) error {
		for _, b := range bodies {
			e, err := events.Outbox{}.Add(context.Background(), tx, b)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("adding events: %v", err)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testBroker is a JetStream connection and a stream of its own.
type testBroker struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	service string // the publishing service; its stream is StreamName(service)
	stream  jetstream.Stream
	// emb is the embedded server, nil when testing against an outside one.
	emb *broker.Embedded
	dir string
}

func (b *testBroker) eventType() string { return b.service + ".thing" }

// startEmbedded starts an embedded JetStream server in dir on port (0 for any).
func startEmbedded(t *testing.T, dir string, port int) *broker.Embedded {
	t.Helper()
	emb, err := broker.StartEmbedded(dir, "127.0.0.1", port, quietLog())
	if err != nil {
		t.Fatalf("starting embedded nats: %v", err)
	}
	return emb
}

func connect(t *testing.T, b *testBroker, natsURL string) {
	t.Helper()
	nc, js, err := broker.Connect(natsURL, broker.Credential{Name: "events-test"}, quietLog())
	if err != nil {
		t.Fatalf("connecting to %s: %v", natsURL, err)
	}
	t.Cleanup(nc.Close)
	b.nc, b.js = nc, js
	b.service = "evt" + suffix()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := events.EnsureStream(ctx, js, b.service, 1)
	if err != nil {
		t.Fatalf("creating the stream: %v", err)
	}
	b.stream = s
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, events.StreamName(b.service)); err != nil && b.emb == nil {
			t.Logf("deleting stream %s: %v", events.StreamName(b.service), err)
		}
	})
}

func embeddedBroker(t *testing.T) *testBroker {
	t.Helper()
	b := &testBroker{dir: t.TempDir()}
	b.emb = startEmbedded(t, b.dir, 0)
	t.Cleanup(func() {
		if b.emb != nil {
			b.emb.Shutdown()
		}
	})
	connect(t, b, b.emb.URL())
	return b
}

// eachBroker runs fn against the embedded server, and against the NATS at
// MICROSHOP_TEST_NATS_URL when it is set.
func eachBroker(t *testing.T, fn func(t *testing.T, b *testBroker)) {
	t.Run("embedded", func(t *testing.T) { fn(t, embeddedBroker(t)) })
	t.Run("external", func(t *testing.T) {
		u := os.Getenv(NATSEnv)
		if u == "" {
			t.Skipf("%s is not set; skipping the run against an outside NATS (set it to e.g. nats://127.0.0.1:4222)", NATSEnv)
		}
		b := &testBroker{}
		connect(t, b, u)
		fn(t, b)
	})
}

// streamMsgs returns every message in b's stream, in stream order.
func streamMsgs(t *testing.T, b *testBroker) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	info, err := b.stream.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := b.stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("reading message %d: %v", seq, err)
		}
		out = append(out, m)
	}
	if uint64(len(out)) != info.State.Msgs {
		t.Fatalf("read %d messages, the stream says %d", len(out), info.State.Msgs)
	}
	return out
}

// metric returns the value of the counter or gauge called name whose labels
// include the given ones.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func TestOutboxAdd(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		prepare(t, db)
		ctx := context.Background()
		body := thing{typ: "orders.confirmed", ID: "o1", N: 3}

		rollback := errors.New("the state change failed")
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := (events.Outbox{}).Add(ctx, tx, body); err != nil {
				return err
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatalf("InTx = %v", err)
		}
		if n := outboxLen(t, db); n != 0 {
			t.Fatalf("a rolled-back transaction left %d events in the outbox", n)
		}

		e := add(t, db, body)[0]
		if len(e.ID) != 26 || e.Type != "orders.confirmed" || e.Version != 1 || e.Time.IsZero() {
			t.Errorf("event = %+v", e)
		}
		if string(e.Data) != `{"id":"o1","n":3}` {
			t.Errorf("data = %s", e.Data)
		}
		var id, typ, data string
		var version int
		var at int64
		if err := db.QueryRowContext(ctx, "SELECT event_id, event_type, version, occurred_at, data FROM outbox").
			Scan(&id, &typ, &version, &at, &data); err != nil {
			t.Fatal(err)
		}
		if id != e.ID || typ != e.Type || version != 1 || at != e.Time.UnixMicro() || data != string(e.Data) {
			t.Errorf("outbox row = %s %s %d %d %s; want the event %+v", id, typ, version, at, data, e)
		}
	})
}

func TestRelayPublishesAndDeletes(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		eachBroker(t, func(t *testing.T, b *testBroker) {
			prepare(t, db)
			ctx := context.Background()
			reg := prometheus.NewRegistry()
			relay := events.NewRelay(db, b.js, quietLog(), reg)

			if n, err := relay.Pass(ctx); n != 0 || err != nil {
				t.Fatalf("Pass over an empty outbox = %d, %v", n, err)
			}
			sent := add(t, db,
				thing{typ: b.eventType(), ID: "a", N: 1},
				thing{typ: b.eventType(), ID: "b", N: 2},
				thing{typ: b.eventType(), ID: "c", N: 3})

			n, err := relay.Pass(ctx)
			if err != nil || n != 3 {
				t.Fatalf("Pass = %d, %v; want 3, nil", n, err)
			}
			if left := outboxLen(t, db); left != 0 {
				t.Errorf("%d events left in the outbox after they were published", left)
			}
			msgs := streamMsgs(t, b)
			if len(msgs) != 3 {
				t.Fatalf("the stream holds %d messages, want 3", len(msgs))
			}
			for i, m := range msgs {
				want := sent[i]
				if got := m.Header.Get(jetstream.MsgIDHeader); got != want.ID {
					t.Errorf("message %d: Nats-Msg-Id = %q, want the event id %q", i, got, want.ID)
				}
				if m.Subject != want.Type {
					t.Errorf("message %d: subject = %q, want %q", i, m.Subject, want.Type)
				}
				var e events.Event
				if err := json.Unmarshal(m.Data, &e); err != nil {
					t.Fatalf("message %d is not an envelope: %v", i, err)
				}
				if e.ID != want.ID || e.Type != want.Type || e.Version != want.Version ||
					string(e.Data) != string(want.Data) || !e.Time.Equal(want.Time.Truncate(time.Microsecond)) {
					t.Errorf("message %d = %+v, want %+v", i, e, want)
				}
			}
			if got := metric(t, reg, "outbox_published_total", nil); got != 3 {
				t.Errorf("outbox_published_total = %v, want 3", got)
			}
		})
	})
}

// A relay that crashed after publishing but before deleting publishes the
// same events again; the broker keeps one copy of each.
func TestRelayRepublishIsDeduplicated(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		eachBroker(t, func(t *testing.T, b *testBroker) {
			prepare(t, db)
			ctx := context.Background()
			relay := events.NewRelay(db, b.js, quietLog(), nil)
			sent := add(t, db, thing{typ: b.eventType(), ID: "a"}, thing{typ: b.eventType(), ID: "b"})
			if n, err := relay.Pass(ctx); n != 2 || err != nil {
				t.Fatalf("Pass = %d, %v", n, err)
			}

			// The "crash": the rows come back as if never deleted.
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				for _, e := range sent {
					if _, err := tx.ExecContext(ctx,
						`INSERT INTO outbox (event_id, event_type, version, occurred_at, data) VALUES ($1, $2, $3, $4, $5)`,
						e.ID, e.Type, e.Version, e.Time.UnixMicro(), string(e.Data)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			n, err := relay.Pass(ctx)
			if err != nil || n != 2 {
				t.Fatalf("second Pass = %d, %v; want 2 (acked as duplicates)", n, err)
			}
			if left := outboxLen(t, db); left != 0 {
				t.Errorf("%d duplicates left in the outbox", left)
			}
			msgs := streamMsgs(t, b)
			if len(msgs) != 2 {
				t.Fatalf("the stream holds %d messages after a republish, want 2", len(msgs))
			}
			for i, m := range msgs {
				if got := m.Header.Get(jetstream.MsgIDHeader); got != sent[i].ID {
					t.Errorf("message %d has id %q, want %q", i, got, sent[i].ID)
				}
			}
		})
	})
}

// While the broker is down, a pass fails and the events stay; once it is
// back they are published, once.
func TestRelayBrokerDown(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		prepare(t, db)
		b := embeddedBroker(t)
		ctx := context.Background()
		reg := prometheus.NewRegistry()
		relay := events.NewRelay(db, b.js, quietLog(), reg)

		u, err := url.Parse(b.emb.URL())
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(u.Port())
		b.emb.Shutdown()
		b.emb = nil
		waitFor(t, 5*time.Second, "the client to notice the broker is gone", func() bool { return !b.nc.IsConnected() })

		sent := add(t, db, thing{typ: b.eventType(), ID: "while-down"})
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		n, err := relay.Pass(pctx)
		cancel()
		if err == nil || n != 0 {
			t.Fatalf("Pass with the broker down = %d, %v; want 0 and an error", n, err)
		}
		if left := outboxLen(t, db); left != 1 {
			t.Fatalf("the outbox holds %d events after a failed pass, want 1", left)
		}

		b.emb = startEmbedded(t, b.dir, port)
		waitFor(t, 10*time.Second, "the client to reconnect", b.nc.IsConnected)
		waitFor(t, 10*time.Second, "a pass to succeed", func() bool {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := relay.Pass(pctx)
			return err == nil && outboxLen(t, db) == 0
		})
		msgs := streamMsgs(t, b)
		if len(msgs) != 1 || msgs[0].Header.Get(jetstream.MsgIDHeader) != sent[0].ID {
			t.Errorf("the stream holds %d messages, want exactly the one event %s", len(msgs), sent[0].ID)
		}
	})
}

// Run keeps publishing as events arrive and stops with its context.
func TestRelayRun(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		prepare(t, db)
		b := embeddedBroker(t)
		relay := events.NewRelay(db, b.js, quietLog(), nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- relay.Run(ctx) }()
		for i := range 3 {
			add(t, db, thing{typ: b.eventType(), N: i})
		}
		waitFor(t, 5*time.Second, "the relay to publish", func() bool { return outboxLen(t, db) == 0 })
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not stop with its context")
		}
		if got := len(streamMsgs(t, b)); got != 3 {
			t.Errorf("the stream holds %d messages, want 3", got)
		}
	})
}

func TestNewMsg(t *testing.T) {
	e := events.Event{ID: "01hx", Type: "orders.confirmed", Version: 1, Time: time.Unix(1, 0).UTC(), Data: json.RawMessage(`{"a":1}`)}
	m, err := events.NewMsg(e)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "orders.confirmed" || m.Header.Get("Nats-Msg-Id") != "01hx" {
		t.Errorf("msg subject %q, id %q", m.Subject, m.Header.Get("Nats-Msg-Id"))
	}
	var back events.Event
	if err := json.Unmarshal(m.Data, &back); err != nil || back.ID != e.ID || string(back.Data) != `{"a":1}` {
		t.Errorf("body = %s (%v)", m.Data, err)
	}
}

func TestStreamName(t *testing.T) {
	if got := events.StreamName("orders"); got != "ORDERS" {
		t.Errorf("StreamName = %q", got)
	}
}

func TestEventDecode(t *testing.T) {
	e := events.Event{ID: "e1", Type: "orders.confirmed", Version: 1,
		Data: json.RawMessage(`{"id":"o1","n":2,"added_in_a_later_minor":"x","nested":{"z":1}}`)}

	// A v1 consumer reads a body with fields it does not know.
	b := thing{typ: "orders.confirmed"}
	if err := e.Decode(&b); err != nil {
		t.Fatalf("Decode with extra fields: %v", err)
	}
	if b.ID != "o1" || b.N != 2 {
		t.Errorf("decoded %+v", b)
	}

	for _, tc := range []struct {
		name string
		e    events.Event
		into events.Body
	}{
		{"other type", events.Event{ID: "e", Type: "orders.rejected", Version: 1, Data: e.Data}, &thing{typ: "orders.confirmed"}},
		{"newer version", events.Event{ID: "e", Type: "orders.confirmed", Version: 2, Data: e.Data}, &thing{typ: "orders.confirmed"}},
		{"older version", events.Event{ID: "e", Type: "orders.confirmed", Version: 1, Data: e.Data}, &thingV2{thing{typ: "orders.confirmed"}}},
		{"bad data", events.Event{ID: "e", Type: "orders.confirmed", Version: 1, Data: json.RawMessage(`{"n":"two"}`)}, &thing{typ: "orders.confirmed"}},
		{"no data", events.Event{ID: "e", Type: "orders.confirmed", Version: 1}, &thing{typ: "orders.confirmed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.e.Decode(tc.into)
			if err == nil {
				t.Fatal("Decode = nil error")
			}
			if !events.IsPermanent(err) {
				t.Errorf("Decode error %v is not Permanent: a redelivery cannot fix it", err)
			}
		})
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad")
	p := events.Permanent(base)
	if !events.IsPermanent(p) || !events.IsPermanent(fmt.Errorf("handling: %w", p)) {
		t.Error("IsPermanent is false for a (wrapped) Permanent error")
	}
	if !errors.Is(p, base) || p.Error() != "bad" {
		t.Error("Permanent hides the error it wraps")
	}
	if events.IsPermanent(base) || events.IsPermanent(nil) {
		t.Error("IsPermanent is true for an ordinary error")
	}
}

// recorder is a handler that writes one effects row per event, and can be
// told to fail.
type recorder struct {
	consumer string
	mu       sync.Mutex
	calls    map[string]int
	// fail, when it returns an error for an event, makes the handler
	// return it after writing its effect (which must then roll back).
	fail func(e events.Event, call int) error
	typ  string
}

func newRecorder(consumer, typ string) *recorder {
	return &recorder{consumer: consumer, typ: typ, calls: map[string]int{}}
}

func (r *recorder) handle(ctx context.Context, tx *sql.Tx, e events.Event) error {
	r.mu.Lock()
	r.calls[e.ID]++
	call := r.calls[e.ID]
	r.mu.Unlock()
	b := thing{typ: r.typ}
	if err := e.Decode(&b); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO effects (event_id, consumer, n) VALUES ($1, $2, $3)", e.ID, r.consumer, b.N); err != nil {
		return err
	}
	if r.fail != nil {
		if err := r.fail(e, call); err != nil {
			return err
		}
	}
	return nil
}

func (r *recorder) callsFor(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

func effects(t *testing.T, db *database.DB, consumer, eventID string) int {
	t.Helper()
	return countRows(t, db, "SELECT COUNT(*) FROM effects WHERE consumer = $1 AND event_id = $2", consumer, eventID)
}

func inboxHas(t *testing.T, db *database.DB, consumer, eventID string) bool {
	t.Helper()
	return countRows(t, db, "SELECT COUNT(*) FROM inbox WHERE consumer = $1 AND event_id = $2", consumer, eventID) == 1
}

func event(typ string, n int) events.Event {
	data, _ := json.Marshal(thing{N: n})
	return events.Event{ID: "ev" + suffix(), Type: typ, Version: 1, Time: time.Now().UTC(), Data: data}
}

func TestHandleEventOnce(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		prepare(t, db)
		ctx := context.Background()
		rec := newRecorder("c1", "orders.confirmed")
		c := &events.Consumer{Name: "c1", Handle: rec.handle, DB: db, Log: quietLog()}
		e := event("orders.confirmed", 5)

		if outcome, err := c.HandleEvent(ctx, e); outcome != "handled" || err != nil {
			t.Fatalf("first HandleEvent = %q, %v; want handled", outcome, err)
		}
		if outcome, err := c.HandleEvent(ctx, e); outcome != "duplicate" || err != nil {
			t.Fatalf("redelivered HandleEvent = %q, %v; want duplicate", outcome, err)
		}
		if n := effects(t, db, "c1", e.ID); n != 1 {
			t.Errorf("the effect happened %d times, want once", n)
		}
		if calls := rec.callsFor(e.ID); calls != 1 {
			t.Errorf("the handler ran %d times, want once", calls)
		}

		// Another consumer of the same event has its own inbox entry.
		rec2 := newRecorder("c2", "orders.confirmed")
		c2 := &events.Consumer{Name: "c2", Handle: rec2.handle, DB: db, Log: quietLog()}
		if outcome, err := c2.HandleEvent(ctx, e); outcome != "handled" || err != nil {
			t.Errorf("a second consumer's HandleEvent = %q, %v; want handled", outcome, err)
		}
	})
}

func TestHandleEventErrorRollsBackTheInbox(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		prepare(t, db)
		ctx := context.Background()
		rec := newRecorder("c1", "orders.confirmed")
		transient := errors.New("payments is down")
		rec.fail = func(_ events.Event, call int) error {
			if call == 1 {
				return transient
			}
			return nil
		}
		c := &events.Consumer{Name: "c1", Handle: rec.handle, DB: db, Log: quietLog()}
		e := event("orders.confirmed", 1)

		outcome, err := c.HandleEvent(ctx, e)
		if outcome != "retry" || !errors.Is(err, transient) {
			t.Fatalf("failing HandleEvent = %q, %v; want retry and the handler's error", outcome, err)
		}
		if inboxHas(t, db, "c1", e.ID) {
			t.Error("the inbox recorded an event whose handler failed: it would never be retried")
		}
		if n := effects(t, db, "c1", e.ID); n != 0 {
			t.Errorf("a failed handler's effect was kept (%d rows)", n)
		}

		if outcome, err := c.HandleEvent(ctx, e); outcome != "handled" || err != nil {
			t.Fatalf("retried HandleEvent = %q, %v; want handled", outcome, err)
		}
		if !inboxHas(t, db, "c1", e.ID) || effects(t, db, "c1", e.ID) != 1 {
			t.Error("the retry did not record the event and its effect once")
		}
	})
}

func TestHandleEventPermanent(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		prepare(t, db)
		ctx := context.Background()
		rec := newRecorder("c1", "orders.confirmed")
		c := &events.Consumer{Name: "c1", Handle: rec.handle, DB: db, Log: quietLog()}
		e := event("orders.confirmed", 1)
		e.Version = 9

		outcome, err := c.HandleEvent(ctx, e)
		if outcome != "dead_letter" || !events.IsPermanent(err) {
			t.Fatalf("HandleEvent of an unknown version = %q, %v; want dead_letter and a Permanent error", outcome, err)
		}
		if inboxHas(t, db, "c1", e.ID) || effects(t, db, "c1", e.ID) != 0 {
			t.Error("a refused event left an inbox row or an effect")
		}
	})
}

// The whole path: outbox, relay, JetStream, a durable consumer with its
// inbox; retries, dead letters, duplicates and a restart.
func TestConsumerRun(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		eachBroker(t, func(t *testing.T, b *testBroker) {
			prepare(t, db)
			ctx := context.Background()
			relay := events.NewRelay(db, b.js, quietLog(), nil)
			name := "test-consumer-" + suffix()
			rec := newRecorder(name, b.eventType())
			failing := map[string]bool{}
			rec.fail = func(e events.Event, call int) error {
				if failing[e.ID] && call == 1 {
					return errors.New("a dependency is down")
				}
				return nil
			}
			reg := prometheus.NewRegistry()
			metrics := events.NewConsumerMetrics(reg)
			start := func() (stop func()) {
				c := &events.Consumer{
					Name: name, Stream: events.StreamName(b.service), Subjects: []string{b.service + ".>"},
					Handle: rec.handle, DB: db, JS: b.js, Log: quietLog(), Metrics: metrics,
				}
				rctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- c.Run(rctx) }()
				return func() {
					cancel()
					select {
					case err := <-done:
						if err != nil {
							t.Errorf("Run = %v, want nil when stopped", err)
						}
					case <-time.After(10 * time.Second):
						t.Fatal("Run did not stop with its context")
					}
				}
			}
			publish := func(bodies ...events.Body) []events.Event {
				sent := add(t, db, bodies...)
				if n, err := relay.Pass(ctx); err != nil || n != len(bodies) {
					t.Fatalf("Pass = %d, %v", n, err)
				}
				return sent
			}

			ok1 := publish(thing{typ: b.eventType(), N: 1})[0]
			flaky := add(t, db, thing{typ: b.eventType(), N: 2})[0]
			failing[flaky.ID] = true // set before the consumer can see it
			if _, err := relay.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			future := publish(thingV2{thing{typ: b.eventType(), N: 3}})[0]

			// Not an envelope at all.
			junk := nats.NewMsg(b.service + ".junk")
			junk.Data = []byte("not json")
			junk.Header.Set(jetstream.MsgIDHeader, "junk-"+suffix())
			if _, err := b.js.PublishMsg(ctx, junk); err != nil {
				t.Fatal(err)
			}
			// ok1 again under another message id, as after the broker's
			// de-duplication window: only the inbox can catch it.
			again, err := events.NewMsg(ok1)
			if err != nil {
				t.Fatal(err)
			}
			again.Header.Set(jetstream.MsgIDHeader, "again-"+suffix())
			if _, err := b.js.PublishMsg(ctx, again); err != nil {
				t.Fatal(err)
			}
			last := publish(thing{typ: b.eventType(), N: 4})[0]

			stop := start()
			waitFor(t, 15*time.Second, "every event to be handled or dead-lettered", func() bool {
				return inboxHas(t, db, name, ok1.ID) && inboxHas(t, db, name, flaky.ID) && inboxHas(t, db, name, last.ID) &&
					countRows(t, db, "SELECT COUNT(*) FROM dead_letters WHERE consumer = $1", name) == 2
			})
			stop()

			for _, e := range []events.Event{ok1, flaky, last} {
				if n := effects(t, db, name, e.ID); n != 1 {
					t.Errorf("event %s had its effect %d times, want once", e.ID, n)
				}
			}
			if calls := rec.callsFor(ok1.ID); calls != 1 {
				t.Errorf("the handler ran %d times for the redelivered event, want once", calls)
			}
			if calls := rec.callsFor(flaky.ID); calls != 2 {
				t.Errorf("the handler ran %d times for the event that failed once, want 2", calls)
			}
			var reason, data string
			if err := db.QueryRowContext(ctx, "SELECT reason, data FROM dead_letters WHERE consumer = $1 AND event_id = $2", name, future.ID).
				Scan(&reason, &data); err != nil {
				t.Fatalf("the unknown version is not in dead_letters: %v", err)
			}
			if !strings.Contains(reason, "version 2") || data != string(future.Data) {
				t.Errorf("dead letter = %q %s", reason, data)
			}
			if n := countRows(t, db, "SELECT COUNT(*) FROM dead_letters WHERE consumer = $1 AND event_id = $2", name, junk.Header.Get(jetstream.MsgIDHeader)); n != 1 {
				t.Errorf("the junk message is not in dead_letters under its message id")
			}
			if inboxHas(t, db, name, future.ID) {
				t.Error("a dead-lettered event is in the inbox")
			}
			for outcome, want := range map[string]float64{"handled": 3, "duplicate": 1, "retry": 1, "dead_letter": 1} {
				if got := metric(t, reg, "events_consumed_total", map[string]string{"consumer": name, "outcome": outcome}); got != want {
					t.Errorf("events_consumed_total{outcome=%q} = %v, want %v", outcome, got, want)
				}
			}

			// A restarted consumer resumes after what it acknowledged.
			stop = start()
			next := publish(thing{typ: b.eventType(), N: 5})[0]
			waitFor(t, 15*time.Second, "the restarted consumer to handle a new event", func() bool {
				return inboxHas(t, db, name, next.ID)
			})
			stop()
			if calls := rec.callsFor(ok1.ID); calls != 1 {
				t.Errorf("after a restart the handler ran %d times for an old event, want once", calls)
			}
			if calls := rec.callsFor(last.ID); calls != 1 {
				t.Errorf("after a restart the handler ran %d times for an old event, want once", calls)
			}
		})
	})
}

// A consumer gets only the subjects it filters on. Several subjects need
// NATS 2.10 or later, so this runs on the embedded server only.
func TestConsumerFiltersSubjects(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		prepare(t, db)
		b := embeddedBroker(t)
		ctx := context.Background()
		var mu sync.Mutex
		seen := map[string]int{}
		c := &events.Consumer{
			Name: "filtered", Stream: events.StreamName(b.service),
			Subjects: []string{b.service + ".a", b.service + ".b"},
			Handle: func(_ context.Context, _ *sql.Tx, e events.Event) error {
				mu.Lock()
				seen[e.Type]++
				mu.Unlock()
				return nil
			},
			DB: db, JS: b.js, Log: quietLog(),
		}
		add(t, db, thing{typ: b.service + ".c"}, thing{typ: b.service + ".a"}, thing{typ: b.service + ".c"}, thing{typ: b.service + ".b"})
		if n, err := events.NewRelay(db, b.js, quietLog(), nil).Pass(ctx); n != 4 || err != nil {
			t.Fatalf("Pass = %d, %v", n, err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(rctx) }()
		waitFor(t, 10*time.Second, "both filtered events", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return seen[b.service+".a"] == 1 && seen[b.service+".b"] == 1
		})
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[b.service+".c"] != 0 || len(seen) != 2 {
			t.Errorf("the consumer saw %v; want only .a and .b once each", seen)
		}
	})
}

// Run waits for a stream that does not exist yet, and stops when asked.
func TestConsumerRunStopsWhileWaitingForTheStream(t *testing.T) {
	b := embeddedBroker(t)
	db := dbtest.SQLite(t)
	prepare(t, db)
	c := &events.Consumer{Name: "waiting", Stream: "NOPE", Subjects: []string{"nope.>"},
		Handle: func(context.Context, *sql.Tx, events.Event) error { return nil }, DB: db, JS: b.js, Log: quietLog()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop while waiting for the stream")
	}
}

func TestEnsureStreamIsIdempotent(t *testing.T) {
	b := embeddedBroker(t)
	ctx := context.Background()
	s, err := events.EnsureStream(ctx, b.js, b.service, 0)
	if err != nil {
		t.Fatalf("EnsureStream again: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Name != events.StreamName(b.service) || info.Config.Duplicates != events.DuplicateWindow ||
		len(info.Config.Subjects) != 1 || info.Config.Subjects[0] != b.service+".>" || info.Config.Replicas != 1 {
		t.Errorf("stream config = %+v", info.Config)
	}
}

func TestStreamsKeepEventsForALimitedTime(t *testing.T) {
	b := embeddedBroker(t)
	ctx := context.Background()
	info := func(s jetstream.Stream) jetstream.StreamConfig {
		t.Helper()
		i, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return i.Config
	}
	// The stream the test broker made has the default age limit.
	if cfg := info(b.stream); cfg.MaxAge != events.DefaultMaxAge || cfg.MaxBytes != -1 || cfg.Discard != jetstream.DiscardOld {
		t.Errorf("a new stream keeps events for %s and %d bytes (discard %v); want %s, no size limit, oldest first",
			cfg.MaxAge, cfg.MaxBytes, cfg.Discard, events.DefaultMaxAge)
	}
	// A service started with other limits updates its existing stream.
	s, err := events.EnsureStreamLimits(ctx, b.js, b.service, events.StreamLimits{MaxAge: 48 * time.Hour, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if cfg := info(s); cfg.MaxAge != 48*time.Hour || cfg.MaxBytes != 64<<20 {
		t.Errorf("after an update the stream keeps events for %s and %d bytes; want 48h and 64 MiB", cfg.MaxAge, cfg.MaxBytes)
	}
	// Zero is no limit.
	if s, err = events.EnsureStreamLimits(ctx, b.js, b.service, events.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	if cfg := info(s); cfg.MaxAge != 0 || cfg.MaxBytes != -1 {
		t.Errorf("with no limits the stream keeps events for %s and %d bytes; want forever", cfg.MaxAge, cfg.MaxBytes)
	}
	// An age the broker would refuse is refused in words.
	if _, err := events.EnsureStreamLimits(ctx, b.js, b.service, events.StreamLimits{MaxAge: time.Minute}); err == nil ||
		!strings.Contains(err.Error(), "duplicate window") {
		t.Errorf("a max age under the duplicate window: %v", err)
	}
}
