package events_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/ids"
)

// A consumer takes an event only from its subject's owner: the event's
// type is the subject it came on, and it came through the owner's
// stream. The broker here is misconfigured (anyone may publish anything
// and make any stream), so only the consumer's own check stands between a
// forged event and its effect. The genuine cases show the check can fail.
func TestAConsumerDeadLettersAnEventNotFromItsOwner(t *testing.T) {
	cases := []struct {
		name string
		// stream is the service whose stream carries the subject; the
		// subject's owner is "vic".
		stream string
		// typ is what the envelope says the event is.
		typ        string
		wantReason string // empty: handled
	}{
		{name: "genuine", stream: "vic", typ: "vic.thing"},
		{name: "another type on the subject", stream: "vic", typ: "vic.other", wantReason: "says it is a"},
		{name: "the subject through another's stream", stream: "intruder", typ: "vic.thing", wantReason: "came through stream"},
	}
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		prepare(t, db)
		b := embeddedBroker(t)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				// Names of this case's own, so cases never meet.
				sfx := suffix()
				victim, carrier := "vic"+sfx, tc.stream+sfx
				subject := victim + ".thing"
				typ := strings.Replace(tc.typ, "vic", victim, 1)
				if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: events.StreamName(carrier), Subjects: []string{victim + ".>"}}); err != nil {
					t.Fatal(err)
				}
				name := "origin-" + sfx
				rec := newRecorder(name, typ)
				c := &events.Consumer{Name: name, Stream: events.StreamName(carrier), Subjects: []string{subject},
					Handle: rec.handle, DB: db, JS: b.js, Log: quietLog()}
				done := make(chan error, 1)
				cctx, stop := context.WithCancel(ctx)
				go func() { done <- c.Run(cctx) }()
				defer func() { stop(); <-done }()

				e := events.Event{ID: ids.New(), Type: typ, Version: 1, Time: time.Now().UTC(), Data: json.RawMessage(`{"n":999999999}`)}
				msg, err := events.NewMsg(e)
				if err != nil {
					t.Fatal(err)
				}
				msg.Subject = subject
				if _, err := b.js.PublishMsg(ctx, msg); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 15*time.Second, "the event to be handled or dead-lettered", func() bool {
					return inboxHas(t, db, name, e.ID) ||
						countRows(t, db, "SELECT COUNT(*) FROM dead_letters WHERE consumer = $1", name) > 0
				})
				handled := effects(t, db, name, e.ID)
				var reason string
				_ = db.QueryRowContext(ctx, "SELECT reason FROM dead_letters WHERE consumer = $1 AND event_id = $2", name, e.ID).Scan(&reason)
				switch {
				case tc.wantReason == "" && (handled != 1 || reason != ""):
					t.Errorf("a genuine event: %d effects, dead letter %q; want it handled", handled, reason)
				case tc.wantReason != "" && (handled != 0 || !strings.Contains(reason, tc.wantReason)):
					t.Errorf("a forged event: %d effects, dead letter %q; want it dead-lettered for %q", handled, reason, tc.wantReason)
				}
			})
		}
	})
}
