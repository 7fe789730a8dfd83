//! Flow limits and idempotent repeats in SQLite. Checks and spends run in
//! the writer's commit groups, one after the other.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::SqlitePool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::ms;
use super::walk::Walk;
use crate::limits::{self, LimitCell};
use crate::queue::batch::IDEMPOTENCY_WINDOW;
use crate::queue::{Pruned, StoreError};

/// The flow-limit cells of one commit group: read once, spent in memory in
/// the group's order, the spent ones written back once.
#[derive(Default)]
pub(super) struct Cells<'a> {
    tats: HashMap<String, i64>,
    spent: Vec<&'a str>,
}

impl<'a> Cells<'a> {
    /// The stored times of every cell in `checks`.
    pub(super) fn read(
        conn: &rusqlite::Connection,
        checks: impl Iterator<Item = &'a [LimitCell]>,
    ) -> anyhow::Result<Cells<'a>> {
        let keys: Vec<&str> = checks.flatten().map(|c| c.key.as_str()).collect();
        if keys.is_empty() {
            return Ok(Cells::default());
        }
        let tats = conn
            .prepare_cached(
                "SELECT key, tat FROM flow_limits WHERE key IN (SELECT value FROM json_each(?))",
            )?
            .query_map([serde_json::to_string(&keys)?], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?
            .collect::<Result<HashMap<_, _>, _>>()
            .context("reading limits")?;
        Ok(Cells {
            tats,
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
    pub(super) fn write(mut self, conn: &rusqlite::Connection) -> anyhow::Result<()> {
        self.spent.sort_unstable();
        self.spent.dedup();
        if self.spent.is_empty() {
            return Ok(());
        }
        let rows: Vec<(&str, i64)> = self.spent.iter().map(|k| (*k, self.tats[*k])).collect();
        conn.prepare_cached(
            "INSERT INTO flow_limits (key, tat) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?) WHERE true \
             ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
        )?
        .execute([serde_json::to_string(&rows)?])
        .context("spending limits")?;
        Ok(())
    }
}

/// The walk over `flow_limits`: cells whose time is not after the bound.
const PRUNE: Walk = Walk {
    last: "SELECT rowid FROM flow_limits WHERE rowid > ? ORDER BY rowid LIMIT 1 OFFSET ?",
    range: "DELETE FROM flow_limits WHERE rowid > ? AND rowid <= ? AND tat <= ?",
    rest: "DELETE FROM flow_limits WHERE rowid > ? AND tat <= ?",
    what: "pruning limits",
};

/// Deletes the cells whose time is not after `now` among the `batch` cells
/// after `after`, in the table's own order (rowids; `next` is one). On the
/// write connection, so it never runs inside a check-and-spend. Each step
/// reads a range of the table, at most `batch` cells (see [`super::walk`]):
/// a search for expired cells by their time alone reads the whole table in
/// one statement (48 ms at a million cells, every commit group waiting for
/// the writer meanwhile).
pub async fn prune(
    pool: &SqlitePool,
    now: OffsetDateTime,
    after: Option<&str>,
    batch: u32,
) -> Result<Pruned, StoreError> {
    Ok(PRUNE.step(pool, after, batch, ms(now)).await?)
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

#[cfg(test)]
mod tests {
    use sqlx::Row as _;
    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    async fn cells(live: i64, expired: i64, now: i64) -> SqlitePool {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::migrate!("./migrations").run(&pool).await.unwrap();
        // Live and expired cells interleaved in key order.
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1 + ?2) \
             INSERT INTO flow_limits (key, tat) SELECT printf('acme:r:%08d', i), \
             CASE WHEN i % 3 = 0 AND i / 3 < ?2 THEN ?3 - 1 ELSE ?3 + 60000 END FROM n",
        )
        .bind(live)
        .bind(expired)
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
        pool
    }

    #[tokio::test]
    async fn the_walk_deletes_every_expired_cell_a_batch_of_cells_at_a_time() {
        let now = OffsetDateTime::now_utc();
        let pool = cells(2_000, 1_000, ms(now)).await;
        let (mut after, mut steps, mut deleted) = (None, 0, 0);
        loop {
            let step = prune(&pool, now, after.as_deref(), 250).await.unwrap();
            assert!(step.deleted <= 250, "{step:?}");
            deleted += step.deleted;
            steps += 1;
            match step.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(deleted, 1_000);
        // 3,000 cells: twelve full steps, then one that finds none left.
        assert_eq!(steps, 13);
        let left: (i64, i64) =
            sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE tat <= ?) FROM flow_limits")
                .bind(ms(now))
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(left, (2_000, 0), "the live cells stay");
    }

    #[tokio::test]
    async fn each_statement_reads_a_range_of_the_table_not_all_of_it() {
        let pool = cells(10, 10, 0).await;
        for sql in PRUNE.statements() {
            let steps = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&pool)
                .await
                .unwrap();
            let plan: Vec<String> = steps.iter().map(|row| row.get("detail")).collect();
            let plan = plan.join(" / ");
            assert!(
                plan.contains("SEARCH flow_limits USING INTEGER PRIMARY KEY (rowid>"),
                "{sql}: {plan}"
            );
        }
    }
}
