-- The queue in PostgreSQL: one row per accepted message, shared by every
-- replica of the service. Claims use FOR UPDATE SKIP LOCKED.
CREATE TABLE messages (
    id                  UUID PRIMARY KEY,      -- UUIDv7: ordered by accept time
    tenant              TEXT NOT NULL,
    status              TEXT NOT NULL
        CHECK (status IN ('queued', 'sending', 'sent', 'retrying', 'failed')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    transport           TEXT NOT NULL,
    provider_message_id TEXT,
    message             JSONB,                 -- the rendered message; NULL once retention removed it
    idempotency_key     TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    age_from            TIMESTAMPTZ NOT NULL,  -- start of MAILBRIDGE_RETRY_MAX_AGE: accept time, or an admin's retry
    updated_at          TIMESTAMPTZ NOT NULL,
    next_attempt_at     TIMESTAMPTZ,
    lease_until         TIMESTAMPTZ,
    sent_at             TIMESTAMPTZ
);

CREATE UNIQUE INDEX messages_idempotency ON messages (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_due ON messages (status, next_attempt_at);
CREATE INDEX messages_tenant_status ON messages (tenant, status);
