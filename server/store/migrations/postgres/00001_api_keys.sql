-- +goose Up
-- API keys: only the SHA-256 of each key is kept. Times are Unix milliseconds.
-- An identity column never reuses an id, so a deleted key's id cannot come back.
CREATE TABLE api_keys (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hash         BYTEA  NOT NULL UNIQUE,
    prefix       TEXT   NOT NULL,
    label        TEXT   NOT NULL DEFAULT '',
    subject      TEXT   NOT NULL,
    username     TEXT   NOT NULL,
    email        TEXT   NOT NULL DEFAULT '',
    roles        TEXT   NOT NULL DEFAULT '[]',
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT,
    last_used_ms BIGINT
);
CREATE INDEX api_keys_subject ON api_keys (subject);

-- +goose Down
DROP TABLE api_keys;
