-- +goose Up
-- The read model, built only from events. Each event type fills its own
-- columns or inserts its own rows, keyed by the ids the events carry, and
-- figures are summed when a report is asked for: so the model ends the
-- same whatever order the events arrive in. Times are unix milliseconds.

-- One row. Every event handler updates it first, so handlers and a
-- rebuild's wipe take turns (see consumer.go).
CREATE TABLE report_state (
    id             INTEGER PRIMARY KEY,
    events_applied BIGINT  NOT NULL
);
INSERT INTO report_state (id, events_applied) VALUES (1, 0);

-- Orders, from orders.confirmed, orders.rejected and orders.cancelled.
CREATE TABLE report_orders (
    order_id      TEXT   PRIMARY KEY,
    currency      TEXT   NOT NULL,
    total_cents   BIGINT NOT NULL,
    confirmed_at  BIGINT,
    rejected_at   BIGINT,
    reject_reason TEXT,
    cancelled_at  BIGINT
);
CREATE INDEX report_orders_confirmed_at ON report_orders (confirmed_at);

-- Order lines, from orders.confirmed (and orders.cancelled, which repeats
-- them), for units sold per product.
CREATE TABLE report_order_lines (
    order_id    TEXT    NOT NULL,
    line_no     INTEGER NOT NULL,
    sku         TEXT    NOT NULL,
    quantity    BIGINT  NOT NULL,
    price_cents BIGINT  NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- Payments, from payments.captured and payments.failed.
CREATE TABLE report_payments (
    payment_id     TEXT   PRIMARY KEY,
    order_id       TEXT   NOT NULL,
    currency       TEXT   NOT NULL,
    amount_cents   BIGINT NOT NULL,
    captured_at    BIGINT,
    failed_at      BIGINT,
    failure_reason TEXT
);

-- Refunds, one row per payments.refunded event.
CREATE TABLE report_refunds (
    event_id     TEXT   PRIMARY KEY,
    payment_id   TEXT   NOT NULL,
    order_id     TEXT   NOT NULL,
    currency     TEXT   NOT NULL,
    amount_cents BIGINT NOT NULL,
    refunded_at  BIGINT NOT NULL
);
CREATE INDEX report_refunds_refunded_at ON report_refunds (refunded_at);

-- Stock reservations, from inventory.reserved and inventory.released.
CREATE TABLE report_reservations (
    order_id        TEXT PRIMARY KEY,
    reserved_at     BIGINT,
    released_at     BIGINT,
    release_reason  TEXT,
    previous_status TEXT
);

-- Low-stock alerts, one row per inventory.low_stock event.
CREATE TABLE report_low_stock (
    event_id  TEXT   PRIMARY KEY,
    sku       TEXT   NOT NULL,
    name      TEXT   NOT NULL,
    available BIGINT NOT NULL,
    threshold BIGINT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX report_low_stock_at ON report_low_stock (at);

-- The latest rebuild, one row; not part of the model, so a rebuild never
-- wipes it. owner and heartbeat_at let another replica take over a
-- rebuild whose process died.
CREATE TABLE report_rebuild (
    id           INTEGER PRIMARY KEY,
    rebuild_id   TEXT   NOT NULL,
    state        TEXT   NOT NULL,
    owner        TEXT   NOT NULL,
    applied      BIGINT NOT NULL,
    total        BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    error        TEXT   NOT NULL
);
INSERT INTO report_rebuild (id, rebuild_id, state, owner, applied, total, started_at, finished_at, heartbeat_at, error)
VALUES (1, '', 'idle', '', 0, 0, 0, 0, 0, '');

-- +goose Down
DROP TABLE report_rebuild;
DROP TABLE report_low_stock;
DROP TABLE report_reservations;
DROP TABLE report_refunds;
DROP TABLE report_payments;
DROP TABLE report_order_lines;
DROP TABLE report_orders;
DROP TABLE report_state;
