//! The durable queue: the [`JobStore`] trait, its SQLite and PostgreSQL implementations,
//! the pure retry policy, and the worker that claims and delivers messages.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::email::OutgoingMessage;
use crate::events::DeliveryEvent;
use crate::events::signature::SignatureToken;
use crate::limits::LimitCell;
use crate::suppression::Suppression;

pub use batch::{Receipt, Ticket, ticket};
pub use lane::Lane;

mod batch;
mod clock_steps;
mod grouping;
pub mod history;
pub mod lane;
pub(crate) mod lookups;
pub(crate) mod packing;
mod pending;
pub mod postgres;
pub mod retry;
pub mod rotation;
pub mod sealing;
pub mod sqlite;
mod unopened;
pub mod worker;

/// Opens the store `url` names: `sqlite://PATH` (embedded, one serving
/// process) or `postgres://…` (shared by replicas).
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn JobStore>, StoreError> {
    open_sealed(url, None).await
}

/// [`open`], sealing new messages with `keyring` (see [`sealing`]).
pub async fn open_sealed(
    url: &str,
    keyring: Option<std::sync::Arc<sealing::Keyring>>,
) -> Result<std::sync::Arc<dyn JobStore>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(
            sqlite::SqliteStore::open_sealed(url, keyring).await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(
            postgres::PgStore::open_sealed(url, keyring).await?,
        ))
    } else {
        Err(StoreError(anyhow::anyhow!(
            "`{}` names no known store: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB",
            postgres::redact(url)
        )))
    }
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted and waiting for its first attempt.
    Queued,
    /// Claimed by a worker, being delivered now.
    Sending,
    /// Delivered to the transport's peer.
    Sent,
    /// A transient failure; another attempt is planned.
    Retrying,
    /// Given up (permanent failure, too many attempts or too old): the dead-letter state.
    Failed,
    /// Not sent: every recipient is on the tenant's suppression list.
    Suppressed,
}

impl Status {
    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Retrying => "retrying",
            Status::Failed => "failed",
            Status::Suppressed => "suppressed",
        }
    }

    /// Parses a status name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "queued" => Status::Queued,
            "sending" => Status::Sending,
            "sent" => Status::Sent,
            "retrying" => Status::Retrying,
            "failed" => Status::Failed,
            "suppressed" => Status::Suppressed,
            _ => return None,
        })
    }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The rendered message (its `id` becomes the row's id).
    pub message: OutgoingMessage,
    /// The caller's idempotency key, if any (unique per tenant for 24 h).
    pub idempotency_key: Option<String>,
    /// The name of the transport chosen for it.
    pub transport: String,
    /// Accept time.
    pub now: OffsetDateTime,
    /// When set, the row is stored already claimed for its first attempt
    /// under a lease of this length (`?wait=true` delivers at once), and
    /// [`JobStore::enqueue`] answers [`Enqueued::Claimed`].
    pub lease: Option<Duration>,
    /// Where it came from, stored in plain columns beside the body.
    pub origin: Origin,
    /// The flow-limit cells it must pass (empty: none). They are checked and
    /// spent in the commit that stores it: a message refused by one is not
    /// stored and spends none ([`Enqueued::Limited`]), and a repeat of an
    /// idempotency key is answered as one, never refused.
    pub limits: Vec<LimitCell>,
}

/// Where a message came from: kept in plain columns beside its body (which
/// may be sealed at rest), for the console's timeline and for spans that
/// join the accepting request's trace later (delivery, provider events).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The Keycloak realm it was sent for (the request's `metadata.realm`).
    pub realm: Option<String>,
    /// The email kind: the request's `template` (`password-reset`, …).
    pub kind: Option<String>,
    /// The W3C `traceparent` of the request that accepted it, when traced.
    pub traceparent: Option<String>,
}

/// The answer to [`JobStore::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new row was committed.
    Created(Uuid),
    /// A new row was committed already claimed, under this lease.
    Claimed(Lease),
    /// The tenant already used this idempotency key in the last 24 h: its first message's id.
    Duplicate(Uuid),
    /// Refused by a flow limit, nothing stored: how long until it would
    /// pass, and which of the job's `limits` needs that long.
    Limited { wait: Duration, index: usize },
}

impl Enqueued {
    /// Whether a new message was stored.
    pub fn stored(&self) -> bool {
        matches!(self, Enqueued::Created(_) | Enqueued::Claimed(_))
    }
}

/// One attempt's hold on a message. Every write about the attempt goes
/// through it and is fenced by it: it applies only while the row is still
/// `sending` for this very attempt, so an attempt that lost its lease records
/// nothing and can never overwrite another attempt's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The message.
    pub id: Uuid,
    /// Which attempt holds it (1 for the first).
    pub attempt: u32,
    /// The row's claim count when this attempt took it: the fence. Unlike
    /// `attempt` (a released attempt gives its number back) it never repeats.
    pub claim: u32,
    /// Until when, unless renewed.
    pub until: OffsetDateTime,
}

/// What an attempt came to, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered.
    Sent {
        /// The provider's id of the message.
        provider_message_id: Option<String>,
    },
    /// A transient failure: try again at `next_attempt_at`.
    Retrying {
        /// Why this attempt did not deliver.
        error: String,
        /// When the next attempt is due.
        next_attempt_at: OffsetDateTime,
    },
    /// Given up: the dead-letter state.
    Failed {
        /// Why.
        error: String,
    },
    /// Not sent because every recipient is suppressed: at accept (through
    /// the lease the message was stored under), or by an attempt that found
    /// them suppressed since. The attempt that records it is not counted.
    Suppressed {
        /// The suppressed recipients, for `last_error`.
        reason: String,
    },
    /// Given back without counting the attempt (shutdown, rate limit).
    Released {
        /// When it is due again.
        next_attempt_at: OffsetDateTime,
    },
}

impl Outcome {
    /// The outcome as the stores keep it, its peer's words [`storable`].
    pub(crate) fn storable(&self) -> Outcome {
        let text = |t: &str| storable(t).into_owned();
        match self {
            Outcome::Sent {
                provider_message_id,
            } => Outcome::Sent {
                provider_message_id: provider_message_id
                    .as_deref()
                    .map(|id| storable_id(id).into_owned()),
            },
            Outcome::Retrying {
                error,
                next_attempt_at,
            } => Outcome::Retrying {
                error: text(error),
                next_attempt_at: *next_attempt_at,
            },
            Outcome::Failed { error } => Outcome::Failed { error: text(error) },
            Outcome::Suppressed { reason } => Outcome::Suppressed {
                reason: text(reason),
            },
            Outcome::Released { next_attempt_at } => Outcome::Released {
                next_attempt_at: *next_attempt_at,
            },
        }
    }
}

/// Text from a peer (an SMTP reply, a provider's error, id or event) as
/// every store keeps it: NUL, which PostgreSQL's text refuses, becomes
/// U+FFFD. Unreplaced, one such value would fail its whole commit group:
/// every accept and outcome written with it.
pub fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

/// Longest id of a peer's (a provider's message id, an event's id) that the
/// stores keep as it is: both are indexed, and PostgreSQL indexes at most
/// about 2,700 bytes of a row (a longer value fails its insert, and the
/// commit group it is in). Real ids are far shorter.
const MAX_STORED_ID: usize = 256;

/// A peer's id as every store keeps it and looks it up: [`storable`], and
/// beyond [`MAX_STORED_ID`] bytes `sha256:` and the id's digest in hex, so
/// that the same id still finds its row and another id does not.
pub fn storable_id(id: &str) -> std::borrow::Cow<'_, str> {
    if id.len() <= MAX_STORED_ID {
        return storable(id);
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}").into()
}

/// `entry` as the stores keep it: its address in lower case (an entry
/// stands for every case spelling, see [`crate::suppression::normalise`]),
/// its detail (a provider's words) [`storable`].
pub(crate) fn storable_suppression(entry: &Suppression) -> Suppression {
    Suppression {
        email: entry.email.to_lowercase(),
        detail: entry.detail.as_deref().map(|d| storable(d).into_owned()),
        ..entry.clone()
    }
}

/// Most delivery events a store keeps of one message. A provider (or anyone
/// who mails the bounce address a report naming a message) may report on a
/// message without end; past the bound the store lets go of its oldest
/// passing events (`deferred`, soft `bounced`) first, then of the oldest of
/// the others (`delivered`, hard `bounced`, `complained`), and always keeps
/// the event it has just stored. A hundred holds a delivery and a complaint
/// for each of the 50 recipients a message may have.
pub const MAX_EVENTS_PER_MESSAGE: i64 = 100;

/// `event` as the stores keep it: its texts [`storable`], its id [`storable_id`].
pub(crate) fn storable_event(event: &DeliveryEvent) -> DeliveryEvent {
    let text = |t: &Option<String>| t.as_deref().map(|t| storable(t).into_owned());
    DeliveryEvent {
        recipient: text(&event.recipient),
        detail: text(&event.detail),
        provider_event_id: event
            .provider_event_id
            .as_deref()
            .map(|id| storable_id(id).into_owned()),
        ..event.clone()
    }
}

/// A message claimed by a worker under a lease.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The message to deliver.
    pub message: OutgoingMessage,
    /// The transport name chosen at accept time.
    pub transport: String,
    /// The claim: which attempt this is, and until when it holds.
    pub lease: Lease,
    /// Start of the message's age for `MAILBRIDGE_RETRY_MAX_AGE`: accept
    /// time, or when an admin queued it again.
    pub created_at: OffsetDateTime,
    /// The W3C `traceparent` of the request that accepted it, if it was traced.
    pub traceparent: Option<String>,
}

impl ClaimedJob {
    /// Which attempt this is (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.lease.attempt
    }
}

/// The status row of a message, as the API shows it (no bodies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageRecord {
    /// Our id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant: String,
    /// Where it stands.
    pub status: Status,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// The transport name.
    pub transport: String,
    /// The provider's id of the message once sent.
    pub provider_message_id: Option<String>,
    /// When the next attempt is due (for `queued`/`retrying`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Accept time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Delivery time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    /// The Keycloak realm it was sent for (the request's `metadata.realm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// The email kind: the request's `template` (`password-reset`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The W3C `traceparent` of the request that accepted it, when traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl MessageRecord {
    /// Where it came from, as it was stored.
    pub fn origin(&self) -> Origin {
        Origin {
            realm: self.realm.clone(),
            kind: self.kind.clone(),
            traceparent: self.traceparent.clone(),
        }
    }
}

/// Rows one statement of [`JobStore::wake`] makes due.
const WAKE_STEP: i64 = 1000;

/// The columns of a [`MessageRecord`], in every store's `messages` table.
const RECORD_COLUMNS: &str = "id, tenant, status, attempts, last_error, transport, provider_message_id, \
     next_attempt_at, created_at, updated_at, sent_at, realm, kind, traceparent";

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// At most this many (newest first).
    pub limit: u32,
    /// Only rows created before this one's id (for paging), if given.
    pub before: Option<Uuid>,
}

/// How many messages wait in each unfinished status, and since when (for metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages `queued`.
    pub queued: u64,
    /// Messages `sending` (claimed, under a lease).
    pub sending: u64,
    /// Messages `retrying`.
    pub retrying: u64,
    /// Messages `failed` (the dead-letter state).
    pub failed: u64,
    /// Accept time of the oldest message not yet sent or failed.
    pub oldest_unsent: Option<OffsetDateTime>,
}

impl QueueStats {
    /// Sets the count of dead letters, as a store read it (their age is not
    /// asked for: they are never purged, and nothing waits for them).
    pub(crate) fn set_failed(&mut self, count: i64) {
        self.failed = u64::try_from(count).unwrap_or_default();
    }

    /// Adds one status's count and the accept time of its oldest message.
    pub(crate) fn add(
        &mut self,
        status: Option<Status>,
        count: u64,
        oldest: Option<OffsetDateTime>,
    ) {
        match status {
            Some(Status::Queued) => self.queued = count,
            Some(Status::Sending) => self.sending = count,
            Some(Status::Retrying) => self.retrying = count,
            Some(Status::Failed) => self.failed = count,
            Some(Status::Sent | Status::Suppressed) | None => return,
        }
        if status != Some(Status::Failed) {
            self.oldest_unsent = match (self.oldest_unsent, oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
}

/// A store failure (I/O, corruption, pool closed). Internal: never shown to callers.
#[derive(Debug, thiserror::Error)]
#[error("queue store: {0}")]
pub struct StoreError(#[from] pub anyhow::Error);

impl StoreError {
    /// Whether the change may have been stored after all: the commit was sent
    /// but its answer was lost, and the store could not find out.
    pub fn outcome_unknown(&self) -> bool {
        outcome_unknown(&self.0)
    }
}

/// Whether `error` has [`OutcomeUnknown`] among its causes.
pub(crate) fn outcome_unknown(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<OutcomeUnknown>())
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    use super::{OutcomeUnknown, StoreError};

    #[test]
    fn an_unknown_outcome_is_recognised_through_every_wrapping() {
        let root = anyhow::Error::new(OutcomeUnknown).context("committing: connection reset");
        let store = StoreError(root);
        assert!(store.outcome_unknown());
        let wrapped: Result<(), StoreError> = Err(store);
        let again = StoreError(wrapped.context("storing a message").unwrap_err());
        assert!(again.outcome_unknown());
        assert!(!StoreError(anyhow::anyhow!("disk full")).outcome_unknown());
    }
}

/// The cause of a [`StoreError`] whose change may or may not be committed.
#[derive(Debug, thiserror::Error)]
#[error("the commit's answer was lost and the store could not be asked whether it happened")]
pub struct OutcomeUnknown;

/// One step of a walk that deletes in bounded steps: flow-limit cells
/// past their window, bodies past their retention.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Rows deleted by this step.
    pub deleted: u64,
    /// Where the next step starts (SQLite: the last rowid this one looked
    /// at; PostgreSQL: the last body's message id, while pruning cells
    /// starts every step from the first, so it is empty); `None` once
    /// nothing is left to look at.
    pub next: Option<String>,
}

/// The durable queue. One implementation per database; the worker and the API
/// only see this trait.
#[async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// Commits a message (returns only once it is durable), or finds the first
    /// one with the same tenant and idempotency key within 24 h.
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError>;

    /// [`Self::enqueue`] in two halves, the first for a thread outside the
    /// async runtime: `job` is packed and handed to the writers before this
    /// returns, and its answer goes to `ticket`. [`Self::handed_over`] with
    /// the ticket's receipt waits for it.
    fn hand_over(&self, job: NewJob, ticket: Ticket);

    /// The answer to a message of `tenant` by `transport` handed over with
    /// the ticket of `receipt`: what [`Self::enqueue`] would have answered.
    async fn handed_over(
        &self,
        tenant: &str,
        transport: &str,
        receipt: Receipt,
    ) -> Result<Enqueued, StoreError>;

    /// Claims up to `limit` due rows of `lane` (never one of the other
    /// lane) for `lease`, the oldest due first; an expired lease is
    /// claimable again. A row that cannot be decoded is not handed out, and
    /// is set aside in the same commit: one sealed with a key this process
    /// does not hold goes back as `retrying` for a replica that holds it
    /// (until the message is older than `max_age`, the lane's retry age);
    /// any other is marked `failed` with the reason.
    async fn claim(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        lane: Lane,
        limit: u32,
        max_age: Duration,
    ) -> Result<Vec<ClaimedJob>, StoreError>;

    /// Extends `lease` to `until`; false when the attempt no longer holds
    /// the message (another attempt claimed it, or an outcome was recorded).
    async fn renew(&self, lease: &Lease, until: OffsetDateTime) -> Result<bool, StoreError>;

    /// Records what the attempt holding `lease` came to; false (and nothing
    /// written) when that attempt no longer holds the message.
    async fn record(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.record_with(lease, outcome, now, None).await
    }

    /// [`JobStore::record`], and when the outcome is recorded, `notice` (a
    /// webhook about it) stored in the same commit: the two are kept or
    /// lost together.
    async fn record_with(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        now: OffsetDateTime,
        notice: Option<&NewJob>,
    ) -> Result<bool, StoreError>;

    /// One message's status row.
    async fn get(&self, id: Uuid) -> Result<Option<MessageRecord>, StoreError>;

    /// A page of status rows.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<MessageRecord>, StoreError>;

    /// A `failed` message back to `queued`; false if it is not failed.
    async fn requeue_failed(&self, id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// Messages through the mail transport `transport` that wait for a
    /// later attempt are due at `now` (the transport was held as down and
    /// answers again); how many. Notices are never held so. In steps of a bounded size, so that a large backlog does not
    /// hold up other writes.
    async fn wake(&self, transport: &str, now: OffsetDateTime) -> Result<u64, StoreError>;

    /// Messages of `tenant` not yet sent or failed (for the per-tenant
    /// bound); its notices (webhooks, Keycloak feedback) are not counted.
    async fn pending_count(&self, tenant: &str) -> Result<u64, StoreError>;

    /// At the start of a serving process: messages a previous process left
    /// `sending` become claimable now; answers how many. A store shared by
    /// replicas recovers nothing here (the row may be another replica's live
    /// delivery): leases decide.
    async fn recover_interrupted(&self) -> Result<u64, StoreError>;

    /// One step of retention: drops the bodies of messages sent, or
    /// suppressed (never sent, and they cannot be retried), before
    /// `older_than`; their status rows stay, and failed messages keep their
    /// bodies for a retry. `after` is the `next` of the step before (`None`
    /// for the first). Each step looks at the next `batch` bodies only:
    /// SQLite's one writer takes commit groups between steps, and no
    /// PostgreSQL transaction grows with the table.
    async fn purge_bodies(
        &self,
        older_than: OffsetDateTime,
        after: Option<&str>,
        batch: u32,
    ) -> Result<Pruned, StoreError>;

    /// Deletes a `sent` or `failed` message; false if it is not one.
    async fn delete(&self, id: Uuid) -> Result<bool, StoreError>;

    /// Counts per unfinished status and the oldest unsent message (for `/metrics`).
    async fn stats(&self) -> Result<QueueStats, StoreError>;

    /// Whether the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a delivery event of a message; false (nothing written) when
    /// the same provider event was stored before.
    async fn add_event(&self, event: &DeliveryEvent) -> Result<bool, StoreError>;

    /// Takes a webhook signature's token: true the first time, and again
    /// for the same body (the provider's own retry); false when the token
    /// came before with another body (a replay carrying another event).
    /// Lets go of tokens signed more than [`crate::events::MAX_AGE`] before
    /// `now`, which the signature's own check refuses anyway.
    async fn take_signature(
        &self,
        token: &SignatureToken,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// A message's delivery events, oldest first.
    async fn events(&self, id: Uuid) -> Result<Vec<DeliveryEvent>, StoreError>;

    /// A message's recipient addresses (To, Cc and Bcc, lower case), as
    /// recorded when it was accepted.
    async fn recipients(&self, id: Uuid) -> Result<Vec<String>, StoreError>;

    /// The message a provider's id names (the id its send answer gave).
    async fn find_by_provider_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<Uuid>, StoreError>;

    /// Puts an address on its tenant's suppression list; false (the first
    /// entry kept) when it is there already.
    async fn suppress(&self, entry: &Suppression) -> Result<bool, StoreError>;

    /// Takes `email` (normalised) off `tenant`'s list in every form it may be
    /// stored under (its domain in Unicode or, from older entries, in ASCII);
    /// false if it was on it in none.
    async fn unsuppress(&self, tenant: &str, email: &str) -> Result<bool, StoreError>;

    /// The suppression list of `tenant` (or of all), newest first, at most `limit`.
    async fn suppressions(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Suppression>, StoreError>;

    /// Which of `emails` (normalised) are on `tenant`'s list.
    async fn suppressed_among(
        &self,
        tenant: &str,
        emails: &[String],
    ) -> Result<Vec<String>, StoreError>;

    /// One step of pruning flow-limit cells whose window has passed by
    /// `now` (such a cell limits nothing: it is as good as absent); `after`
    /// is the `next` of the step before (`None` for the first). Keeps the
    /// table from growing with every address ever seen. SQLite looks at the
    /// next `batch` cells after `after`, so no step holds its one writer for
    /// long; PostgreSQL deletes up to `batch` expired cells, which never
    /// blocks its writers.
    async fn prune_limits(
        &self,
        now: OffsetDateTime,
        after: Option<&str>,
        batch: u32,
    ) -> Result<Pruned, StoreError>;

    /// The message `tenant` stored under idempotency `key` in the last 24 h, if any.
    async fn find_idempotent(
        &self,
        tenant: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StoreError>;
    /// A message's attempts that came to an outcome, oldest first (the console's timeline).
    async fn attempts(&self, id: Uuid) -> Result<Vec<history::AttemptRecord>, StoreError>;

    /// Status rows matching a console search, newest first.
    async fn search(&self, search: &history::Search) -> Result<Vec<MessageRecord>, StoreError>;

    /// The queue by tenant, transport and status, for `tenants` (`None`: every
    /// tenant), with the deliveries since `since`.
    async fn breakdown(
        &self,
        tenants: Option<&[String]>,
        since: OffsetDateTime,
    ) -> Result<history::Breakdown, StoreError>;

    /// The last delivery, last failure and failures since of each of
    /// `transports`, from the history.
    async fn transport_health(
        &self,
        transports: &[String],
    ) -> Result<Vec<history::TransportHealth>, StoreError>;
}
