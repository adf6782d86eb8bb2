package events_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/events"
)

// The event path of a checkout, measured alone, on a real SQLite file and
// an embedded NATS JetStream server:
//
//	go test -run '^$' -bench . -benchmem ./internal/platform/events
//
// outbox+relay is one event written in its own transaction and published
// by one relay pass (publish, wait for the broker's ack, delete the row):
// what an event costs when events come one at a time. batched-64 writes
// 64 events in 64 transactions and publishes them in one pass, as the
// relay does under load; its figures are per event.

type benchBody struct {
	OrderID    string `json:"order_id"`
	TotalCents int64  `json:"total_cents"`
	Currency   string `json:"currency"`
}

func (benchBody) EventType() string { return "bench.confirmed" }
func (benchBody) EventVersion() int { return 1 }

func benchDB(b *testing.B) *database.DB {
	b.Helper()
	ctx := context.Background()
	db, err := database.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, quietLog(), "events", events.Migrations()); err != nil {
		b.Fatal(err)
	}
	return db
}

func benchBroker(b *testing.B) *testBroker {
	b.Helper()
	emb, err := broker.StartEmbedded(b.TempDir(), "127.0.0.1", 0, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(emb.Shutdown)
	nc, js, err := broker.Connect(emb.URL(), broker.Credential{Name: "events-bench"}, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := events.EnsureStream(ctx, js, "bench", 1)
	if err != nil {
		b.Fatal(err)
	}
	return &testBroker{nc: nc, js: js, service: "bench", stream: s, emb: emb}
}

func BenchmarkOutboxRelay(b *testing.B) {
	for _, batch := range []int{1, 64} {
		name := "outbox+relay"
		if batch > 1 {
			name = "batched-64"
		}
		b.Run(name, func(b *testing.B) {
			db := benchDB(b)
			br := benchBroker(b)
			relay := events.NewRelay(db, br.js, quietLog(), prometheus.NewRegistry())
			ctx := context.Background()
			body := benchBody{OrderID: "01HZX3Y7Q2M8N4P6R9S0T1V2W3", TotalCents: 4200, Currency: "EUR"}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				for range batch {
					if err := db.InTx(ctx, func(tx *sql.Tx) error {
						_, err := events.Outbox{}.Add(ctx, tx, body)
						return err
					}); err != nil {
						b.Fatal(err)
					}
				}
				got, err := relay.Pass(ctx)
				if err != nil || got != batch {
					b.Fatalf("Pass = %d, %v; want %d", got, err, batch)
				}
				n += batch
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
		})
	}
}

// BenchmarkInboxConsume: Consumer.HandleEvent, the inbox-guarded handling
// of one event (the inbox row and the handler's own write in one
// transaction); duplicate is a redelivery, which the inbox turns away.
func BenchmarkInboxConsume(b *testing.B) {
	ctx := context.Background()
	db := benchDB(b)
	if err := db.Migrate(ctx, quietLog(), "test", testTables); err != nil {
		b.Fatal(err)
	}
	c := &events.Consumer{Name: "bench", DB: db, Log: quietLog(), Handle: func(ctx context.Context, tx *sql.Tx, e events.Event) error {
		var body benchBody
		if err := json.Unmarshal(e.Data, &body); err != nil {
			return events.Permanent(err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO effects (event_id, consumer, n) VALUES ($1, $2, $3)`, e.ID, "bench", body.TotalCents)
		return err
	}}
	data, _ := json.Marshal(benchBody{OrderID: "01HZX3Y7Q2M8N4P6R9S0T1V2W3", TotalCents: 4200, Currency: "EUR"})
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e := events.Event{ID: "ev" + suffix(), Type: "bench.confirmed", Version: 1, Time: time.Now().UTC(), Data: data}
			if outcome, err := c.HandleEvent(ctx, e); err != nil || outcome != "handled" {
				b.Fatalf("HandleEvent = %s, %v", outcome, err)
			}
		}
	})
	b.Run("duplicate", func(b *testing.B) {
		e := events.Event{ID: "ev-dup", Type: "bench.confirmed", Version: 1, Time: time.Now().UTC(), Data: data}
		if _, err := c.HandleEvent(ctx, e); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if outcome, err := c.HandleEvent(ctx, e); err != nil || outcome != "duplicate" {
				b.Fatalf("HandleEvent = %s, %v", outcome, err)
			}
		}
	})
}
