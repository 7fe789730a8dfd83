//! What the console reads from a store besides status rows: each message's
//! attempts, its recipients (to find a user's email), and the queue broken
//! down by tenant, transport and status.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Outcome, Status};
use crate::email::OutgoingMessage;

/// One attempt that came to an outcome, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    /// The message's attempt number (an admin's retry starts again at 1).
    pub attempt: u32,
    /// The transport it went through.
    pub transport: String,
    /// `sent`, `retrying` or `failed`.
    pub outcome: String,
    /// The server's or provider's answer: the error, or the provider's id of the message.
    pub answer: Option<String>,
    /// When the outcome was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
}

/// How a search matches recipient addresses (compared in lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientMatch {
    /// This very address.
    Exact(String),
    /// Addresses that start with this.
    Prefix(String),
}

impl RecipientMatch {
    /// `ada@example.com` matches exactly, `ada*` by prefix; blank matches nothing.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_lowercase();
        match text.strip_suffix('*') {
            Some("") => None,
            Some(prefix) => Some(RecipientMatch::Prefix(prefix.to_owned())),
            None if text.is_empty() => None,
            None => Some(RecipientMatch::Exact(text)),
        }
    }
}

/// Which status rows a console search lists, newest first.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Only this status.
    pub status: Option<Status>,
    /// Only these tenants; `None` for every tenant.
    pub tenants: Option<Vec<String>>,
    /// Only messages with a recipient that matches.
    pub recipient: Option<RecipientMatch>,
    /// Only messages through this transport (`webhook`, `keycloak` for those rows).
    pub transport: Option<String>,
    /// Accepted at or after this.
    pub since: Option<OffsetDateTime>,
    /// Accepted before this.
    pub until: Option<OffsetDateTime>,
    /// Only rows created before this one's id (the next page).
    pub before: Option<Uuid>,
    /// At most this many.
    pub limit: u32,
}

impl Search {
    /// The search with its texts as the stores keep them ([`super::storable`]):
    /// a NUL typed into a filter matches nothing instead of failing the query.
    pub(crate) fn storable(&self) -> Search {
        let text = |t: &str| super::storable(t).into_owned();
        Search {
            tenants: (self.tenants.as_ref()).map(|t| t.iter().map(|t| text(t)).collect()),
            recipient: self.recipient.as_ref().map(|r| match r {
                RecipientMatch::Exact(a) => RecipientMatch::Exact(text(a)),
                RecipientMatch::Prefix(p) => RecipientMatch::Prefix(text(p)),
            }),
            transport: self.transport.as_deref().map(text),
            ..self.clone()
        }
    }
}

/// The queue broken down for the overview.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// `(tenant, transport, status, count)` for every combination that has messages.
    pub counts: Vec<(String, String, Status, u64)>,
    /// Messages delivered since the time asked for.
    pub sent_since: u64,
    /// Accept time of the oldest message not yet sent or failed.
    pub oldest_unsent: Option<OffsetDateTime>,
}

/// One transport's health, from its attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TransportHealth {
    /// The transport's name.
    pub transport: String,
    /// When it last delivered.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_sent_at: Option<OffsetDateTime>,
    /// When it last failed, and its answer.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_error_at: Option<OffsetDateTime>,
    /// The answer of its last failure.
    pub last_error: Option<String>,
    /// Failures since its last delivery.
    pub consecutive_failures: u64,
}

impl TransportHealth {
    /// Adds one outcome row (`sent` or a failure) to the figures.
    pub(crate) fn add(&mut self, outcome: &str, answer: Option<String>, at: OffsetDateTime) {
        if outcome == "sent" {
            self.last_sent_at = Some(at);
        } else {
            self.last_error_at = Some(at);
            self.last_error = answer;
        }
    }
}

/// A transport's last delivery: `(id, answer, finished_at)` (`?1`/`$1`: the transport).
pub(crate) fn last_outcome(outcome: &str, placeholder: &str) -> String {
    format!(
        "SELECT id, answer, finished_at FROM attempts WHERE transport = {placeholder} \
         AND outcome = '{outcome}' ORDER BY id DESC LIMIT 1"
    )
}

/// The outcomes a failure is recorded as.
pub(crate) const FAILURES: [&str; 2] = ["retrying", "failed"];

/// The history row an outcome leaves: `(outcome, answer)`; none for an
/// attempt given back uncounted (shutdown, rate limit).
pub(crate) fn attempt_entry(outcome: &Outcome) -> Option<(&'static str, Option<String>)> {
    match outcome {
        Outcome::Sent {
            provider_message_id,
        } => Some(("sent", provider_message_id.clone())),
        Outcome::Retrying { error, .. } => Some(("retrying", Some(error.clone()))),
        Outcome::Failed { error } => Some(("failed", Some(error.clone()))),
        Outcome::Suppressed { reason } => Some(("suppressed", Some(reason.clone()))),
        Outcome::Released { .. } => None,
    }
}

/// Every recipient address of `message` (to, cc, bcc), lower case, once each.
pub(crate) fn recipient_addresses(message: &OutgoingMessage) -> Vec<String> {
    let mut addresses: Vec<String> = (message.to.iter())
        .chain(&message.cc)
        .chain(&message.bcc)
        .map(|m| m.email.to_lowercase())
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// The exclusive upper bound of the addresses that start with `prefix`, for
/// an index range scan: no valid address character sorts above U+10FFFF.
pub(crate) fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

#[cfg(test)]
mod tests {
    use super::RecipientMatch;

    #[test]
    fn a_trailing_star_asks_for_a_prefix() {
        assert_eq!(
            RecipientMatch::parse(" Ada@Example.com "),
            Some(RecipientMatch::Exact("ada@example.com".into()))
        );
        assert_eq!(
            RecipientMatch::parse("ada*"),
            Some(RecipientMatch::Prefix("ada".into()))
        );
        assert_eq!(RecipientMatch::parse("*"), None);
        assert_eq!(RecipientMatch::parse("  "), None);
    }
}
