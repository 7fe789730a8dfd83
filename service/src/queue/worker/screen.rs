//! Suppression at send time. An address can join its tenant's suppression
//! list (a hard bounce of another message, a complaint, an administrator)
//! while a message to it waits in the queue. Before each attempt the worker
//! asks the store once which of the message's recipients are listed, leaves
//! them out, and settles a message with no `to` recipient left as
//! `suppressed` — the rule [`crate::suppression::leave_out`] applies at accept.

use time::OffsetDateTime;

use super::attempt::is_notice;
use super::{AttemptOutcome, Worker};
use crate::queue::{ClaimedJob, Lane, Outcome, StoreError};
use crate::suppression::LeftOut;
use crate::webhooks::WebhookType;

/// `last_error` of a message whose recipients were all suppressed after accept.
const REASON: &str = "not sent: every recipient was put on the tenant's suppression list after the message was accepted";

impl Worker {
    /// Takes the recipients on the tenant's suppression list out of `job`
    /// (unless none of its `to` would be left, see [`LeftOut::everyone`]).
    /// Notices (webhooks, Keycloak feedback) have no recipients to screen.
    pub(super) async fn screen(&self, job: &mut ClaimedJob) -> Result<LeftOut, StoreError> {
        if is_notice(&job.transport) {
            return Ok(LeftOut::default());
        }
        let message = &mut job.message;
        let lists = [&mut message.to, &mut message.cc, &mut message.bcc];
        crate::suppression::screen(self.store.as_ref(), &message.tenant, lists).await
    }

    /// Every `to` recipient was suppressed since accept: the message ends
    /// `suppressed` (through the lease, with its history row), and the
    /// application hears `message.suppressed` as it would at accept.
    pub(super) async fn settle_suppressed(
        &self,
        job: &ClaimedJob,
        addresses: Vec<String>,
    ) -> AttemptOutcome {
        let outcome = Outcome::Suppressed {
            reason: REASON.into(),
        };
        let tenant = job.message.tenant.as_str();
        let data = serde_json::json!({"suppressed_recipients": addresses});
        let kind = WebhookType::Suppressed;
        let notice = self.webhooks.notice(tenant, kind, job.message.id, data);
        if self
            .write(&job.lease, &outcome, notice.as_ref())
            .await
            .is_none()
        {
            return AttemptOutcome::Abandoned {
                reason: "the lease was lost before the outcome was recorded".into(),
            };
        }
        if notice.is_some() {
            self.wake.due(Lane::Notices);
        }
        self.metrics.suppressed(tenant);
        tracing::info!(
            outcome = "suppressed",
            "every recipient was suppressed after accept; not sent"
        );
        AttemptOutcome::Suppressed {
            recipients: addresses,
        }
    }

    /// The list could not be read: nothing is sent to addresses that may be
    /// on it; the attempt counts as a transient failure (so the retry
    /// policy bounds how long a broken store holds the message).
    pub(super) async fn unscreened(&self, job: &ClaimedJob, error: &StoreError) -> AttemptOutcome {
        let error = crate::transport::TransportError::transient(format!(
            "could not read the tenant's suppression list ({error}); not sent"
        ));
        let settled = self.after_transient(job, error, OffsetDateTime::now_utc());
        self.settle(job, settled, &[]).await
    }
}
