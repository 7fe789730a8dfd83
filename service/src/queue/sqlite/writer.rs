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

use std::time::Duration;

use anyhow::Context as _;
use sqlx::{Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{accept, from_ms, ms};
use crate::queue::batch::{self, Answer, Health, MAX_BATCH, Op, Write};
use crate::queue::{ClaimedJob, Lease, Outcome};

/// Applies waiting writes in groups until every sender is gone.
pub(super) async fn run(pool: SqlitePool, mut inbox: mpsc::Receiver<Write>, health: Health) {
    let mut waiting = Vec::with_capacity(MAX_BATCH);
    while inbox.recv_many(&mut waiting, MAX_BATCH).await > 0 {
        let (ops, replies) = batch::split(&mut waiting);
        let result = group(&pool, &ops).await;
        batch::answer(&health, &ops, replies, result);
    }
}

/// One transaction for the whole group, or none of it.
async fn group(pool: &SqlitePool, ops: &[Op]) -> anyhow::Result<Vec<Answer>> {
    let mut conn = pool.acquire().await.context("opening the queue file")?;
    let result = transaction(&mut conn, ops).await;
    if result.is_err() {
        // Whatever state SQLite left the connection in, it is not reused.
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        conn.close_on_drop();
    }
    result
}

async fn transaction(conn: &mut SqliteConnection, ops: &[Op]) -> anyhow::Result<Vec<Answer>> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let mut answers = Vec::with_capacity(ops.len());
    let mut rest = ops;
    while let Some(op) = rest.first() {
        // New messages that arrived together are stored together (see
        // `accept`); other ops keep their place between them.
        let run = rest
            .iter()
            .map_while(|op| match op {
                Op::Enqueue(job) => Some(job.as_ref()),
                _ => None,
            })
            .collect::<Vec<_>>();
        if run.is_empty() {
            answers.push(apply(conn, op).await?);
            rest = &rest[1..];
        } else {
            let stored = accept::insert_all(conn, &run).await?;
            answers.extend(stored.into_iter().map(Answer::Enqueued));
            rest = &rest[run.len()..];
        }
    }
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(answers)
}

async fn apply(conn: &mut SqliteConnection, op: &Op) -> anyhow::Result<Answer> {
    Ok(match op {
        Op::Enqueue(job) => {
            let stored = accept::insert_all(conn, &[job.as_ref()]).await?;
            let first = stored.into_iter().next();
            Answer::Enqueued(first.context("no answer for a new message")?)
        }
        Op::Claim { now, lease, limit } => {
            Answer::Claimed(claim(conn, *now, *lease, *limit).await?)
        }
        Op::Renew { lease, until } => Answer::Applied(renew(conn, lease, *until).await?),
        Op::Record {
            lease,
            outcome,
            now,
        } => Answer::Applied(record(conn, lease, outcome, *now).await?),
        Op::Probe { now } => {
            // Room for about one message: a probe that fits proves little less.
            sqlx::query(
                "INSERT OR REPLACE INTO store_health (id, probed_at, room) VALUES (1, ?, zeroblob(65536))",
            )
            .bind(ms(*now))
            .execute(&mut *conn)
            .await?;
            Answer::Probed
        }
    })
}

async fn claim(
    tx: &mut SqliteConnection,
    now: OffsetDateTime,
    lease: Duration,
    limit: u32,
) -> anyhow::Result<Vec<ClaimedJob>> {
    let now = batch::current(now);
    let now_ms = ms(now);
    let until = now + lease;
    let rows = sqlx::query(
        "UPDATE messages SET status = 'sending', attempts = attempts + 1, claims = claims + 1, \
             lease_until = ?1, updated_at = ?2 \
         WHERE id IN (SELECT id FROM messages WHERE \
             (status IN ('queued', 'retrying') AND next_attempt_at <= ?2) \
             OR (status = 'sending' AND lease_until < ?4) \
           ORDER BY next_attempt_at LIMIT ?3) \
         AND message IS NOT NULL \
         RETURNING rowid, id, message, transport, attempts, claims, age_from",
    )
    .bind(ms(until))
    .bind(now_ms)
    .bind(i64::from(limit))
    .bind(ms(batch::abandoned_before(now, lease)))
    .fetch_all(&mut *tx)
    .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in &rows {
        match decode(row, until) {
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
fn decode(row: &sqlx::sqlite::SqliteRow, until: OffsetDateTime) -> anyhow::Result<ClaimedJob> {
    let id: String = row.try_get("id").context("id")?;
    let json: String = row.try_get("message").context("message")?;
    let attempts: i64 = row.try_get("attempts").context("attempts")?;
    let claims: i64 = row.try_get("claims").context("claims")?;
    let message: crate::email::OutgoingMessage =
        serde_json::from_str(&json).context("message body")?;
    let id = Uuid::parse_str(&id).context("id")?;
    anyhow::ensure!(message.id == id, "the body belongs to another message");
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
