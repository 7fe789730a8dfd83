//! Deleting rows of a table on the write connection in bounded steps: each
//! step reads a range of the table, at most a batch of rows in rowid order,
//! and gives the connection back, so that commit groups (which take turns
//! with it) run between steps however many rows there are to delete. A
//! search by a condition alone would read every row in one statement while
//! every accept waits. Flow-limit pruning and retention walk so.

use anyhow::Context as _;
use sqlx::SqlitePool;

use crate::queue::Pruned;

/// The statements of a walk over one table. Each states the rows it may
/// delete with a time bound, the last parameter.
pub(super) struct Walk {
    /// The last of the `?2 + 1` rows after rowid `?1`: where a step ends.
    pub last: &'static str,
    /// A step's deletes: rowids after `?1` up to `?2`; `?3` the time bound.
    pub range: &'static str,
    /// The last step's, fewer than a batch of rows being left after `?1`;
    /// `?2` the time bound.
    pub rest: &'static str,
    /// What a step does, for its errors.
    pub what: &'static str,
}

impl Walk {
    /// Deletes what the walk's statements say among the `batch` rows after
    /// `after` (a rowid; `next` is one), `until` being the time bound.
    pub(super) async fn step(
        &self,
        pool: &SqlitePool,
        after: Option<&str>,
        batch: u32,
        until: i64,
    ) -> anyhow::Result<Pruned> {
        let after: i64 = match after {
            Some(rowid) => rowid
                .parse()
                .with_context(|| format!("{}: a step's rowid", self.what))?,
            None => 0,
        };
        let last: Option<i64> = sqlx::query_scalar(self.last)
            .bind(after)
            .bind(i64::from(batch.max(1)) - 1)
            .fetch_optional(pool)
            .await
            .context(self.what)?;
        let done = match last {
            Some(last) => sqlx::query(self.range).bind(after).bind(last),
            None => sqlx::query(self.rest).bind(after),
        }
        .bind(until)
        .execute(pool)
        .await
        .context(self.what)?;
        Ok(Pruned {
            deleted: done.rows_affected(),
            next: last.map(|rowid| rowid.to_string()),
        })
    }

    /// Its statements, for checking their query plans.
    #[cfg(test)]
    pub(super) fn statements(&self) -> [&'static str; 3] {
        [self.last, self.range, self.rest]
    }
}
