//! The durable queue: the [`JobStore`] trait, its SQLite and PostgreSQL implementations,
//! the pure retry policy, and the worker that claims and delivers messages.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::email::OutgoingMessage;

mod pending;
pub mod postgres;
pub mod retry;
pub mod sqlite;
pub mod worker;

/// Opens the store `url` names: `sqlite://PATH` (embedded, one serving
/// process) or `postgres://…` (shared by replicas).
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn JobStore>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(postgres::PgStore::open(url).await?))
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
    /// When set, the row is stored already claimed by the caller for this
    /// lease (`?wait=true` delivers inline; if it never records an outcome the
    /// lease expires and the worker tries again).
    pub lease: Option<Duration>,
}

/// The answer to [`JobStore::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new row was committed.
    Created(Uuid),
    /// The tenant already used this idempotency key in the last 24 h: its first message's id.
    Duplicate(Uuid),
}

/// A message claimed by a worker under a lease.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The message to deliver.
    pub message: OutgoingMessage,
    /// The transport name chosen at accept time.
    pub transport: String,
    /// Which attempt this is (1 for the first).
    pub attempt: u32,
    /// Start of the message's age for `MAILBRIDGE_RETRY_MAX_AGE`: accept
    /// time, or when an admin queued it again.
    pub created_at: OffsetDateTime,
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
}

/// The columns of a [`MessageRecord`], in every store's `messages` table.
const RECORD_COLUMNS: &str = "id, tenant, status, attempts, last_error, transport, provider_message_id, \
     next_attempt_at, created_at, updated_at, sent_at";

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
            Some(Status::Sent) | None => return,
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

/// The durable queue. One implementation per database; the worker and the API
/// only see this trait.
#[async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// Commits a message (returns only once it is durable), or finds the first
    /// one with the same tenant and idempotency key within 24 h.
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError>;

    /// Claims up to `limit` due messages for `lease`; an expired lease is claimable again.
    async fn claim(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedJob>, StoreError>;

    /// Records a delivery.
    async fn mark_sent(
        &self,
        id: Uuid,
        provider_message_id: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Records a transient failure and when to try again.
    async fn mark_retrying(
        &self,
        id: Uuid,
        error: &str,
        next_attempt_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Moves a message to the dead-letter state.
    async fn mark_failed(
        &self,
        id: Uuid,
        error: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Gives a claimed message back without counting the attempt (shutdown, rate limit).
    async fn release(&self, id: Uuid, next_attempt_at: OffsetDateTime) -> Result<(), StoreError>;

    /// One message's status row.
    async fn get(&self, id: Uuid) -> Result<Option<MessageRecord>, StoreError>;

    /// A page of status rows.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<MessageRecord>, StoreError>;

    /// A `failed` message back to `queued`; false if it is not failed.
    async fn requeue_failed(&self, id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// Messages of `tenant` not yet sent or failed (for the per-tenant bound).
    async fn pending_count(&self, tenant: &str) -> Result<u64, StoreError>;

    /// At the start of a serving process: messages a previous process left
    /// `sending` become claimable now; answers how many. A store shared by
    /// replicas recovers nothing here (the row may be another replica's live
    /// delivery): leases decide.
    async fn recover_interrupted(&self) -> Result<u64, StoreError>;

    /// Retention: drops the bodies of messages sent before `older_than`; their status rows stay.
    async fn purge_sent_bodies(&self, older_than: OffsetDateTime) -> Result<u64, StoreError>;

    /// Deletes a `sent` or `failed` message; false if it is not one.
    async fn delete(&self, id: Uuid) -> Result<bool, StoreError>;

    /// Counts per unfinished status and the oldest unsent message (for `/metrics`).
    async fn stats(&self) -> Result<QueueStats, StoreError>;

    /// Whether the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
