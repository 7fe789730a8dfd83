//! The suppression list in SQLite.

use anyhow::Context as _;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::{from_ms, ms};
use crate::queue::StoreError;
use crate::queue::lookups::Pair;
use crate::suppression::{Reason, Suppression};

/// Adds `entry`; false (and the first entry kept) when the address is on the list already.
pub async fn add(pool: &SqlitePool, entry: &Suppression) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO suppressions (tenant, email, reason, detail, message_id, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(&entry.tenant)
    .bind(&entry.email)
    .bind(entry.reason.as_str())
    .bind(entry.detail.as_deref())
    .bind(entry.message_id.map(|id| id.to_string()))
    .bind(ms(entry.created_at))
    .execute(pool)
    .await
    .context("adding a suppression")?;
    Ok(done.rows_affected() == 1)
}

/// Removes an address in every form it may be stored under (see
/// [`crate::suppression::keys`]); false if it was on the list in none.
pub async fn remove(pool: &SqlitePool, tenant: &str, email: &str) -> Result<bool, StoreError> {
    let forms: Vec<String> = crate::suppression::keys(email).collect();
    let forms = serde_json::to_string(&forms).context("listing an address's forms")?;
    let done = sqlx::query(
        "DELETE FROM suppressions WHERE tenant = ? AND email IN (SELECT value FROM json_each(?))",
    )
    .bind(tenant)
    .bind(forms)
    .execute(pool)
    .await
    .context("removing a suppression")?;
    Ok(done.rows_affected() > 0)
}

/// The list (of one tenant, or all), newest first, at most `limit` entries.
pub async fn list(
    pool: &SqlitePool,
    tenant: Option<&str>,
    limit: u32,
) -> Result<Vec<Suppression>, StoreError> {
    let rows = sqlx::query(
        "SELECT tenant, email, reason, detail, message_id, created_at FROM suppressions \
         WHERE (?1 IS NULL OR tenant = ?1) ORDER BY created_at DESC, email LIMIT ?2",
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
pub async fn among(pool: &SqlitePool, pairs: Vec<Pair>) -> Result<Vec<Pair>, StoreError> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let asked = serde_json::to_string(&pairs).context("listing addresses")?;
    Ok(sqlx::query_as(
        "SELECT s.tenant, s.email FROM json_each(?) AS j JOIN suppressions AS s \
         ON s.tenant = json_extract(j.value, '$[0]') AND s.email = json_extract(j.value, '$[1]')",
    )
    .bind(asked)
    .fetch_all(pool)
    .await
    .context("looking up suppressions")?)
}

fn read(row: &SqliteRow) -> Result<Suppression, StoreError> {
    let read = || -> anyhow::Result<Suppression> {
        let reason: String = row.try_get("reason")?;
        let message_id: Option<String> = row.try_get("message_id")?;
        Ok(Suppression {
            tenant: row.try_get("tenant")?,
            email: row.try_get("email")?,
            reason: Reason::parse(&reason).with_context(|| format!("unknown reason {reason}"))?,
            detail: row.try_get("detail")?,
            message_id: message_id.and_then(|id| uuid::Uuid::parse_str(&id).ok()),
            created_at: from_ms(row.try_get("created_at")?),
        })
    };
    Ok(read().context("a stored suppression cannot be read")?)
}
