-- Bodies in a table of their own: the rendered (or sealed) message is written
-- once, at accept; claims and outcomes rewrite only the small status row.
-- SQLite rewrites a whole record on UPDATE, so with the body inside the row
-- every status change copied it (about 7 KB for a Keycloak email) into the
-- WAL again. Retention deletes a body row; a message without one is not
-- claimed or queued again.
CREATE TABLE bodies (
    message_id TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    message    TEXT NOT NULL          -- the rendered message as JSON, or its sealed form
);
INSERT INTO bodies (message_id, message) SELECT id, message FROM messages WHERE message IS NOT NULL;
ALTER TABLE messages DROP COLUMN message;
