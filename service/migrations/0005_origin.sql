-- Where a message came from, in plain columns beside its body (which may be
-- sealed at rest): the Keycloak realm and email kind it was sent for, and the
-- W3C trace context of the request that accepted it, so that the console can
-- say who sent it and later spans (delivery after a restart, provider events)
-- join the same trace. NULL for messages accepted before this migration.
ALTER TABLE messages ADD COLUMN realm TEXT;
ALTER TABLE messages ADD COLUMN kind TEXT;
ALTER TABLE messages ADD COLUMN traceparent TEXT;
