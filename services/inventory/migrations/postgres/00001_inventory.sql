-- +goose Up
-- See the sqlite twin of this file. The differences: skus and order ids
-- sort bytewise (COLLATE "C") whatever the database's locale, so the
-- sku-ordered pages and their tokens mean the same on both dialects.
CREATE TABLE products (
    sku         TEXT    COLLATE "C" PRIMARY KEY,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL,
    search      TEXT    NOT NULL,
    price_cents BIGINT  NOT NULL CHECK (price_cents > 0),
    currency    TEXT    NOT NULL,
    received    BIGINT  NOT NULL CHECK (received >= 0),
    available   BIGINT  NOT NULL CHECK (available >= 0),
    reserved    BIGINT  NOT NULL CHECK (reserved >= 0),
    sold        BIGINT  NOT NULL CHECK (sold >= 0),
    version     BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    CHECK (received = available + reserved + sold)
);

CREATE TABLE reservations (
    order_id       TEXT   COLLATE "C" PRIMARY KEY,
    status         TEXT   NOT NULL CHECK (status IN ('held', 'committed', 'released')),
    total_cents    BIGINT NOT NULL,
    currency       TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    release_reason TEXT
);
CREATE INDEX reservations_expiry ON reservations (status, expires_at);

CREATE TABLE reservation_lines (
    order_id    TEXT    COLLATE "C" NOT NULL REFERENCES reservations (order_id),
    line_no     INTEGER NOT NULL,
    sku         TEXT    COLLATE "C" NOT NULL REFERENCES products (sku),
    quantity    BIGINT  NOT NULL CHECK (quantity > 0),
    price_cents BIGINT  NOT NULL,
    currency    TEXT    NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- +goose Down
DROP TABLE reservation_lines;
DROP TABLE reservations;
DROP TABLE products;
