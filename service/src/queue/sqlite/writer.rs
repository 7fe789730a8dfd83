//! The one writer of the SQLite store: every state change (accepting,
//! claiming, recording an outcome) goes through it, and whatever is waiting is
//! applied in one transaction, so that many requests and deliveries share one
//! disk sync (group commit).

use std::time::Duration;

use sqlx::{Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{from_ms, ms};
use crate::queue::{ClaimedJob, Enqueued, NewJob, Status, StoreError};

/// Most operations applied in one transaction.
pub(super) const MAX_BATCH: usize = 512;
/// How long an idempotency key holds.
const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// One state change, with the channel its answer goes back on.
pub(super) enum Write {
    /// Store a new message.
    Enqueue(Box<NewJob>, oneshot::Sender<Result<Enqueued, StoreError>>),
    /// Claim due messages under a lease.
    Claim {
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
        reply: oneshot::Sender<Result<Vec<ClaimedJob>, StoreError>>,
    },
    /// Record what happened to a message.
    Record(Outcome, oneshot::Sender<Result<(), StoreError>>),
}

/// What happened to a claimed message.
pub(super) enum Outcome {
    Sent {
        id: Uuid,
        provider_message_id: Option<String>,
        now: OffsetDateTime,
    },
    Retrying {
        id: Uuid,
        error: String,
        next: OffsetDateTime,
        now: OffsetDateTime,
    },
    Failed {
        id: Uuid,
        error: String,
        now: OffsetDateTime,
    },
    Released {
        id: Uuid,
        next: OffsetDateTime,
        now: OffsetDateTime,
    },
}

/// Applies waiting writes in groups until every sender is gone.
pub(super) async fn run(pool: SqlitePool, mut inbox: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while inbox.recv_many(&mut batch, MAX_BATCH).await > 0 {
        apply(&pool, batch.drain(..)).await;
    }
}

/// A write applied inside the open transaction, waiting for the commit.
enum Done {
    Enqueued(
        Result<Enqueued, StoreError>,
        oneshot::Sender<Result<Enqueued, StoreError>>,
    ),
    Claimed(
        Result<Vec<ClaimedJob>, StoreError>,
        oneshot::Sender<Result<Vec<ClaimedJob>, StoreError>>,
    ),
    Recorded(
        Result<(), StoreError>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
}

impl Done {
    /// Answers with the write's own result (after a successful commit).
    fn answer(self) {
        match self {
            Done::Enqueued(r, reply) => drop(reply.send(r)),
            Done::Claimed(r, reply) => drop(reply.send(r)),
            Done::Recorded(r, reply) => drop(reply.send(r)),
        }
    }

    /// Answers with the commit's failure.
    fn fail(self, e: &str) {
        let error = || StoreError(anyhow::anyhow!("commit failed: {e}"));
        match self {
            Done::Enqueued(_, reply) => drop(reply.send(Err(error()))),
            Done::Claimed(_, reply) => drop(reply.send(Err(error()))),
            Done::Recorded(_, reply) => drop(reply.send(Err(error()))),
        }
    }
}

/// One transaction for the whole batch; answers go out only after the commit.
async fn apply(pool: &SqlitePool, batch: impl Iterator<Item = Write>) {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            let e = e.to_string();
            tracing::error!(error = %e, "could not begin a queue transaction");
            for write in batch {
                write.unapplied().fail(&e);
            }
            return;
        }
    };
    let mut done = Vec::with_capacity(MAX_BATCH);
    for write in batch {
        let applied = match write {
            Write::Enqueue(job, reply) => {
                Done::Enqueued(insert(&mut tx, &job).await.map_err(StoreError), reply)
            }
            Write::Claim {
                now,
                lease,
                limit,
                reply,
            } => Done::Claimed(
                claim(&mut tx, now, lease, limit).await.map_err(StoreError),
                reply,
            ),
            Write::Record(outcome, reply) => {
                Done::Recorded(record(&mut tx, &outcome).await.map_err(StoreError), reply)
            }
        };
        done.push(applied);
    }
    match tx.commit().await {
        Ok(()) => done.into_iter().for_each(Done::answer),
        Err(e) => {
            let e = e.to_string();
            tracing::error!(error = %e, count = done.len(), "could not commit queue changes; callers get an error");
            done.into_iter().for_each(|d| d.fail(&e));
        }
    }
}

impl Write {
    /// The write as one that was never applied (its answer will be a failure).
    fn unapplied(self) -> Done {
        let not_applied = || StoreError(anyhow::anyhow!("not applied"));
        match self {
            Write::Enqueue(_, reply) => Done::Enqueued(Err(not_applied()), reply),
            Write::Claim { reply, .. } => Done::Claimed(Err(not_applied()), reply),
            Write::Record(_, reply) => Done::Recorded(Err(not_applied()), reply),
        }
    }
}

async fn insert(tx: &mut SqliteConnection, job: &NewJob) -> anyhow::Result<Enqueued> {
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

async fn claim(
    tx: &mut SqliteConnection,
    now: OffsetDateTime,
    lease: Duration,
    limit: u32,
) -> anyhow::Result<Vec<ClaimedJob>> {
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
    .fetch_all(&mut *tx)
    .await?;
    rows.iter()
        .map(|row| {
            let json: String = row.get("message");
            let attempts: i64 = row.get("attempts");
            Ok(ClaimedJob {
                message: serde_json::from_str(&json)?,
                transport: row.get("transport"),
                attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                created_at: from_ms(row.get("age_from")),
            })
        })
        .collect()
}

async fn record(tx: &mut SqliteConnection, outcome: &Outcome) -> anyhow::Result<()> {
    let query = match outcome {
        Outcome::Sent { id, provider_message_id, now } => sqlx::query(
            "UPDATE messages SET status = 'sent', provider_message_id = ?, sent_at = ?, updated_at = ?, \
             lease_until = NULL, next_attempt_at = NULL WHERE id = ?",
        )
        .bind(provider_message_id.clone())
        .bind(ms(*now))
        .bind(ms(*now))
        .bind(id.to_string()),
        Outcome::Retrying { id, error, next, now } => sqlx::query(
            "UPDATE messages SET status = 'retrying', last_error = ?, next_attempt_at = ?, updated_at = ?, \
             lease_until = NULL WHERE id = ?",
        )
        .bind(error.clone())
        .bind(ms(*next))
        .bind(ms(*now))
        .bind(id.to_string()),
        Outcome::Failed { id, error, now } => sqlx::query(
            "UPDATE messages SET status = 'failed', last_error = ?, updated_at = ?, lease_until = NULL, \
             next_attempt_at = NULL WHERE id = ?",
        )
        .bind(error.clone())
        .bind(ms(*now))
        .bind(id.to_string()),
        Outcome::Released { id, next, now } => sqlx::query(
            "UPDATE messages SET status = 'retrying', attempts = MAX(attempts - 1, 0), next_attempt_at = ?, \
             updated_at = ?, lease_until = NULL WHERE id = ? AND status = 'sending'",
        )
        .bind(ms(*next))
        .bind(ms(*now))
        .bind(id.to_string()),
    };
    query.execute(&mut *tx).await?;
    Ok(())
}
