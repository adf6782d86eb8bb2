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

// EnsureStream creates or updates the stream of a publishing service. It is
// idempotent, so every replica calls it at start.
func EnsureStream(ctx context.Context, js jetstream.JetStream, service string, replicas int) (jetstream.Stream, error) {
	if replicas < 1 {
		replicas = 1
	}
	cfg := jetstream.StreamConfig{
		Name:     StreamName(service),
		Subjects: []string{service + ".>"},
		Storage:  jetstream.FileStorage,
		// Events are kept, not consumed away: reports rebuild its read
		// model by replaying them from the start.
		Retention:  jetstream.LimitsPolicy,
		Duplicates: DuplicateWindow,
		Replicas:   replicas,
	}
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", cfg.Name, err)
	}
	return s, nil
}
