-- The console's transport filter (the application's webhooks, Keycloak
-- feedback, one provider), newest first, without reading past other
-- transports' rows. Transport and id never change after accept, so claims
-- and outcomes do not touch this index.
CREATE INDEX messages_transport_id ON messages (transport, id);
