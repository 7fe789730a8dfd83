-- Notices are claimed fairly across their destinations (a tenant's webhook
-- receiver, its Keycloak; see `queue::lane`): the claim walks the tenants
-- with notices waiting for an attempt and takes the oldest due of each
-- destination, so that one destination's backlog is never read past.
CREATE INDEX notices_waiting ON messages (tenant, transport, next_attempt_at)
    WHERE transport IN ('webhook', 'keycloak') AND status IN ('queued', 'retrying');
