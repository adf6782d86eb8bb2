package events_test

import (
	"context"
	"database/sql"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/events"
)

// TestConsumerStopGivesBackWhatItHeld: a consumer stopped while messages
// wait in its client-side buffer gives them back to the broker, so the
// next consumer (a restart, another replica) gets them at once instead
// of after AckWait (30s). Stopping by dropping them left them pending.
func TestConsumerStopGivesBackWhatItHeld(t *testing.T) {
	b := embeddedBroker(t)
	db := dbtest.SQLite(t)
	prepare(t, db)
	ctx := context.Background()
	const n = 300
	for i := range n {
		msg, err := events.NewMsg(event(b.eventType(), i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	var handled atomic.Int64
	name := "stopping-" + suffix()
	run := func(stopAfter int64) {
		c := &events.Consumer{Name: name, Stream: events.StreamName(b.service), Subjects: []string{b.eventType()},
			DB: db, JS: b.js, Log: quietLog(),
			Handle: func(ctx context.Context, tx *sql.Tx, e events.Event) error {
				time.Sleep(time.Millisecond) // slow enough that a batch waits in the buffer
				handled.Add(1)
				return nil
			}}
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- c.Run(rctx) }()
		// Count what was committed, not what the handler saw: a handling
		// cut short by the stop rolls back and is delivered again.
		waitFor(t, 10*time.Second, "events handled", func() bool {
			return handled.Load() >= stopAfter && int64(countRows(t, db, "SELECT COUNT(*) FROM inbox WHERE consumer = $1", name)) >= stopAfter
		})
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not stop")
		}
	}

	run(20)
	// Started again, it gets every remaining event at once.
	start := time.Now()
	run(n)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the restarted consumer took %s to get every event; AckWait is 30s", d)
	}
	if got := countRows(t, db, "SELECT COUNT(*) FROM inbox WHERE consumer = $1", name); got != n {
		t.Errorf("the inbox holds %d events, want %d", got, n)
	}
}
