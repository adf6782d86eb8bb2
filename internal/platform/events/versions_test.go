package events_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/events"
)

// What a consumer built against release 1 of a producer knows.
type shippedV1 struct {
	OrderID string `json:"order_id"`
	Carrier string `json:"carrier"`
}

func (shippedV1) EventType() string { return "shipping.shipped" }
func (shippedV1) EventVersion() int { return 1 }

// A later release of the producer added a field: same major version.
type shippedRelease2 struct {
	OrderID  string `json:"order_id"`
	Carrier  string `json:"carrier"`
	Tracking string `json:"tracking_number"`
}

func (shippedRelease2) EventType() string { return "shipping.shipped" }
func (shippedRelease2) EventVersion() int { return 1 }

// A breaking change: the carrier became an object. New major version.
type shippedV2 struct {
	OrderID string         `json:"order_id"`
	Carrier map[string]any `json:"carrier"`
}

func (shippedV2) EventType() string { return "shipping.shipped" }
func (shippedV2) EventVersion() int { return 2 }

func envelope(t *testing.T, body events.Body) events.Event {
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return events.Event{ID: body.EventType() + time.Now().Format("150405.000000000"), Type: body.EventType(),
		Version: body.EventVersion(), Time: time.Now(), Data: b}
}

func TestAV1ConsumerHandlesAddedFieldsAndDeadLettersANewMajor(t *testing.T) {
	db := dbtest.SQLite(t)
	if err := db.Migrate(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), "events", events.Migrations()); err != nil {
		t.Fatal(err)
	}
	var got []shippedV1
	c := &events.Consumer{Name: "v1-consumer", DB: db, Handle: func(ctx context.Context, tx *sql.Tx, e events.Event) error {
		var v shippedV1
		if err := e.Decode(&v); err != nil {
			return err
		}
		got = append(got, v)
		return nil
	}}

	newer := envelope(t, shippedRelease2{OrderID: "o1", Carrier: "DHL", Tracking: "JD0123"})
	if outcome, err := c.HandleEvent(context.Background(), newer); err != nil || outcome != "handled" {
		t.Fatalf("an event that only added fields: %s %v", outcome, err)
	}
	if len(got) != 1 || got[0].OrderID != "o1" || got[0].Carrier != "DHL" {
		t.Fatalf("decoded %+v", got)
	}

	breaking := envelope(t, shippedV2{OrderID: "o2", Carrier: map[string]any{"name": "DHL"}})
	outcome, err := c.HandleEvent(context.Background(), breaking)
	if outcome != "dead_letter" || !events.IsPermanent(err) {
		t.Fatalf("a new major version: %s %v", outcome, err)
	}
	if len(got) != 1 {
		t.Fatalf("a version 2 event reached the handler: %+v", got)
	}
	// Consumer.Run moves such an event to dead_letters and acks it, so it
	// blocks nothing; TestConsumerRun checks that path on a real stream.
}
