//! The transport of webhook rows: a POST of the row's JSON body to the
//! tenant's `webhook_url`, signed with its `webhook_secret`. Any answer but a
//! 2xx, and any network error, is transient: the row is tried again with
//! backoff until its 24 hours are over.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Webhooks, sign};
use crate::email::OutgoingMessage;
use crate::transport::{Delivery, Transport, TransportError, handover};

/// Delivers webhook rows.
#[derive(Debug, Clone)]
pub struct WebhookTransport {
    webhooks: Webhooks,
    http: reqwest::Client,
}

impl WebhookTransport {
    /// Sends to the targets of `webhooks` through `http`.
    pub fn new(webhooks: Webhooks, http: reqwest::Client) -> Self {
        Self { webhooks, http }
    }
}

#[async_trait]
impl Transport for WebhookTransport {
    async fn send(&self, message: &OutgoingMessage) -> Result<Delivery, TransportError> {
        let Some(target) = self.webhooks.target(&message.tenant) else {
            return Err(TransportError::permanent(format!(
                "tenant `{}` has no webhook_url any more",
                message.tenant
            )));
        };
        let body = message.text.clone().unwrap_or_default();
        let id = format!("msg_{}", message.id.simple());
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        // Checked at start; a secret that no longer reads is a setting to fix, not to retry.
        let key = sign::key(target.secret.expose())
            .map_err(|e| TransportError::permanent(e.to_string()))?;
        let signature = sign::signature(&key, &id, timestamp, body.as_bytes());
        let request = self
            .http
            .post(target.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);
        // A stop waits for the answer to a webhook sent (see `handover`).
        let handed = handover::begin().await;
        let answer = request.send().await.map_err(|e| {
            TransportError::transient(format!("webhook endpoint unreachable: {}", e.without_url()))
        })?;
        let status = answer.status();
        if status.is_success() {
            Ok(Delivery {
                provider_message_id: None,
            })
        } else {
            handed.refused();
            Err(TransportError::transient(format!(
                "the webhook endpoint answered {status}"
            )))
        }
    }
}
