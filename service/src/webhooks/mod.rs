//! Webhooks out: the application learns what happened to its messages
//! (`message.sent`, `message.failed`, `message.delivered`, `message.bounced`,
//! `message.complained`, `message.suppressed`), signed as Standard Webhooks.
//!
//! A webhook is a row of the same queue as the messages, under the reserved
//! transport [`TRANSPORT`]: it is committed before anything depends on it,
//! claimed under a lease, retried with backoff for 24 hours, and `failed`
//! after that, exactly like an email. Its row holds the event's JSON body
//! (in the message's `text`); the URL and secret are read from the tenant's
//! settings when it is sent, so that a rotated secret applies at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::email::{Mailbox, OutgoingMessage};
use crate::queue::retry::RetryPolicy;
use crate::queue::{JobStore, NewJob, Origin, StoreError};
use crate::secret::Secret;

pub mod sign;
pub mod transport;

/// The reserved transport name of webhook rows.
pub const TRANSPORT: &str = "webhook";
/// How long a webhook is retried before it is `failed`.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);

/// The kinds of webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookType {
    /// The transport's peer took the message.
    Sent,
    /// The message is `failed` (permanently refused, or given up).
    Failed,
    /// The recipient's server accepted it (a provider's event).
    Delivered,
    /// It bounced (hard or soft).
    Bounced,
    /// The recipient complained.
    Complained,
    /// Not sent: every recipient is suppressed.
    Suppressed,
}

impl WebhookType {
    /// The event type name, `message.…`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookType::Sent => "message.sent",
            WebhookType::Failed => "message.failed",
            WebhookType::Delivered => "message.delivered",
            WebhookType::Bounced => "message.bounced",
            WebhookType::Complained => "message.complained",
            WebhookType::Suppressed => "message.suppressed",
        }
    }
}

/// Where one tenant's webhooks go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The application's endpoint.
    pub url: url::Url,
    /// The `whsec_…` signing secret.
    pub secret: Secret,
}

/// Every tenant's webhook target, and how to queue a webhook.
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    targets: Arc<BTreeMap<String, Target>>,
}

impl Webhooks {
    /// The targets by tenant.
    pub fn new(targets: BTreeMap<String, Target>) -> Self {
        Self {
            targets: Arc::new(targets),
        }
    }

    /// The target of `tenant`, if it has one.
    pub fn target(&self, tenant: &str) -> Option<&Target> {
        self.targets.get(tenant)
    }

    /// The retry policy of webhook rows (and Keycloak feedback): the
    /// service's delays, for 24 hours, the last attempt at the 24th hour
    /// when the next delay would pass it.
    pub fn policy(messages: &RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            max_attempts: u32::MAX,
            max_age: RETRY_FOR,
            ..messages.clone()
        }
    }

    /// Queues a webhook of `kind` about message `id` of `tenant`, if the
    /// tenant has a `webhook_url`; answers whether one was queued.
    pub async fn queue(
        &self,
        store: &dyn JobStore,
        tenant: &str,
        kind: WebhookType,
        id: Uuid,
        data: Value,
    ) -> Result<bool, StoreError> {
        let Some(job) = self.notice(tenant, kind, id, data) else {
            return Ok(false);
        };
        store.enqueue(job).await?;
        Ok(true)
    }

    /// The row of a webhook of `kind` about message `id` of `tenant`, if the
    /// tenant has a `webhook_url` (for [`JobStore::record_with`], which
    /// stores it with the outcome it tells of).
    pub fn notice(
        &self,
        tenant: &str,
        kind: WebhookType,
        id: Uuid,
        mut data: Value,
    ) -> Option<NewJob> {
        self.target(tenant)?;
        let now = OffsetDateTime::now_utc();
        data["message_id"] = json!(id);
        data["tenant"] = json!(tenant);
        let body = json!({
            "type": kind.as_str(),
            "timestamp": now.format(&Rfc3339).unwrap_or_default(),
            "data": data,
        });
        let message = OutgoingMessage {
            tags: vec!["webhook".to_owned()],
            metadata: BTreeMap::from([("message_id".to_owned(), id.to_string())]),
            ..OutgoingMessage::plain(
                tenant,
                Mailbox::new("webhooks@mailbridge.invalid"),
                Mailbox::new("webhook@mailbridge.invalid"),
                kind.as_str(),
                &body.to_string(),
            )
        };
        Some(NewJob {
            message,
            idempotency_key: None,
            transport: TRANSPORT.to_owned(),
            now,
            lease: None,
            // The console and the API name the row by its event type.
            origin: Origin {
                kind: Some(kind.as_str().to_owned()),
                ..Origin::default()
            },
            limits: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::retry::Decision;
    use time::macros::datetime;

    #[test]
    fn webhooks_are_retried_up_to_their_24th_hour_whatever_the_longest_delay() {
        let accepted = datetime!(2026-01-01 00:00 UTC);
        let hour = Duration::from_secs(3600);
        // `MAILBRIDGE_RETRY_MAX_INTERVAL=6h`: after an attempt 20 hours in,
        // the next delay (up to 6 h) may pass the 24 h.
        let policy = Webhooks::policy(&RetryPolicy {
            max_interval: 6 * hour,
            ..RetryPolicy::default()
        });
        let late = accepted + 20 * hour;
        for jitter in [0.7, 0.9, 0.999] {
            assert_eq!(
                policy.decide(30, accepted, late, None, jitter),
                Decision::Retry {
                    at: accepted + RETRY_FOR
                },
                "{jitter}"
            );
        }
        // A provider's hint past the end is cut to it too.
        assert_eq!(
            policy.decide(30, accepted, late, Some(6 * hour), 0.0),
            Decision::Retry {
                at: accepted + RETRY_FOR
            }
        );
        // The attempt at the 24th hour is the last.
        assert!(matches!(
            policy.decide(31, accepted, accepted + RETRY_FOR, None, 0.5),
            Decision::Fail { .. }
        ));
    }
}
