-- +goose Up
CREATE TABLE users (
    id            TEXT   PRIMARY KEY,
    email         TEXT   NOT NULL UNIQUE,
    name          TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    roles         TEXT   NOT NULL,          -- comma-separated: customer,admin
    created_at    BIGINT NOT NULL,          -- unix milliseconds
    updated_at    BIGINT NOT NULL
);

-- Refresh tokens are stored as SHA-256 hashes, never in clear. Tokens of
-- one login form a family: reusing a rotated token revokes the family,
-- since only a thief would hold an old one.
CREATE TABLE refresh_tokens (
    token_hash  TEXT   PRIMARY KEY,
    user_id     TEXT   NOT NULL REFERENCES users (id),
    family_id   TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT,                     -- set when rotated
    revoked_at  BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Ed25519 keys that sign access tokens. The newest active one signs;
-- retired ones stay published in the JWKS until their tokens expire.
CREATE TABLE signing_keys (
    kid         TEXT   PRIMARY KEY,
    seed        TEXT   NOT NULL,            -- base64 Ed25519 seed
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE users;
