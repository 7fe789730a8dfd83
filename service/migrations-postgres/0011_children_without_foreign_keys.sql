-- A message's body, recipients and history no longer carry foreign keys to
-- it. Each of their rows is written only in the statement or transaction
-- that writes (or, under the lease's fence, updates) the message itself, and
-- the one statement that deletes a message deletes them with it.
--
-- The checks cost more than their work: PostgreSQL keeps the plan of each
-- check (`SELECT 1 FROM messages WHERE id = $1 FOR KEY SHARE`) per
-- connection, made from the table's statistics of that moment. Made after
-- autovacuum's first pass over a young table of a few dozen rows, it is a
-- sequential scan, kept until the next ANALYZE: every body, recipient and
-- history row written meanwhile read the whole table (a burst right after
-- the first emails of a new install: accepts -35 %, p99 26 -> 330 ms). In
-- steady state they were 3-5 % of the accepts. Provider events keep theirs
-- (few rows, and removed with their message by it).
ALTER TABLE bodies DROP CONSTRAINT IF EXISTS bodies_message_id_fkey;
ALTER TABLE recipients DROP CONSTRAINT IF EXISTS recipients_message_id_fkey;
ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_message_id_fkey;
