-- +goose Up
-- orders no longer keeps the customer's email: its events name the
-- customer by id only (orders.* version 2, docs/privacy.md). The column
-- stays, empty, so older binaries still read the table.
UPDATE orders SET email = '';

-- +goose Down
SELECT 1;
