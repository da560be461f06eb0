-- +goose Up
-- API keys: only the SHA-256 of each key is kept. Times are Unix milliseconds.
-- AUTOINCREMENT: an id is never reused, so a deleted key's id cannot come back.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    hash         BLOB    NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL,
    label        TEXT    NOT NULL DEFAULT '',
    subject      TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    email        TEXT    NOT NULL DEFAULT '',
    roles        TEXT    NOT NULL DEFAULT '[]',
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER,
    last_used_ms INTEGER
);
CREATE INDEX api_keys_subject ON api_keys (subject);

-- +goose Down
DROP TABLE api_keys;
