-- +goose Up
-- See the sqlite twin of this file; only the types differ.
CREATE TABLE outbox (
    seq         BIGSERIAL PRIMARY KEY,
    event_id    TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    occurred_at BIGINT  NOT NULL,
    data        TEXT    NOT NULL
);

CREATE TABLE inbox (
    consumer   TEXT   NOT NULL,
    event_id   TEXT   NOT NULL,
    handled_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

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
