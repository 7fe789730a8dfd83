//! The one writer of the SQLite store: every state change (accepting,
//! claiming, renewing a lease, recording an outcome) goes through it, and
//! whatever is waiting is applied in one transaction (group commit, see
//! [`crate::queue::batch`]).
//!
//! SQLite may roll a transaction back by itself when a statement fails
//! (`SQLITE_FULL`, `SQLITE_IOERR`); statements after that would each commit
//! on their own. So the first failing statement ends the group: nothing more
//! runs, the transaction is rolled back, and the connection is closed so
//! that the next group starts on a fresh one.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::{Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{accept, delivered, from_ms, ms};
use crate::queue::batch::{self, Answer, Enqueue, Health, MAX_BATCH, Op, Write};
use crate::queue::grouping::{self, Delivered, GroupWrites};
use crate::queue::sealing::{self, Keyring};
use crate::queue::{ClaimedJob, Enqueued, Lease, Outcome};

/// Applies waiting writes in groups until every sender is gone.
pub(super) async fn run(
    pool: SqlitePool,
    mut inbox: mpsc::Receiver<Write>,
    health: Health,
    keyring: Option<Arc<Keyring>>,
) {
    let mut waiting = Vec::with_capacity(MAX_BATCH);
    while inbox.recv_many(&mut waiting, MAX_BATCH).await > 0 {
        let (ops, replies) = batch::split(&mut waiting);
        let result = group(&pool, &ops, keyring.as_deref()).await;
        batch::answer(&health, &ops, replies, result);
    }
}

/// One transaction for the whole group, or none of it.
async fn group(
    pool: &SqlitePool,
    ops: &[Op],
    keyring: Option<&Keyring>,
) -> anyhow::Result<Vec<Answer>> {
    let mut conn = pool.acquire().await.context("opening the queue file")?;
    let result = transaction(&mut conn, ops, keyring).await;
    if result.is_err() {
        // Whatever state SQLite left the connection in, it is not reused.
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        conn.close_on_drop();
    }
    result
}

async fn transaction(
    conn: &mut SqliteConnection,
    ops: &[Op],
    keyring: Option<&Keyring>,
) -> anyhow::Result<Vec<Answer>> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let answers = grouping::apply_all(&mut Writes { conn, keyring }, ops).await?;
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(answers)
}

/// A group's writes on the SQLite connection, inside its transaction.
struct Writes<'a> {
    conn: &'a mut SqliteConnection,
    keyring: Option<&'a Keyring>,
}

impl GroupWrites for Writes<'_> {
    async fn insert_all(&mut self, new: &[&Enqueue]) -> anyhow::Result<Vec<Enqueued>> {
        accept::insert_all(self.conn, new).await
    }

    async fn record_all(&mut self, sent: &[Delivered<'_>]) -> anyhow::Result<Vec<bool>> {
        delivered::record_all(self.conn, sent).await
    }

    async fn apply(&mut self, op: &Op) -> anyhow::Result<Answer> {
        apply(self.conn, op, self.keyring).await
    }
}

async fn apply(
    conn: &mut SqliteConnection,
    op: &Op,
    keyring: Option<&Keyring>,
) -> anyhow::Result<Answer> {
    Ok(match op {
        Op::Enqueue(new) => {
            let stored = accept::insert_all(conn, &[new.as_ref()]).await?;
            let done = stored.into_iter().next();
            Answer::Enqueued(done.context("no answer for a new message")?)
        }
        Op::Claim { now, lease, limit } => {
            Answer::Claimed(claim(conn, *now, *lease, *limit, keyring).await?)
        }
        Op::Renew { lease, until } => Answer::Applied(renew(conn, lease, *until).await?),
        Op::Record {
            lease,
            outcome,
            now,
        } => Answer::Applied(record(conn, lease, outcome, *now).await?),
        Op::Probe { now } => {
            // Room for the largest request (a 1 MiB body): a smaller probe
            // could fit while a full group of messages does not, and
            // readiness would flap to 200 while requests are answered 503.
            sqlx::query(
                "INSERT OR REPLACE INTO store_health (id, probed_at, room) VALUES (1, ?, zeroblob(1048576))",
            )
            .bind(ms(*now))
            .execute(&mut *conn)
            .await?;
            Answer::Probed
        }
    })
}

/// Claims up to `?3` due messages (`?1`: the lease's end, `?2`: now, `?4`:
/// leases ended before this are abandoned). The oldest due rows of each
/// kind, read in order from `messages_due` (status, next_attempt_at), then
/// the oldest of those: one `OR` over the kinds made SQLite read every due
/// row and sort them all, so each claim grew with the backlog (27 ms for
/// 100,000 due rows; 0.8 ms so). The limit is `?3 + 0`, not `?3`: SQLite
/// builds a bare bound LIMIT into the plan as a constant, so every claim
/// asking for a different number of rows than the one before was prepared
/// all over again.
#[doc(hidden)]
pub const CLAIM: &str = "UPDATE messages SET status = 'sending', attempts = attempts + 1, claims = claims + 1, \
     lease_until = ?1, updated_at = ?2 \
 WHERE id IN (SELECT id FROM ( \
     SELECT * FROM (SELECT id, next_attempt_at FROM messages \
         WHERE status = 'queued' AND next_attempt_at <= ?2 ORDER BY next_attempt_at LIMIT ?3 + 0) \
     UNION ALL SELECT * FROM (SELECT id, next_attempt_at FROM messages \
         WHERE status = 'retrying' AND next_attempt_at <= ?2 ORDER BY next_attempt_at LIMIT ?3 + 0) \
     UNION ALL SELECT * FROM (SELECT id, next_attempt_at FROM messages \
         WHERE status = 'sending' AND lease_until < ?4 ORDER BY next_attempt_at LIMIT ?3 + 0)) \
   ORDER BY next_attempt_at LIMIT ?3 + 0) \
 AND EXISTS (SELECT 1 FROM bodies WHERE message_id = messages.id) \
 RETURNING rowid, id, (SELECT message FROM bodies WHERE message_id = messages.id) AS message, \
     transport, attempts, claims, age_from, traceparent";

async fn claim(
    tx: &mut SqliteConnection,
    now: OffsetDateTime,
    lease: Duration,
    limit: u32,
    keyring: Option<&Keyring>,
) -> anyhow::Result<Vec<ClaimedJob>> {
    let now = batch::current(now);
    let now_ms = ms(now);
    let until = now + lease;
    let rows = sqlx::query(CLAIM)
        .bind(ms(until))
        .bind(now_ms)
        .bind(i64::from(limit))
        .bind(ms(batch::abandoned_before(now, lease)))
        .fetch_all(&mut *tx)
        .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in &rows {
        match decode(row, until, keyring) {
            Ok(job) => jobs.push(job),
            Err(e) => {
                let rowid: i64 = row.try_get("rowid")?;
                tracing::error!(rowid, error = %e, "a stored message cannot be read; it is marked failed");
                sqlx::query(
                    "UPDATE messages SET status = 'failed', last_error = ?, updated_at = ?, \
                     lease_until = NULL, next_attempt_at = NULL WHERE rowid = ?",
                )
                .bind(batch::undecodable(&e))
                .bind(now_ms)
                .bind(rowid)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    Ok(jobs)
}

/// A claimed row as a job; an error names what could not be read.
fn decode(
    row: &sqlx::sqlite::SqliteRow,
    until: OffsetDateTime,
    keyring: Option<&Keyring>,
) -> anyhow::Result<ClaimedJob> {
    let id: String = row.try_get("id").context("id")?;
    let stored: &[u8] = row.try_get("message").context("message")?;
    let attempts: i64 = row.try_get("attempts").context("attempts")?;
    let claims: i64 = row.try_get("claims").context("claims")?;
    let id = Uuid::parse_str(&id).context("id")?;
    let message = sealing::open_stored(keyring, id, stored)?;
    Ok(ClaimedJob {
        message,
        transport: row.try_get("transport").context("transport")?,
        lease: Lease {
            id,
            attempt: u32::try_from(attempts).context("attempts")?,
            claim: u32::try_from(claims).context("claims")?,
            until,
        },
        created_at: from_ms(row.try_get("age_from").context("age_from")?),
        traceparent: row.try_get("traceparent").context("traceparent")?,
    })
}

/// The condition every lease-fenced write carries.
const FENCE: &str = "id = ? AND claims = ? AND status = 'sending'";

async fn renew(
    tx: &mut SqliteConnection,
    lease: &Lease,
    until: OffsetDateTime,
) -> anyhow::Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE messages SET lease_until = ? WHERE {FENCE}"
    )))
    .bind(ms(until))
    .bind(lease.id.to_string())
    .bind(i64::from(lease.claim))
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn record(
    tx: &mut SqliteConnection,
    lease: &Lease,
    outcome: &Outcome,
    now: OffsetDateTime,
) -> anyhow::Result<bool> {
    let now = ms(now);
    if let Some((outcome, answer)) = crate::queue::history::attempt_entry(outcome) {
        // Before the update, under the same fence: only the attempt that
        // still holds the message leaves a row in its history.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO attempts (message_id, attempt, transport, outcome, answer, finished_at) \
             SELECT id, attempts, transport, ?, ?, ? FROM messages WHERE {FENCE}"
        )))
        .bind(outcome)
        .bind(answer)
        .bind(now)
        .bind(lease.id.to_string())
        .bind(i64::from(lease.claim))
        .execute(&mut *tx)
        .await?;
    }
    let query = match outcome {
        Outcome::Sent {
            provider_message_id,
        } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE messages SET status = 'sent', provider_message_id = ?, sent_at = ?, updated_at = ?, \
             lease_until = NULL, next_attempt_at = NULL WHERE {FENCE}"
        )))
        .bind(provider_message_id.clone())
        .bind(now)
        .bind(now),
        Outcome::Retrying {
            error,
            next_attempt_at,
        } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE messages SET status = 'retrying', last_error = ?, next_attempt_at = ?, updated_at = ?, \
             lease_until = NULL WHERE {FENCE}"
        )))
        .bind(error.clone())
        .bind(ms(*next_attempt_at))
        .bind(now),
        Outcome::Failed { error } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE messages SET status = 'failed', last_error = ?, updated_at = ?, lease_until = NULL, \
             next_attempt_at = NULL WHERE {FENCE}"
        )))
        .bind(error.clone())
        .bind(now),
        Outcome::Suppressed { reason } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE messages SET status = 'suppressed', attempts = MAX(attempts - 1, 0), last_error = ?, updated_at = ?, \
             lease_until = NULL, next_attempt_at = NULL WHERE {FENCE}"
        )))
        .bind(reason.clone())
        .bind(now),
        Outcome::Released { next_attempt_at } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE messages SET status = 'retrying', attempts = MAX(attempts - 1, 0), next_attempt_at = ?, \
             updated_at = ?, lease_until = NULL WHERE {FENCE}"
        )))
        .bind(ms(*next_attempt_at))
        .bind(now),
    };
    let done = query
        .bind(lease.id.to_string())
        .bind(i64::from(lease.claim))
        .execute(&mut *tx)
        .await?;
    Ok(done.rows_affected() == 1)
}
