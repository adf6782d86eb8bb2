-- +goose Up
-- The catalog and its stock, one row per product. Stock is conserved:
-- received = available + reserved + sold, and every change moves units
-- between the columns in one UPDATE, so the CHECK holds at every commit.
CREATE TABLE products (
    sku         TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL,
    -- search is name and description lower-cased by the service (Unicode
    -- aware, unlike SQLite's LOWER), for portable substring search.
    search      TEXT    NOT NULL,
    price_cents BIGINT  NOT NULL CHECK (price_cents > 0),
    currency    TEXT    NOT NULL,
    received    BIGINT  NOT NULL CHECK (received >= 0),
    available   BIGINT  NOT NULL CHECK (available >= 0),
    reserved    BIGINT  NOT NULL CHECK (reserved >= 0),
    sold        BIGINT  NOT NULL CHECK (sold >= 0),
    version     BIGINT  NOT NULL,          -- bumped by every catalog edit
    created_at  BIGINT  NOT NULL,          -- unix milliseconds
    updated_at  BIGINT  NOT NULL,
    CHECK (received = available + reserved + sold)
) WITHOUT ROWID;

-- One reservation per order id: the idempotency key of reserve.
CREATE TABLE reservations (
    order_id       TEXT   PRIMARY KEY,
    status         TEXT   NOT NULL CHECK (status IN ('held', 'committed', 'released')),
    total_cents    BIGINT NOT NULL,
    currency       TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    release_reason TEXT
) WITHOUT ROWID;
-- The expiry sweeper looks for held reservations past their time.
CREATE INDEX reservations_expiry ON reservations (status, expires_at);

CREATE TABLE reservation_lines (
    order_id    TEXT    NOT NULL REFERENCES reservations (order_id),
    line_no     INTEGER NOT NULL,
    sku         TEXT    NOT NULL REFERENCES products (sku),
    quantity    BIGINT  NOT NULL CHECK (quantity > 0),
    price_cents BIGINT  NOT NULL,
    currency    TEXT    NOT NULL,
    PRIMARY KEY (order_id, line_no)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE reservation_lines;
DROP TABLE reservations;
DROP TABLE products;
