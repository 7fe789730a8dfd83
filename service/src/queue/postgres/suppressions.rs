//! The suppression list in PostgreSQL.

use anyhow::Context as _;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};

use crate::queue::StoreError;
use crate::queue::lookups::Pair;
use crate::suppression::{Reason, Suppression};

/// Entries this replica added since the list's statistics were last taken
/// here, and how many more it takes before they are taken again.
///
/// The lookup at accept is a prepared statement, and PostgreSQL keeps its
/// generic plan per connection until the table's statistics change. Made
/// while the list is small (a new install, under about 4,000 entries) that
/// plan scans the whole list and hashes it; had the list grown tenfold
/// since (an import of an old list, a wave of bounces) before autovacuum's
/// next ANALYZE, every lookup read all of it (49 ms per lookup for 200,000
/// entries, many lookups a second). So the replica that adds entries takes
/// the statistics itself whenever the list may have doubled: at most twice
/// the rows they say, and a plan made from them picks the primary key as
/// soon as the list is large enough for it to matter.
#[derive(Debug, Default)]
pub(super) struct Growth {
    state: std::sync::Mutex<(u64, u64)>,
}

/// Entries added before the statistics are taken again, at the least.
const GROWTH_MIN: u64 = 1_000;

impl Growth {
    /// Counts one entry added; true when the statistics are due.
    fn added(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (added, due) = &mut *state;
        *added += 1;
        if *added >= (*due).max(GROWTH_MIN) {
            *added = 0;
            return true;
        }
        false
    }

    /// Takes the list's statistics; the next time is when it may have doubled.
    async fn analyze(&self, pool: &PgPool) -> anyhow::Result<()> {
        sqlx::query("ANALYZE suppressions").execute(pool).await?;
        let rows: f32 = sqlx::query_scalar(
            "SELECT reltuples FROM pg_class WHERE oid = 'suppressions'::regclass",
        )
        .fetch_one(pool)
        .await?;
        // reltuples is -1 before the first ANALYZE, a count after it.
        let rows = if rows.is_finite() && rows > 0.0 {
            rows as u64
        } else {
            0
        };
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = rows;
        Ok(())
    }
}

/// Adds `entry`; false (and the first entry kept) when the address is on the list already.
pub async fn add(pool: &PgPool, growth: &Growth, entry: &Suppression) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO suppressions (tenant, email, reason, detail, message_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(&entry.tenant)
    .bind(&entry.email)
    .bind(entry.reason.as_str())
    .bind(entry.detail.as_deref())
    .bind(entry.message_id)
    .bind(entry.created_at)
    .execute(pool)
    .await
    .context("adding a suppression")?;
    let added = done.rows_affected() == 1;
    if added && growth.added() {
        // The entry is stored either way; without fresh statistics only
        // the lookups are slower until autovacuum takes them.
        if let Err(error) = growth.analyze(pool).await {
            tracing::warn!(error = %format!("{error:#}"), "could not take the suppression list's statistics");
        }
    }
    Ok(added)
}

/// Removes an address; false if it was not on the list.
pub async fn remove(pool: &PgPool, tenant: &str, email: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM suppressions WHERE tenant = $1 AND email = $2")
        .bind(tenant)
        .bind(email)
        .execute(pool)
        .await
        .context("removing a suppression")?;
    Ok(done.rows_affected() == 1)
}

/// The list (of one tenant, or all), newest first, at most `limit` entries.
pub async fn list(
    pool: &PgPool,
    tenant: Option<&str>,
    limit: u32,
) -> Result<Vec<Suppression>, StoreError> {
    let rows = sqlx::query(
        "SELECT tenant, email, reason, detail, message_id, created_at FROM suppressions \
         WHERE ($1::text IS NULL OR tenant = $1) ORDER BY created_at DESC, email LIMIT $2",
    )
    .bind(tenant)
    .bind(i64::from(limit.max(1)))
    .fetch_all(pool)
    .await
    .context("listing suppressions")?;
    rows.iter().map(read).collect()
}

/// Which of `pairs` (tenant, normalised email) are on their tenant's list:
/// one query for all of them (see [`crate::queue::lookups`]).
pub async fn among(pool: &PgPool, pairs: Vec<Pair>) -> Result<Vec<Pair>, StoreError> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let (tenants, emails): (Vec<String>, Vec<String>) = pairs.into_iter().unzip();
    Ok(sqlx::query_as(
        "SELECT s.tenant, s.email FROM UNNEST($1::text[], $2::text[]) AS a (tenant, email) \
         JOIN suppressions AS s ON s.tenant = a.tenant AND s.email = a.email",
    )
    .bind(tenants)
    .bind(emails)
    .fetch_all(pool)
    .await
    .context("looking up suppressions")?)
}

fn read(row: &PgRow) -> Result<Suppression, StoreError> {
    let read = || -> anyhow::Result<Suppression> {
        let reason: String = row.try_get("reason")?;
        Ok(Suppression {
            tenant: row.try_get("tenant")?,
            email: row.try_get("email")?,
            reason: Reason::parse(&reason).with_context(|| format!("unknown reason {reason}"))?,
            detail: row.try_get("detail")?,
            message_id: row.try_get("message_id")?,
            created_at: row.try_get("created_at")?,
        })
    };
    Ok(read().context("a stored suppression cannot be read")?)
}
