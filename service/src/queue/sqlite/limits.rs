//! Flow limits and idempotent repeats in SQLite. Checks and spends run in
//! the writer's commit groups, one after the other.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::{SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::ms;
use crate::limits::{self, LimitCell};
use crate::queue::StoreError;
use crate::queue::batch::IDEMPOTENCY_WINDOW;

/// The flow-limit cells of one commit group: read once, spent in memory in
/// the group's order, the spent ones written back once.
#[derive(Default)]
pub(super) struct Cells<'a> {
    tats: HashMap<String, i64>,
    spent: Vec<&'a str>,
}

impl<'a> Cells<'a> {
    /// The stored times of every cell in `checks`.
    pub(super) async fn read(
        conn: &mut SqliteConnection,
        checks: impl Iterator<Item = &'a [LimitCell]>,
    ) -> anyhow::Result<Cells<'a>> {
        let keys: Vec<&str> = checks.flatten().map(|c| c.key.as_str()).collect();
        if keys.is_empty() {
            return Ok(Cells::default());
        }
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT key, tat FROM flow_limits WHERE key IN (SELECT value FROM json_each(?))",
        )
        .bind(serde_json::to_string(&keys)?)
        .fetch_all(&mut *conn)
        .await
        .context("reading limits")?;
        Ok(Cells {
            tats: rows.into_iter().collect(),
            spent: Vec::new(),
        })
    }

    /// Checks and spends one message of `cells` (see [`limits::spend`]).
    pub(super) fn spend(
        &mut self,
        cells: &'a [LimitCell],
        now: OffsetDateTime,
    ) -> Option<(Duration, usize)> {
        let refused = limits::spend(cells, ms(now), &mut self.tats);
        if refused.is_none() {
            self.spent.extend(cells.iter().map(|c| c.key.as_str()));
        }
        refused
    }

    /// Writes the spent cells' times back.
    pub(super) async fn write(mut self, conn: &mut SqliteConnection) -> anyhow::Result<()> {
        self.spent.sort_unstable();
        self.spent.dedup();
        if self.spent.is_empty() {
            return Ok(());
        }
        let rows: Vec<(&str, i64)> = self.spent.iter().map(|k| (*k, self.tats[*k])).collect();
        sqlx::query(
            "INSERT INTO flow_limits (key, tat) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?) WHERE true \
             ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
        )
        .bind(serde_json::to_string(&rows)?)
        .execute(&mut *conn)
        .await
        .context("spending limits")?;
        Ok(())
    }
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
