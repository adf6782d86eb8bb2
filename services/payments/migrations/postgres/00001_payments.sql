-- +goose Up
-- The same schema as the sqlite twin of this file, without WITHOUT ROWID.
-- Payments: one row per authorization attempt. Of the card only the brand
-- and last four digits are kept; the number and cvc are never written.
-- Money is integer minor units; times are unix milliseconds.
CREATE TABLE payments (
    id             TEXT    PRIMARY KEY,      -- time-ordered ULID
    order_id       TEXT    NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('authorized', 'captured', 'voided', 'declined')),
    amount_cents   BIGINT  NOT NULL CHECK (amount_cents > 0),
    currency       TEXT    NOT NULL,
    brand          TEXT    NOT NULL,
    last4          TEXT    NOT NULL,
    captured_cents BIGINT  NOT NULL DEFAULT 0,
    refunded_cents BIGINT  NOT NULL DEFAULT 0,
    decline_reason TEXT    NOT NULL DEFAULT '',
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    CHECK (captured_cents = 0 OR captured_cents = amount_cents),
    CHECK (refunded_cents >= 0 AND refunded_cents <= captured_cents)
);
CREATE INDEX payments_order ON payments (order_id);

-- One row per order that payments has seen: authorize and void lock it,
-- so they never interleave for one order, and voided_at is the tombstone
-- that refuses a late authorization.
CREATE TABLE payment_orders (
    order_id  TEXT   PRIMARY KEY,
    voided_at BIGINT
);

-- The double-entry ledger. A movement is exactly one debit (a positive
-- amount) and one credit (the same amount, negative), written in the
-- transaction that changes the payment; the primary key allows no third.
CREATE TABLE ledger_entries (
    movement_id  TEXT   NOT NULL,           -- time-ordered ULID
    side         TEXT   NOT NULL CHECK (side IN ('debit', 'credit')),
    account      TEXT   NOT NULL,
    amount_cents BIGINT NOT NULL,
    currency     TEXT   NOT NULL,
    payment_id   TEXT   NOT NULL REFERENCES payments (id),
    kind         TEXT   NOT NULL CHECK (kind IN ('authorize', 'capture', 'void', 'refund')),
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (movement_id, side),
    CHECK ((side = 'debit' AND amount_cents > 0) OR (side = 'credit' AND amount_cents < 0))
);
CREATE INDEX ledger_entries_payment ON ledger_entries (payment_id);

-- Answers to writes, by Idempotency-Key, with a fingerprint of the request
-- they answered: the same key and request get the same answer again.
CREATE TABLE idempotency_keys (
    idem_key     TEXT    PRIMARY KEY,
    fingerprint  TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    content_type TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE ledger_entries;
DROP TABLE payment_orders;
DROP TABLE payments;
