//! Flow limits and idempotent repeats in PostgreSQL, shared by replicas:
//! each check-and-spend is one transaction that locks its cells (created
//! first if new, in one order), so two replicas never both spend the last
//! allowance of a cell.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgConnection;
use sqlx::postgres::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::growth::Growth;
use crate::limits::LimitCell;
use crate::queue::StoreError;
use crate::queue::batch::IDEMPOTENCY_WINDOW;

/// Spends one message from every cell if all allow it; else the longest
/// wait and the index of the cell that needs it.
pub async fn admit(
    pool: &PgPool,
    growth: &Arc<Growth>,
    cells: &[LimitCell],
    now: OffsetDateTime,
) -> Result<Option<(Duration, usize)>, StoreError> {
    let now = unix_ms(now);
    let keys: Vec<&str> = cells.iter().map(|c| c.key.as_str()).collect();
    let mut tx = pool.begin().await.context("starting a limit check")?;
    let (mut rows, mut created) = lock(&mut tx, &keys).await?;
    if keys.iter().any(|k| !rows.iter().any(|(key, _)| key == k)) {
        // Pruned between creating and locking it (its window had passed):
        // created again, now by this transaction, so nobody else prunes it.
        let again;
        (rows, again) = lock(&mut tx, &keys).await?;
        created += again;
    }
    let mut wait = (0i64, 0usize);
    let mut next = Vec::with_capacity(cells.len());
    for (index, cell) in cells.iter().enumerate() {
        let tat = rows
            .iter()
            .find(|(key, _)| key == &cell.key)
            .map_or(now, |(_, tat)| *tat)
            .max(now);
        wait = wait.max((tat - now - millis(cell.burst), index));
        next.push((cell.key.as_str(), tat + millis(cell.interval)));
    }
    if wait.0 > 0 {
        tx.rollback().await.context("ending a limit check")?;
        return Ok(Some((Duration::from_millis(wait.0.unsigned_abs()), wait.1)));
    }
    for (key, tat) in next {
        sqlx::query("UPDATE flow_limits SET tat = $2 WHERE key = $1")
            .bind(key)
            .bind(tat)
            .execute(&mut *tx)
            .await
            .context("spending a limit")?;
    }
    tx.commit().await.context("committing a limit")?;
    // The lock and the spend are prepared statements (see `growth`); the
    // table grows by a cell per address (a refusal creates none: its
    // transaction is rolled back).
    growth.note(pool, created);
    Ok(None)
}

/// Creates the cells of `keys` that do not exist (at time 0, which limits
/// nothing) and locks them all, in one order; answers their times and how
/// many cells were created.
async fn lock(
    tx: &mut PgConnection,
    keys: &[&str],
) -> Result<(Vec<(String, i64)>, u64), StoreError> {
    let created = sqlx::query(
        "INSERT INTO flow_limits (key, tat) SELECT unnest($1::text[]), 0 ON CONFLICT DO NOTHING",
    )
    .bind(keys)
    .execute(&mut *tx)
    .await
    .context("creating limits")?
    .rows_affected();
    let rows = sqlx::query_as(
        "SELECT key, tat FROM flow_limits WHERE key = ANY($1) ORDER BY key FOR UPDATE",
    )
    .bind(keys)
    .fetch_all(&mut *tx)
    .await
    .context("locking limits")?;
    Ok((rows, created))
}

/// Deletes up to `batch` cells whose time is not after `now`, skipping cells
/// a limit check holds (it is about to move them on).
pub async fn prune(pool: &PgPool, now: OffsetDateTime, batch: u32) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM flow_limits WHERE key IN \
         (SELECT key FROM flow_limits WHERE tat <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(unix_ms(now))
    .bind(i64::from(batch))
    .execute(pool)
    .await
    .context("pruning limits")?;
    Ok(done.rows_affected())
}

/// The message `tenant` stored under idempotency `key` within the window, if any.
pub async fn idempotent(
    pool: &PgPool,
    tenant: &str,
    key: &str,
    now: OffsetDateTime,
) -> Result<Option<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM messages WHERE tenant = $1 AND idempotency_key = $2 AND created_at > $3",
    )
    .bind(tenant)
    .bind(key)
    .bind(now - IDEMPOTENCY_WINDOW)
    .fetch_optional(pool)
    .await
    .context("finding an idempotent repeat")?)
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
