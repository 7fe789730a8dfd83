//! Flow limits and idempotent repeats in SQLite. The single write
//! connection makes each check-and-spend one serial transaction.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::ms;
use crate::limits::LimitCell;
use crate::queue::StoreError;
use crate::queue::batch::IDEMPOTENCY_WINDOW;

/// Spends one message from every cell if all allow it; else the longest
/// wait and the index of the cell that needs it.
pub async fn admit(
    pool: &SqlitePool,
    cells: &[LimitCell],
    now: OffsetDateTime,
) -> Result<Option<(Duration, usize)>, StoreError> {
    let now = ms(now);
    let mut tx = pool.begin().await.context("starting a limit check")?;
    let mut wait = (0i64, 0usize);
    let mut tats = Vec::with_capacity(cells.len());
    for (index, cell) in cells.iter().enumerate() {
        let row = sqlx::query("SELECT tat FROM flow_limits WHERE key = ?")
            .bind(&cell.key)
            .fetch_optional(&mut *tx)
            .await
            .context("reading a limit")?;
        let tat: i64 = match row {
            Some(row) => row.try_get("tat").context("reading a limit")?,
            None => now,
        };
        let tat = tat.max(now);
        wait = wait.max((tat - now - millis(cell.burst), index));
        tats.push(tat + millis(cell.interval));
    }
    if wait.0 > 0 {
        return Ok(Some((Duration::from_millis(wait.0.unsigned_abs()), wait.1)));
    }
    for (cell, tat) in cells.iter().zip(tats) {
        sqlx::query("INSERT INTO flow_limits (key, tat) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET tat = excluded.tat")
            .bind(&cell.key)
            .bind(tat)
            .execute(&mut *tx)
            .await
            .context("spending a limit")?;
    }
    tx.commit().await.context("committing a limit")?;
    Ok(None)
}

/// Deletes up to `batch` cells whose time is not after `now`. On the
/// write connection, so it never runs inside a check-and-spend.
pub async fn prune(pool: &SqlitePool, now: OffsetDateTime, batch: u32) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM flow_limits WHERE key IN \
         (SELECT key FROM flow_limits WHERE tat <= ? LIMIT ?)",
    )
    .bind(ms(now))
    .bind(i64::from(batch))
    .execute(pool)
    .await
    .context("pruning limits")?;
    Ok(done.rows_affected())
}

/// The message `tenant` stored under idempotency `key` within the window, if any.
pub async fn idempotent(
    pool: &SqlitePool,
    tenant: &str,
    key: &str,
    now: OffsetDateTime,
) -> Result<Option<Uuid>, StoreError> {
    let since = ms(now) - millis(IDEMPOTENCY_WINDOW);
    let id: Option<String> = sqlx::query_scalar(
        "SELECT id FROM messages WHERE tenant = ? AND idempotency_key = ? AND created_at > ?",
    )
    .bind(tenant)
    .bind(key)
    .bind(since)
    .fetch_optional(pool)
    .await
    .context("finding an idempotent repeat")?;
    Ok(id.and_then(|id| Uuid::parse_str(&id).ok()))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
