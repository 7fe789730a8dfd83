-- Bodies in a table of their own: the rendered (or sealed) message is written
-- once, at accept; claims and outcomes update only the small status row.
-- Retention deletes a body row; a message without one is not claimed or
-- queued again.
CREATE TABLE bodies (
    message_id UUID PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    message    JSONB NOT NULL         -- the rendered message, or its sealed form
);
INSERT INTO bodies (message_id, message) SELECT id, message FROM messages WHERE message IS NOT NULL;
ALTER TABLE messages DROP COLUMN message;
