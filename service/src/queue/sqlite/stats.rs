//! The figures behind the queue gauges of `/metrics`.

use anyhow::Context as _;
use sqlx::{Row as _, SqlitePool};

use super::from_ms;
use crate::queue::{QueueStats, Status, StoreError};

/// Counts unfinished statuses and finds the oldest unsent message. `sent`
/// rows, usually most of the table, are left out so an index by status
/// (`messages_status_id`) bounds the work to the backlog and the dead letters. Dead letters are
/// never purged and only counted, from the index alone: asking for their
/// oldest too read every one of their rows at each scrape.
pub(super) async fn read(pool: &SqlitePool) -> Result<QueueStats, StoreError> {
    let rows = sqlx::query(
        "SELECT status, count(*) AS n, min(created_at) AS oldest FROM messages \
         WHERE status IN ('queued', 'sending', 'retrying') GROUP BY status",
    )
    .fetch_all(pool)
    .await
    .context("reading queue figures")?;
    let mut stats = QueueStats::default();
    for row in rows {
        let status: String = row.try_get("status").context("queue figures: status")?;
        let count: i64 = row.try_get("n").context("queue figures: count")?;
        let oldest: Option<i64> = row.try_get("oldest").context("queue figures: oldest")?;
        stats.add(
            Status::parse(&status),
            u64::try_from(count).unwrap_or_default(),
            oldest.map(from_ms),
        );
    }
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = 'failed'")
        .fetch_one(pool)
        .await
        .context("counting failed messages")?;
    stats.set_failed(failed);
    Ok(stats)
}
