-- What happened to a message after its transport took it: the provider's
-- delivery events (and bounces parsed from DSNs), normalised.
CREATE TABLE delivery_events (
    id                BIGSERIAL PRIMARY KEY,
    message_id        UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    transport         TEXT NOT NULL,            -- the transport whose endpoint received it
    type              TEXT NOT NULL
        CHECK (type IN ('delivered', 'deferred', 'bounced', 'complained')),
    bounce            TEXT CHECK (bounce IN ('hard', 'soft')),
    recipient         TEXT,
    detail            TEXT,                     -- the provider's reason (an SMTP reply, a bounce description)
    provider_event_id TEXT,                     -- the provider's id of the event: a repeated delivery is stored once
    occurred_at       TIMESTAMPTZ NOT NULL,
    received_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX delivery_events_message ON delivery_events (message_id, occurred_at);
CREATE UNIQUE INDEX delivery_events_once ON delivery_events (transport, provider_event_id);
-- Events name messages by the provider's id.
CREATE INDEX messages_provider_message_id ON messages (provider_message_id);

-- Addresses a tenant no longer sends to (hard bounce, complaint, or an
-- administrator's choice). `email` has its domain part in lower case.
CREATE TABLE suppressions (
    tenant     TEXT NOT NULL,
    email      TEXT NOT NULL,
    reason     TEXT NOT NULL CHECK (reason IN ('bounce', 'complaint', 'manual')),
    detail     TEXT,
    message_id UUID,                            -- the message whose event added it
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, email)
);

-- A message whose every recipient is suppressed is kept, not sent.
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('queued', 'sending', 'sent', 'retrying', 'failed', 'suppressed'));

-- Limits that follow Keycloak's flows, shared by every replica: one GCRA
-- cell per (tenant, limit, kind, address), keyed by a SHA-256 digest (no
-- address in clear). `tat` is the cell's theoretical arrival time, unix ms.
CREATE TABLE flow_limits (
    key TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);
