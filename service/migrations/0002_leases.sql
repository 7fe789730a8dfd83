-- A lease is fenced by the claim that took it: `claims` counts every claim of
-- a row and, unlike `attempts` (which a released attempt gives back), never
-- goes back, so an attempt that lost its lease can never match again.
ALTER TABLE messages ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET claims = attempts;

-- One row, rewritten by the readiness probe while commits fail: a real write
-- of about one message's size.
CREATE TABLE store_health (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at INTEGER NOT NULL,
    room      BLOB
);
