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

// A breaking change that only removes a member (personal data a
// consumer should no longer get): version 3 drops the carrier.
type shippedV3 struct {
	OrderID string `json:"order_id"`
}

func (shippedV3) EventType() string { return "shipping.shipped" }
func (shippedV3) EventVersion() int { return 3 }

type shippedV4 struct{ shippedV3 }

func (shippedV4) EventVersion() int { return 4 }

// DecodeSince takes the versions from the oldest a consumer names up to
// its own, and refuses, as permanent, those outside; Decode, the same
// consumer's old way, refused the older ones still in the stream.
func TestDecodeSinceAcceptsOlderVersionsWithinItsRange(t *testing.T) {
	v1 := envelope(t, shippedV1{OrderID: "o1", Carrier: "DHL"})
	v2 := envelope(t, shippedV2{OrderID: "o2", Carrier: map[string]any{"name": "DHL"}})
	v3 := envelope(t, shippedV3{OrderID: "o3"})
	v4 := envelope(t, shippedV4{shippedV3{OrderID: "o4"}})
	for _, c := range []struct {
		e    events.Event
		want string
	}{{v1, "o1"}, {v2, "o2"}, {v3, "o3"}} {
		var b shippedV3
		if err := c.e.DecodeSince(&b, 1); err != nil || b.OrderID != c.want {
			t.Errorf("version %d: %+v %v", c.e.Version, b, err)
		}
	}
	var b shippedV3
	if err := v1.Decode(&b); !events.IsPermanent(err) {
		t.Errorf("Decode took an older version: %v", err)
	}
	if err := v4.DecodeSince(&b, 1); !events.IsPermanent(err) {
		t.Errorf("a newer version than the consumer's: %v", err)
	}
	if err := v1.DecodeSince(&b, 2); !events.IsPermanent(err) {
		t.Errorf("a version older than the oldest named: %v", err)
	}
	if err := envelope(t, shippedV1{}).DecodeSince(&usersLike{}, 1); !events.IsPermanent(err) {
		t.Errorf("another type: %v", err)
	}
}

type usersLike struct{}

func (usersLike) EventType() string { return "users.registered" }
func (usersLike) EventVersion() int { return 1 }
