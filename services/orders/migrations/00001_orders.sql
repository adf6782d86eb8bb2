-- +goose Up
-- An order and the state of its saga. saga_step is the next step to run
-- ("done" when the saga has ended); lease_owner/lease_until say which
-- orders process runs it, so replicas and restarts never run one twice.
CREATE TABLE orders (
    id              TEXT    PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    email           TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    reason          TEXT    NOT NULL DEFAULT '',
    total_cents     BIGINT  NOT NULL,
    currency        TEXT    NOT NULL,
    shipping        TEXT    NOT NULL,          -- JSON address
    card_brand      TEXT    NOT NULL,
    card_last4      TEXT    NOT NULL,
    payment_id      TEXT    NOT NULL DEFAULT '',
    saga_step       TEXT    NOT NULL,
    step_deadline   BIGINT  NOT NULL DEFAULT 0, -- unix ms; 0: none
    lease_owner     TEXT    NOT NULL DEFAULT '',
    lease_until     BIGINT  NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX orders_user ON orders (user_id, id);
CREATE INDEX orders_saga ON orders (saga_step, lease_until);

CREATE TABLE order_lines (
    order_id    TEXT    NOT NULL REFERENCES orders (id),
    line_no     INTEGER NOT NULL,
    sku         TEXT    NOT NULL,
    quantity    BIGINT  NOT NULL,
    price_cents BIGINT  NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- The saga log: every step recorded before and after it runs.
CREATE TABLE saga_log (
    id        TEXT   PRIMARY KEY,              -- time-ordered
    order_id  TEXT   NOT NULL,
    step      TEXT   NOT NULL,
    event     TEXT   NOT NULL,
    detail    TEXT   NOT NULL DEFAULT '',
    at        BIGINT NOT NULL
);
CREATE INDEX saga_log_order ON saga_log (order_id, id);

-- +goose Down
DROP TABLE saga_log;
DROP TABLE order_lines;
DROP TABLE orders;
