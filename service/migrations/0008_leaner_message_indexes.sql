-- Fewer index entries per message: one message's life (accepted, claimed,
-- sent) wrote 27 index entries and now writes 19 (one more each with an
-- idempotency key).
-- One index for the pending count at accept (tenant and status, covering) and
-- the overview's breakdown (covering), instead of two that both changed at
-- every status change.
DROP INDEX messages_tenant_status;
DROP INDEX messages_breakdown;
CREATE INDEX messages_breakdown ON messages (tenant, status, transport);
-- Only sent messages carry a provider's id: no entry at accept, one at the outcome.
DROP INDEX messages_provider_message_id;
CREATE INDEX messages_provider_message_id ON messages (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
