-- Messages and notices (webhooks out, feedback into Keycloak) are claimed
-- apart, each lane from an index of its own rows (see `queue::lane`), so
-- that a backlog of one lane never makes the other's claims read it. Each
-- row is in exactly one of the two, as it was in the index they replace.
DROP INDEX messages_due;
CREATE INDEX messages_due ON messages (status, next_attempt_at)
    WHERE transport NOT IN ('webhook', 'keycloak');
CREATE INDEX notices_due ON messages (status, next_attempt_at)
    WHERE transport IN ('webhook', 'keycloak');
