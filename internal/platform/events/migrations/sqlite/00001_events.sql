-- +goose Up
-- The outbox: events written with the state change, waiting for the relay.
-- seq orders them; the relay deletes a row once the broker has acked it.
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    occurred_at BIGINT  NOT NULL,
    data        TEXT    NOT NULL
);

-- The inbox: ids of events this service has handled, per consumer.
CREATE TABLE inbox (
    consumer   TEXT   NOT NULL,
    event_id   TEXT   NOT NULL,
    handled_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;

-- Events a consumer could not handle and will never be able to (an
-- unknown major version, a body that does not decode), kept for a person.
CREATE TABLE dead_letters (
    consumer    TEXT   NOT NULL,
    event_id    TEXT   NOT NULL,
    event_type  TEXT   NOT NULL,
    data        TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- +goose Down
DROP TABLE dead_letters;
DROP TABLE inbox;
DROP TABLE outbox;
