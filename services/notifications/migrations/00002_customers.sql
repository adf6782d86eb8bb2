-- +goose Up
-- Where to write to each customer, learned from users.registered (or,
-- for a customer notifications has not heard of, asked of users), since
-- the orders.* events name the customer by id only. An erased customer
-- keeps a row with an empty email and erased_at set, so that a
-- users.registered handled after users.erased (they come through two
-- consumers, in no fixed order) cannot bring the address back.
CREATE TABLE customers (
    user_id    TEXT   PRIMARY KEY,
    email      TEXT   NOT NULL,
    name       TEXT   NOT NULL DEFAULT '',
    erased_at  BIGINT
);

-- The customer a delivery is about, so erasing a customer finds their
-- messages; '' for deliveries about no customer (stock alerts) and for
-- those made before this column (erasure finds those by address).
ALTER TABLE deliveries ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
CREATE INDEX deliveries_user ON deliveries (user_id);

-- +goose Down
DROP INDEX deliveries_user;
ALTER TABLE deliveries DROP COLUMN user_id;
DROP TABLE customers;
