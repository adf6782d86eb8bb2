-- +goose Up
-- The trace context of the change that wrote the event, so the relay's
-- publish and every consumer's handling join the same trace.
ALTER TABLE outbox ADD COLUMN trace_parent TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE outbox DROP COLUMN trace_parent;
