package events

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DuplicateWindow is how long JetStream remembers message ids. A relay
// that crashed after publishing but before deleting its rows republishes
// them when it restarts, well within this window, and the broker drops them.
const DuplicateWindow = 10 * time.Minute

// DefaultMaxAge is how long a stream keeps an event. It must exceed the
// longest time a consumer may be down and still catch up (its durable
// consumer resumes where it stopped only while the events are there), plus
// what a reports rebuild replays; reports keeps its own tables, so a
// rebuild past this age loses only what the streams no longer hold. Thirty
// days covers a consumer down over a long weekend many times over, and
// bounds how long personal data in events (an email in orders.confirmed)
// outlives the customer's erasure (docs/privacy.md).
const DefaultMaxAge = 30 * 24 * time.Hour

// StreamLimits bound what a stream keeps. The broker drops the oldest
// events first once either is reached; zero means no limit of that kind.
type StreamLimits struct {
	Replicas int
	MaxAge   time.Duration
	MaxBytes int64
}

// EnsureStream creates or updates the stream of a publishing service with
// DefaultMaxAge and no size limit. It is idempotent, so every replica calls
// it at start.
func EnsureStream(ctx context.Context, js jetstream.JetStream, service string, replicas int) (jetstream.Stream, error) {
	return EnsureStreamLimits(ctx, js, service, StreamLimits{Replicas: replicas, MaxAge: DefaultMaxAge})
}

// EnsureStreamLimits is EnsureStream with the given limits. An existing
// stream is updated to them, so changing the limits and restarting a
// service applies them; a shorter MaxAge drops older events at once.
func EnsureStreamLimits(ctx context.Context, js jetstream.JetStream, service string, l StreamLimits) (jetstream.Stream, error) {
	if l.Replicas < 1 {
		l.Replicas = 1
	}
	if l.MaxAge < 0 || l.MaxBytes < 0 {
		return nil, fmt.Errorf("creating stream %s: negative limits (max age %s, max bytes %d)", StreamName(service), l.MaxAge, l.MaxBytes)
	}
	if l.MaxAge != 0 && l.MaxAge < DuplicateWindow {
		// The broker refuses it: an event must outlive the window in
		// which its id is remembered.
		return nil, fmt.Errorf("creating stream %s: max age %s is shorter than the duplicate window %s", StreamName(service), l.MaxAge, DuplicateWindow)
	}
	maxBytes := l.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1 // JetStream's "no limit"
	}
	cfg := jetstream.StreamConfig{
		Name:     StreamName(service),
		Subjects: []string{service + ".>"},
		Storage:  jetstream.FileStorage,
		// Events are kept, not consumed away: reports rebuild its read
		// model by replaying them, and a consumer that was down resumes
		// where it stopped. The limits bound how long and how much.
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxAge:     l.MaxAge,
		MaxBytes:   maxBytes,
		Duplicates: DuplicateWindow,
		Replicas:   l.Replicas,
	}
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", cfg.Name, err)
	}
	return s, nil
}
