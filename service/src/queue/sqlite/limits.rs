//! Flow limits and idempotent repeats in SQLite. Checks and spends run in
//! the writer's commit groups, one after the other.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::{SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::ms;
use crate::limits;
use crate::queue::StoreError;
use crate::queue::batch::IDEMPOTENCY_WINDOW;
use crate::queue::grouping::Admit;

/// Checks and spends the flow limits of a group's requests in their order
/// (see [`crate::limits::spend`]): the cells' times read in one statement,
/// the spent ones written back in one more, inside the group's transaction.
pub(super) async fn admit_all(
    conn: &mut SqliteConnection,
    admits: &[Admit<'_>],
) -> anyhow::Result<Vec<Option<(Duration, usize)>>> {
    let keys: Vec<&str> = admits
        .iter()
        .flat_map(|a| a.cells.iter().map(|c| c.key.as_str()))
        .collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT key, tat FROM flow_limits WHERE key IN (SELECT value FROM json_each(?))",
    )
    .bind(serde_json::to_string(&keys)?)
    .fetch_all(&mut *conn)
    .await
    .context("reading limits")?;
    let mut tats: HashMap<String, i64> = rows.into_iter().collect();
    let mut spent = Vec::new();
    let refused = admits
        .iter()
        .map(|admit| {
            let refused = limits::spend(admit.cells, ms(admit.now), &mut tats);
            if refused.is_none() {
                spent.extend(admit.cells.iter().map(|c| c.key.as_str()));
            }
            refused
        })
        .collect();
    spent.sort_unstable();
    spent.dedup();
    if !spent.is_empty() {
        let rows: Vec<(&str, i64)> = spent.iter().map(|k| (*k, tats[*k])).collect();
        sqlx::query(
            "INSERT INTO flow_limits (key, tat) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?) WHERE true \
             ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
        )
        .bind(serde_json::to_string(&rows)?)
        .execute(&mut *conn)
        .await
        .context("spending limits")?;
    }
    Ok(refused)
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
