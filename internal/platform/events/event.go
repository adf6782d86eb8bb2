// Package events carries domain events between services reliably:
//
//   - the outbox: a service writes its event into its own database in the
//     same transaction as the state change, so neither exists without the
//     other;
//   - the relay: publishes outbox rows to NATS JetStream with the event id
//     as the message id, so the broker drops a duplicate publish;
//   - the inbox: a consumer records each handled event id in its own
//     database in the same transaction as the effect, so a redelivery
//     changes nothing.
//
// Together they give effectively-once handling over at-least-once delivery.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Body is a typed event payload. Each service's contract package declares
// its events as structs implementing Body.
type Body interface {
	// EventType is the subject it is published on, e.g. "users.registered".
	EventType() string
	// EventVersion is the major version of the body's shape. Consumers
	// ignore fields they do not know; a new major version means a field
	// changed meaning.
	EventVersion() int
}

// Event is the envelope every event travels in.
type Event struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Version int             `json:"version"`
	Time    time.Time       `json:"time"`
	Data    json.RawMessage `json:"data"`
}

// Decode unmarshals e's data into v after checking that e carries the
// same type and major version as v. Unknown fields are ignored, so a
// consumer keeps working when a producer adds fields.
func (e Event) Decode(v Body) error {
	if e.Type != v.EventType() {
		return Permanent(fmt.Errorf("event %s is a %s, not a %s", e.ID, e.Type, v.EventType()))
	}
	if e.Version != v.EventVersion() {
		return Permanent(fmt.Errorf("event %s has version %d; this consumer understands version %d", e.ID, e.Version, v.EventVersion()))
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return Permanent(fmt.Errorf("decoding %s %s: %w", e.Type, e.ID, err))
	}
	return nil
}

// DecodeSince is Decode for a body whose versions since oldest differ
// only by members that were removed: it accepts e at any version from
// oldest up to v's own and decodes it into v, ignoring the members v no
// longer has. A consumer of version 2 of orders.confirmed (which dropped
// the email) so keeps handling the version 1 events still in the stream
// until they age out. A version outside the range is permanent, as in
// Decode.
func (e Event) DecodeSince(v Body, oldest int) error {
	if e.Type != v.EventType() {
		return Permanent(fmt.Errorf("event %s is a %s, not a %s", e.ID, e.Type, v.EventType()))
	}
	if e.Version < oldest || e.Version > v.EventVersion() {
		return Permanent(fmt.Errorf("event %s has version %d; this consumer understands versions %d to %d", e.ID, e.Version, oldest, v.EventVersion()))
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return Permanent(fmt.Errorf("decoding %s %s: %w", e.Type, e.ID, err))
	}
	return nil
}

// StreamName is the JetStream stream a service publishes on: one per
// publishing service, named for it ("users" -> "USERS").
func StreamName(service string) string { return strings.ToUpper(service) }

// Owner is the service that publishes subject, the first token of it:
// "orders.confirmed" -> "orders". Only its stream carries the subject.
func Owner(subject string) string {
	owner, _, _ := strings.Cut(subject, ".")
	return owner
}

// DurableName is the durable consumer through which service reads
// subject: "notifications", "orders.confirmed" ->
// "notifications-orders-confirmed". The broker's permissions are made
// from these names, so every consumer must be named so.
func DurableName(service, subject string) string {
	return service + "-" + strings.NewReplacer(".", "-", "_", "-").Replace(subject)
}

// permanentError marks a failure that no redelivery can fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent wraps err so the consumer stops retrying the event and moves
// it to the dead-letter table instead.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
