-- Webhook signatures that cover no event (Mailgun signs a timestamp and a
-- token only): each token is taken with one body, by every replica and
-- across restarts. `token` is the SHA-256 of the provider's token (hex),
-- `digest` that of the body it came with; `signed_at` unix milliseconds.
-- Rows are let go once their signature is too old to be taken anyway.
CREATE TABLE event_signatures (
    token     TEXT PRIMARY KEY,
    digest    BLOB NOT NULL,
    signed_at INTEGER NOT NULL
);
CREATE INDEX event_signatures_by_time ON event_signatures (signed_at);
