-- +goose Up
-- An erased account keeps its row as a tombstone: the id stays, so the
-- tokens and refresh tokens that name it find no account, and an admin
-- erasing it again learns it is gone. Everything personal in the row is
-- overwritten when erased_at is set (see erase in store.go).
ALTER TABLE users ADD COLUMN erased_at BIGINT;

-- +goose Down
ALTER TABLE users DROP COLUMN erased_at;
