//! Flow limits and idempotent repeats in PostgreSQL, shared by replicas:
//! checks and spends run in the writers' commit groups, which lock their
//! cells (created first if new, in one order), so two writers never both
//! spend the last allowance of a cell.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgConnection;
use sqlx::postgres::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::limits;
use crate::queue::StoreError;
use crate::queue::batch::IDEMPOTENCY_WINDOW;
use crate::queue::grouping::Admit;

/// Checks and spends the flow limits of a group's requests in their order
/// (see [`crate::limits::spend`]), inside the group's transaction: their
/// cells created if new and locked, all in one order, so two writers (of
/// this replica or another) never both spend the last allowance of a cell;
/// the spent ones written back in one statement. Answers one result per
/// check and how many cells were created.
pub(super) async fn admit_all(
    conn: &mut PgConnection,
    admits: &[Admit<'_>],
) -> anyhow::Result<(Vec<Option<(Duration, usize)>>, u64)> {
    let mut keys: Vec<&str> = admits
        .iter()
        .flat_map(|a| a.cells.iter().map(|c| c.key.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let (mut rows, mut created) = lock(conn, &keys).await?;
    if rows.len() < keys.len() {
        // Pruned between creating and locking it (its window had passed):
        // created again, now by this transaction, so nobody else prunes it.
        let again;
        (rows, again) = lock(conn, &keys).await?;
        created += again;
    }
    let mut tats: HashMap<String, i64> = rows.into_iter().collect();
    let mut spent = Vec::new();
    let refused = admits
        .iter()
        .map(|admit| {
            let refused = limits::spend(admit.cells, unix_ms(admit.now), &mut tats);
            if refused.is_none() {
                spent.extend(admit.cells.iter().map(|c| c.key.as_str()));
            }
            refused
        })
        .collect();
    spent.sort_unstable();
    spent.dedup();
    if !spent.is_empty() {
        let times: Vec<i64> = spent.iter().map(|k| tats[*k]).collect();
        sqlx::query(
            "UPDATE flow_limits AS f SET tat = s.tat FROM unnest($1::text[], $2::bigint[]) AS s (key, tat) \
             WHERE f.key = s.key",
        )
        .bind(&spent)
        .bind(&times)
        .execute(&mut *conn)
        .await
        .context("spending limits")?;
    }
    Ok((refused, created))
}

/// Creates the cells of `keys` that do not exist (at time 0, which limits
/// nothing) and locks them all, in one order; answers their times and how
/// many cells were created.
async fn lock(tx: &mut PgConnection, keys: &[&str]) -> anyhow::Result<(Vec<(String, i64)>, u64)> {
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
