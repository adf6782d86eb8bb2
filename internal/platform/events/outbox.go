package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/microshop/microshop/internal/platform/ids"
)

// Outbox writes events into the service's own database. It has no state:
// the relay finds what it wrote.
type Outbox struct{}

// Add stores body as a new event inside tx, the same transaction that
// makes the change the event announces.
func (Outbox) Add(ctx context.Context, tx *sql.Tx, body Body) (Event, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return Event{}, fmt.Errorf("encoding %s: %w", body.EventType(), err)
	}
	e := Event{ID: ids.New(), Type: body.EventType(), Version: body.EventVersion(), Time: time.Now().UTC(), Data: data}
	// Keep the writer's trace context with the row: the relay publishes
	// later, from another goroutine, but in the same trace.
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	_, err = tx.ExecContext(ctx,
		`INSERT INTO outbox (event_id, event_type, version, occurred_at, data, trace_parent) VALUES ($1, $2, $3, $4, $5, $6)`,
		e.ID, e.Type, e.Version, e.Time.UnixMicro(), string(e.Data), carrier.Get("traceparent"))
	if err != nil {
		return Event{}, fmt.Errorf("writing %s to the outbox: %w", e.Type, err)
	}
	return e, nil
}
