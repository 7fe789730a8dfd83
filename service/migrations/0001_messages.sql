-- The queue: one row per accepted message. Times are unix milliseconds (UTC)
-- so that SQL comparisons and ordering are exact.
CREATE TABLE messages (
    id                  TEXT PRIMARY KEY,      -- UUIDv7: ordered by accept time
    tenant              TEXT NOT NULL,
    status              TEXT NOT NULL,         -- queued | sending | sent | retrying | failed
    attempts            INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    transport           TEXT NOT NULL,
    provider_message_id TEXT,
    message             TEXT,                  -- the rendered message as JSON; NULL once retention removed it
    idempotency_key     TEXT,
    created_at          INTEGER NOT NULL,
    age_from            INTEGER NOT NULL,      -- start of MAILBRIDGE_RETRY_MAX_AGE: accept time, or an admin's retry
    updated_at          INTEGER NOT NULL,
    next_attempt_at     INTEGER,
    lease_until         INTEGER,
    sent_at             INTEGER
);

CREATE UNIQUE INDEX messages_idempotency ON messages (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_due ON messages (status, next_attempt_at);
CREATE INDEX messages_tenant_status ON messages (tenant, status);
