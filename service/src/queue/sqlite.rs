//! The embedded queue store: one SQLite file in WAL mode with `synchronous=FULL`,
//! so that a `202` means the message is on disk.
//!
//! Enqueues go through one writer task that commits whatever is waiting in one
//! transaction (group commit): many concurrent requests share one disk sync.
//! The file belongs to one serving process: at its start,
//! [`JobStore::recover_interrupted`] makes rows a previous process left in
//! `sending` (it died mid-delivery) claimable at once.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    ClaimedJob, Enqueued, JobStore, ListFilter, MessageRecord, NewJob, Status, StoreError,
};

/// Most enqueues committed in one transaction.
const MAX_BATCH: usize = 512;
/// How long an idempotency key holds.
const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

type Reply = oneshot::Sender<Result<Enqueued, StoreError>>;

/// The SQLite queue store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    enqueue: mpsc::Sender<(NewJob, Reply)>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `url`: `sqlite://PATH` or `sqlite::memory:`.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let options = connect_options(url)?;
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening {url}"))?;
        sqlx::migrate!("./migrations")
            .run(&write)
            .await
            .context("applying the store's migrations")?;
        let read = if url.contains(":memory:") {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options.read_only(true))
                .await
                .with_context(|| format!("opening {url} for reading"))?
        };
        let (enqueue, inbox) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(writer(write.clone(), inbox));
        Ok(SqliteStore {
            read,
            write,
            enqueue,
        })
    }
}

fn connect_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    let path = url
        .strip_prefix("sqlite://")
        .filter(|p| !p.starts_with(':'));
    if let Some(dir) = path
        .and_then(|p| std::path::Path::new(p).parent())
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("`{url}` is not a sqlite:// URL"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    Ok(options)
}

/// Unix milliseconds of `t`.
fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The writer task: commits waiting enqueues in groups.
async fn writer(pool: SqlitePool, mut inbox: mpsc::Receiver<(NewJob, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while inbox.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit_batch(&pool, &batch).await {
            Ok(results) => {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, count = batch.len(), "could not commit accepted messages; callers get an error");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(StoreError(anyhow::anyhow!("commit failed: {e}"))));
                }
            }
        }
    }
}

async fn commit_batch(
    pool: &SqlitePool,
    batch: &[(NewJob, Reply)],
) -> anyhow::Result<Vec<Enqueued>> {
    let mut tx = pool.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for (job, _) in batch {
        results.push(insert(&mut tx, job).await?);
    }
    tx.commit().await?;
    Ok(results)
}

async fn insert(tx: &mut sqlx::SqliteConnection, job: &NewJob) -> anyhow::Result<Enqueued> {
    let message = &job.message;
    let now = ms(job.now);
    if let Some(key) = &job.idempotency_key {
        let existing = sqlx::query(
            "SELECT id, created_at FROM messages WHERE tenant = ? AND idempotency_key = ?",
        )
        .bind(&message.tenant)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let created: i64 = row.get("created_at");
            if created > now - IDEMPOTENCY_WINDOW.as_millis() as i64 {
                let id: String = row.get("id");
                return Ok(Enqueued::Duplicate(Uuid::parse_str(&id)?));
            }
            // An expired key may be used again: the old row lets go of it.
            sqlx::query("UPDATE messages SET idempotency_key = NULL WHERE tenant = ? AND idempotency_key = ?")
                .bind(&message.tenant)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
    }
    let (status, attempts, lease_until) = match job.lease {
        Some(lease) => (Status::Sending, 1, Some(now + lease.as_millis() as i64)),
        None => (Status::Queued, 0, None),
    };
    sqlx::query(
        "INSERT INTO messages (id, tenant, status, attempts, transport, message, idempotency_key, \
         created_at, age_from, updated_at, next_attempt_at, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(message.id.to_string())
    .bind(&message.tenant)
    .bind(status.as_str())
    .bind(attempts)
    .bind(&job.transport)
    .bind(serde_json::to_string(message)?)
    .bind(&job.idempotency_key)
    .bind(now)
    .bind(now)
    .bind(now)
    .bind(now)
    .bind(lease_until)
    .execute(&mut *tx)
    .await?;
    Ok(Enqueued::Created(message.id))
}

fn record(row: &SqliteRow) -> Result<MessageRecord, StoreError> {
    let id: String = row.get("id");
    let status: String = row.get("status");
    let attempts: i64 = row.get("attempts");
    Ok(MessageRecord {
        id: Uuid::parse_str(&id).context("a stored id is not a UUID")?,
        tenant: row.get("tenant"),
        status: Status::parse(&status)
            .with_context(|| format!("unknown stored status {status}"))?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        last_error: row.get("last_error"),
        transport: row.get("transport"),
        provider_message_id: row.get("provider_message_id"),
        next_attempt_at: match status.as_str() {
            "queued" | "retrying" => row.get::<Option<i64>, _>("next_attempt_at").map(from_ms),
            _ => None,
        },
        created_at: from_ms(row.get("created_at")),
        updated_at: from_ms(row.get("updated_at")),
        sent_at: row.get::<Option<i64>, _>("sent_at").map(from_ms),
    })
}

const RECORD_COLUMNS: &str = "id, tenant, status, attempts, last_error, transport, provider_message_id, \
     next_attempt_at, created_at, updated_at, sent_at";

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue
            .send((job, reply))
            .await
            .map_err(|_| StoreError(anyhow::anyhow!("the store's writer has stopped")))?;
        answer
            .await
            .map_err(|_| StoreError(anyhow::anyhow!("the store's writer has stopped")))?
    }

    async fn claim(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let now_ms = ms(now);
        let rows = sqlx::query(
            "UPDATE messages SET status = 'sending', attempts = attempts + 1, lease_until = ?1, updated_at = ?2 \
             WHERE id IN (SELECT id FROM messages WHERE \
                 (status IN ('queued', 'retrying') AND next_attempt_at <= ?2) \
                 OR (status = 'sending' AND lease_until < ?2) \
               ORDER BY next_attempt_at LIMIT ?3) \
             AND message IS NOT NULL \
             RETURNING message, transport, attempts, age_from",
        )
        .bind(now_ms + lease.as_millis() as i64)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.write)
        .await
        .context("claiming messages")?;
        rows.iter()
            .map(|row| {
                let json: String = row.get("message");
                let attempts: i64 = row.get("attempts");
                Ok(ClaimedJob {
                    message: serde_json::from_str(&json)
                        .context("a stored message is not valid JSON")?,
                    transport: row.get("transport"),
                    attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                    created_at: from_ms(row.get("age_from")),
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
        sqlx::query(
            "UPDATE messages SET status = 'sent', provider_message_id = ?, sent_at = ?, updated_at = ?, \
             lease_until = NULL, next_attempt_at = NULL WHERE id = ?",
        )
        .bind(provider_message_id)
        .bind(ms(now))
        .bind(ms(now))
        .bind(id.to_string())
        .execute(&self.write)
        .await
        .context("recording a delivery")?;
        Ok(())
    }

    async fn mark_retrying(
        &self,
        id: Uuid,
        error: &str,
        next_attempt_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET status = 'retrying', last_error = ?, next_attempt_at = ?, updated_at = ?, \
             lease_until = NULL WHERE id = ?",
        )
        .bind(error)
        .bind(ms(next_attempt_at))
        .bind(ms(now))
        .bind(id.to_string())
        .execute(&self.write)
        .await
        .context("recording a retry")?;
        Ok(())
    }

    async fn mark_failed(
        &self,
        id: Uuid,
        error: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET status = 'failed', last_error = ?, updated_at = ?, lease_until = NULL, \
             next_attempt_at = NULL WHERE id = ?",
        )
        .bind(error)
        .bind(ms(now))
        .bind(id.to_string())
        .execute(&self.write)
        .await
        .context("recording a failure")?;
        Ok(())
    }

    async fn release(&self, id: Uuid, next_attempt_at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET status = 'retrying', attempts = MAX(attempts - 1, 0), next_attempt_at = ?, \
             updated_at = ?, lease_until = NULL WHERE id = ? AND status = 'sending'",
        )
        .bind(ms(next_attempt_at))
        .bind(ms(OffsetDateTime::now_utc()))
        .bind(id.to_string())
        .execute(&self.write)
        .await
        .context("releasing a message")?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<MessageRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM messages WHERE id = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await
        .context("reading a message")?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<MessageRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM messages WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR tenant = ?2) \
             AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
        )))
        .bind(filter.status.map(Status::as_str))
        .bind(filter.tenant.as_deref())
        .bind(filter.before.map(|id| id.to_string()))
        .bind(i64::from(filter.limit.max(1)))
        .fetch_all(&self.read)
        .await
        .context("listing messages")?;
        rows.iter().map(record).collect()
    }

    async fn requeue_failed(&self, id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE messages SET status = 'queued', attempts = 0, next_attempt_at = ?, updated_at = ?, \
             age_from = ?, last_error = NULL WHERE id = ? AND status = 'failed' AND message IS NOT NULL",
        )
        .bind(ms(now))
        .bind(ms(now))
        .bind(ms(now))
        .bind(id.to_string())
        .execute(&self.write)
        .await
        .context("requeueing a message")?;
        Ok(done.rows_affected() == 1)
    }

    async fn pending_count(&self, tenant: &str) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE tenant = ? AND status IN ('queued', 'sending', 'retrying')",
        )
        .bind(tenant)
        .fetch_one(&self.read)
        .await
        .context("counting pending messages")?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn recover_interrupted(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE messages SET lease_until = 0 WHERE status = 'sending'")
            .execute(&self.write)
            .await
            .context("recovering interrupted deliveries")?;
        Ok(done.rows_affected())
    }

    async fn purge_sent_bodies(&self, older_than: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE messages SET message = NULL WHERE status = 'sent' AND sent_at < ? AND message IS NOT NULL",
        )
        .bind(ms(older_than))
        .execute(&self.write)
        .await
        .context("removing the bodies of sent messages")?;
        Ok(done.rows_affected())
    }

    async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM messages WHERE id = ? AND status IN ('sent', 'failed')")
                .bind(id.to_string())
                .execute(&self.write)
                .await
                .context("deleting a message")?;
        Ok(done.rows_affected() == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .context("store ping")?;
        Ok(())
    }
}
