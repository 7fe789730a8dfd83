//! The shared queue store: PostgreSQL, for several replicas of the service
//! working one queue.
//!
//! Every change is one statement in its own transaction, so a `202` means the
//! row is committed (with PostgreSQL's default `synchronous_commit = on`, on
//! disk). Replicas claim with `FOR UPDATE SKIP LOCKED`: two of them never
//! claim the same message, and neither waits for the other. A row in
//! `sending` may be another replica's delivery in progress, so nothing is
//! recovered at start: a message whose replica died is claimed again when its
//! lease expires.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Executor as _, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::pending::PendingCache;
use super::{
    ClaimedJob, Enqueued, JobStore, ListFilter, MessageRecord, NewJob, QueueStats, RECORD_COLUMNS,
    Status, StoreError,
};
use crate::email::OutgoingMessage;

/// How long an idempotency key holds.
const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Connections per replica: the API and the worker share them.
const MAX_CONNECTIONS: u32 = 16;

/// The PostgreSQL queue store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    pending: PendingCache,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host/db?sslmode=…`) and
    /// applies the store's migrations (replicas starting together take turns).
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let shown = redact(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| {
                anyhow::anyhow!(
                    "`{shown}` is not a postgres:// URL: {}",
                    redact(&e.to_string())
                )
            })?
            .application_name("mailbridge");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to {shown}: {}", redact(&e.to_string())))?;
        sqlx::migrate!("./migrations-postgres")
            .run(&pool)
            .await
            .context("applying the store's migrations")?;
        Ok(PgStore {
            pool,
            pending: PendingCache::default(),
        })
    }

    /// One attempt at inserting `job`: `None` when its idempotency key was
    /// taken by an expired row and let go meanwhile (try again).
    async fn try_insert(&self, job: &NewJob) -> anyhow::Result<Option<Enqueued>> {
        let message = &job.message;
        let (status, attempts, lease_until) = match job.lease {
            Some(lease) => (Status::Sending, 1, Some(job.now + lease)),
            None => (Status::Queued, 0, None),
        };
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO messages (id, tenant, status, attempts, transport, message, idempotency_key, \
             created_at, age_from, updated_at, next_attempt_at, lease_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8, $8, $9) \
             ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
             RETURNING id",
        )
        .bind(message.id)
        .bind(&message.tenant)
        .bind(status.as_str())
        .bind(attempts)
        .bind(&job.transport)
        .bind(Json(message))
        .bind(&job.idempotency_key)
        .bind(job.now)
        .bind(lease_until)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(id) = inserted {
            return Ok(Some(Enqueued::Created(id)));
        }
        // The key is taken: by a message of the last 24 hours (a repeat), or
        // by an older one, which lets go of it.
        let Some(key) = &job.idempotency_key else {
            anyhow::bail!("an insert without an idempotency key conflicted");
        };
        let existing = sqlx::query(
            "SELECT id, created_at FROM messages WHERE tenant = $1 AND idempotency_key = $2",
        )
        .bind(&message.tenant)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = existing else {
            return Ok(None);
        };
        let id: Uuid = row.get("id");
        let created: OffsetDateTime = row.get("created_at");
        if created > job.now - IDEMPOTENCY_WINDOW {
            return Ok(Some(Enqueued::Duplicate(id)));
        }
        sqlx::query(
            "UPDATE messages SET idempotency_key = NULL WHERE id = $1 AND idempotency_key = $2",
        )
        .bind(id)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(None)
    }

    /// Runs one `UPDATE … WHERE id = $1` style statement.
    async fn update(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
        what: &'static str,
    ) -> Result<u64, StoreError> {
        let done = query.execute(&self.pool).await.context(what)?;
        Ok(done.rows_affected())
    }
}

/// `url` with its password (and user) replaced, fit for a log line.
pub fn redact(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_owned();
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', ' ']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &text[..scheme_end + 3], &rest[at + 1..]),
        None => text.to_owned(),
    }
}

fn record(row: &PgRow) -> Result<MessageRecord, StoreError> {
    let status: String = row.get("status");
    let attempts: i32 = row.get("attempts");
    let parsed =
        Status::parse(&status).with_context(|| format!("unknown stored status {status}"))?;
    Ok(MessageRecord {
        id: row.get("id"),
        tenant: row.get("tenant"),
        status: parsed,
        attempts: u32::try_from(attempts).unwrap_or_default(),
        last_error: row.get("last_error"),
        transport: row.get("transport"),
        provider_message_id: row.get("provider_message_id"),
        next_attempt_at: match parsed {
            Status::Queued | Status::Retrying => row.get("next_attempt_at"),
            _ => None,
        },
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        sent_at: row.get("sent_at"),
    })
}

#[async_trait]
impl JobStore for PgStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        // An expired key is let go of, then taken: two rounds suffice unless
        // other requests race for the same key.
        for _ in 0..3 {
            if let Some(done) = self.try_insert(&job).await.context("storing a message")? {
                if let Enqueued::Created(_) = done {
                    self.pending.accepted(&job.message.tenant);
                }
                return Ok(done);
            }
        }
        Err(StoreError(anyhow::anyhow!(
            "storing a message: its idempotency key kept changing hands"
        )))
    }

    async fn claim(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let rows = sqlx::query(
            "UPDATE messages AS m SET status = 'sending', attempts = m.attempts + 1, \
             lease_until = $1, updated_at = $2 \
             FROM (SELECT id FROM messages WHERE \
                     ((status IN ('queued', 'retrying') AND next_attempt_at <= $2) \
                      OR (status = 'sending' AND lease_until < $2)) \
                     AND message IS NOT NULL \
                   ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) AS due \
             WHERE m.id = due.id \
             RETURNING m.message, m.transport, m.attempts, m.age_from",
        )
        .bind(now + lease)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .context("claiming messages")?;
        rows.iter()
            .map(|row| {
                let Json(message): Json<OutgoingMessage> = row.get("message");
                let attempts: i32 = row.get("attempts");
                Ok(ClaimedJob {
                    message,
                    transport: row.get("transport"),
                    attempt: u32::try_from(attempts).unwrap_or_default(),
                    created_at: row.get("age_from"),
                })
            })
            .collect()
    }

    async fn mark_sent(
        &self,
        id: Uuid,
        provider_message_id: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE messages SET status = 'sent', provider_message_id = $2, sent_at = $3, updated_at = $3, \
             lease_until = NULL, next_attempt_at = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(provider_message_id)
        .bind(now);
        self.update(query, "recording a delivery").await.map(drop)
    }

    async fn mark_retrying(
        &self,
        id: Uuid,
        error: &str,
        next_attempt_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE messages SET status = 'retrying', last_error = $2, next_attempt_at = $3, updated_at = $4, \
             lease_until = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .bind(next_attempt_at)
        .bind(now);
        self.update(query, "recording a failed attempt")
            .await
            .map(drop)
    }

    async fn mark_failed(
        &self,
        id: Uuid,
        error: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE messages SET status = 'failed', last_error = $2, updated_at = $3, lease_until = NULL, \
             next_attempt_at = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .bind(now);
        self.update(query, "recording a failure").await.map(drop)
    }

    async fn release(&self, id: Uuid, next_attempt_at: OffsetDateTime) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE messages SET status = 'retrying', attempts = GREATEST(attempts - 1, 0), \
             next_attempt_at = $2, updated_at = $3, lease_until = NULL WHERE id = $1 AND status = 'sending'",
        )
        .bind(id)
        .bind(next_attempt_at)
        .bind(OffsetDateTime::now_utc());
        self.update(query, "releasing a message").await.map(drop)
    }

    async fn get(&self, id: Uuid) -> Result<Option<MessageRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM messages WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context("reading a message")?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<MessageRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM messages WHERE ($1::text IS NULL OR status = $1) \
             AND ($2::text IS NULL OR tenant = $2) AND ($3::uuid IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4"
        )))
        .bind(filter.status.map(Status::as_str))
        .bind(filter.tenant.as_deref())
        .bind(filter.before)
        .bind(i64::from(filter.limit.max(1)))
        .fetch_all(&self.pool)
        .await
        .context("listing messages")?;
        rows.iter().map(record).collect()
    }

    async fn requeue_failed(&self, id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "UPDATE messages SET status = 'queued', attempts = 0, next_attempt_at = $2, updated_at = $2, \
             age_from = $2, last_error = NULL WHERE id = $1 AND status = 'failed' AND message IS NOT NULL",
        )
        .bind(id)
        .bind(now);
        Ok(self.update(query, "requeueing a message").await? == 1)
    }

    async fn pending_count(&self, tenant: &str) -> Result<u64, StoreError> {
        let read = || {
            sqlx::query_scalar(
                "SELECT count(*) FROM messages WHERE tenant = $1 AND status IN ('queued', 'sending', 'retrying')",
            )
            .bind(tenant)
            .fetch_one(&self.pool)
        };
        self.pending.count(tenant, read).await
    }

    async fn recover_interrupted(&self) -> Result<u64, StoreError> {
        // Shared by replicas: a `sending` row may be a live delivery elsewhere.
        // Leases decide when it is claimable again.
        Ok(0)
    }

    async fn purge_sent_bodies(&self, older_than: OffsetDateTime) -> Result<u64, StoreError> {
        let query = sqlx::query(
            "UPDATE messages SET message = NULL WHERE status = 'sent' AND sent_at < $1 AND message IS NOT NULL",
        )
        .bind(older_than);
        self.update(query, "removing the bodies of sent messages")
            .await
    }

    async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        let query =
            sqlx::query("DELETE FROM messages WHERE id = $1 AND status IN ('sent', 'failed')")
                .bind(id);
        Ok(self.update(query, "deleting a message").await? == 1)
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let rows = sqlx::query(
            "SELECT status, count(*) AS n, min(created_at) AS oldest FROM messages \
             WHERE status IN ('queued', 'sending', 'retrying', 'failed') GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await
        .context("reading queue figures")?;
        let mut stats = QueueStats::default();
        for row in rows {
            let status: String = row.try_get("status").context("queue figures: status")?;
            let count: i64 = row.try_get("n").context("queue figures: count")?;
            let oldest: Option<OffsetDateTime> =
                row.try_get("oldest").context("queue figures: oldest")?;
            stats.add(
                Status::parse(&status),
                u64::try_from(count).unwrap_or_default(),
                oldest,
            );
        }
        Ok(stats)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.pool.execute("SELECT 1").await.context("store ping")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_a_log_line() {
        assert_eq!(
            redact("postgres://mb:s3cret@db.internal:5432/mailbridge?sslmode=require"),
            "postgres://***@db.internal:5432/mailbridge?sslmode=require"
        );
        assert_eq!(
            redact("postgres://db.internal/mailbridge"),
            "postgres://db.internal/mailbridge"
        );
        assert_eq!(redact("postgres://a:b@c@host/db"), "postgres://***@host/db");
        assert_eq!(redact("not a url"), "not a url");
    }
}
