-- The console's history: one row per attempt that came to an outcome, written
-- in the same transaction (and under the same lease fence) as the outcome, so
-- the history never shows an attempt that the queue does not.
CREATE TABLE attempts (
    id          BIGSERIAL PRIMARY KEY,
    message_id  UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,  -- the message's attempt number (an admin's retry starts again at 1)
    transport   TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('sent', 'retrying', 'failed', 'suppressed')),
    answer      TEXT,              -- the server's or provider's answer: an error, or the provider's message id
    finished_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX attempts_message ON attempts (message_id, id);
CREATE INDEX attempts_transport ON attempts (transport, id);
CREATE INDEX attempts_transport_outcome ON attempts (transport, outcome, id);

-- Every recipient address (lower case) of a message, so the console can find
-- "Ada's email" by exact address or prefix without reading bodies.
CREATE TABLE recipients (
    message_id UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    address    TEXT NOT NULL
);
CREATE INDEX recipients_address ON recipients (address text_pattern_ops, message_id);
CREATE INDEX recipients_message ON recipients (message_id);

-- The console's filters: by status or tenant, newest first; the last hour's
-- deliveries; the overview's counts from the index alone (rows hold bodies).
CREATE INDEX messages_status_id ON messages (status, id);
CREATE INDEX messages_tenant_id ON messages (tenant, id);
CREATE INDEX messages_sent_at ON messages (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX messages_breakdown ON messages (tenant, transport, status);
