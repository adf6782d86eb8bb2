-- +goose Up
-- Webhook endpoints that admins registered. The signing secret is not
-- stored: it is derived from the service's webhook signing key and the
-- endpoint id (see secrets.go), so a copy of this database leaks none.
CREATE TABLE webhook_endpoints (
    id          TEXT   PRIMARY KEY,              -- time-ordered
    url         TEXT   NOT NULL,
    description TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

-- The event types an endpoint receives, one row each.
CREATE TABLE webhook_subscriptions (
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    PRIMARY KEY (event_type, endpoint_id)
);

-- One row per event and channel ("email", "webhook:<endpoint id>"): the
-- UNIQUE constraint is what makes a notification go out once however often
-- its event is delivered. The event handler only inserts rows (pending);
-- the dispatcher claims due rows with a lease, sends them and records the
-- outcome. Times are unix milliseconds.
CREATE TABLE deliveries (
    id              TEXT    PRIMARY KEY,         -- time-ordered
    event_id        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    order_id        TEXT    NOT NULL DEFAULT '',
    channel         TEXT    NOT NULL,
    endpoint_id     TEXT    NOT NULL DEFAULT '', -- webhook deliveries
    recipient       TEXT    NOT NULL,            -- an email address or a URL
    subject         TEXT    NOT NULL DEFAULT '',
    body            TEXT    NOT NULL,            -- email: the text part; webhook: the JSON envelope
    html            TEXT    NOT NULL DEFAULT '', -- email: the HTML part
    status          TEXT    NOT NULL,            -- pending, failed, sent, dead
    tries           INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    next_attempt_at BIGINT  NOT NULL,
    lease_owner     TEXT    NOT NULL DEFAULT '',
    lease_until     BIGINT  NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL,
    sent_at         BIGINT  NOT NULL DEFAULT 0,
    UNIQUE (event_id, channel)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_order ON deliveries (order_id, id);
CREATE INDEX deliveries_type ON deliveries (event_type, id);

-- Settings the service keeps about itself: the fingerprint of the webhook
-- signing key, so a replica started with another key refuses to run
-- instead of signing with secrets no receiver knows.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- +goose Down
DROP TABLE settings;
DROP TABLE deliveries;
DROP TABLE webhook_subscriptions;
DROP TABLE webhook_endpoints;
