-- What happened to a message after its transport took it: the provider's
-- delivery events (and bounces parsed from DSNs), normalised. Times are unix
-- milliseconds (UTC).
CREATE TABLE delivery_events (
    id                INTEGER PRIMARY KEY,
    message_id        TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    transport         TEXT NOT NULL,            -- the transport whose endpoint received it
    type              TEXT NOT NULL,            -- delivered | deferred | bounced | complained
    bounce            TEXT,                     -- hard | soft, for bounced
    recipient         TEXT,
    detail            TEXT,                     -- the provider's reason (an SMTP reply, a bounce description)
    provider_event_id TEXT,                     -- the provider's id of the event: a repeated delivery is stored once
    occurred_at       INTEGER NOT NULL,
    received_at       INTEGER NOT NULL
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
    reason     TEXT NOT NULL,                   -- bounce | complaint | manual
    detail     TEXT,
    message_id TEXT,                            -- the message whose event added it
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, email)
);

-- Limits that follow Keycloak's flows: one GCRA cell per (tenant, limit,
-- kind, address), keyed by a SHA-256 digest (no address in clear). `tat` is
-- the cell's theoretical arrival time, unix milliseconds.
CREATE TABLE flow_limits (
    key TEXT PRIMARY KEY,
    tat INTEGER NOT NULL
);
