//! The suppression list in PostgreSQL.

use std::sync::Arc;

use anyhow::Context as _;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};

use super::growth::Growth;
use crate::queue::StoreError;
use crate::queue::lookups::Pair;
use crate::suppression::{Reason, Suppression};

/// Adds `entry`; false (and the first entry kept) when the address is on the list already.
pub async fn add(
    pool: &PgPool,
    growth: &Arc<Growth>,
    entry: &Suppression,
) -> Result<bool, StoreError> {
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
    // The lookup at accept is a prepared statement (see `growth`).
    if added {
        growth.note(pool, 1);
    }
    Ok(added)
}

/// Removes an address in every form it may be stored under (see
/// [`crate::suppression::keys`]); false if it was on the list in none.
pub async fn remove(pool: &PgPool, tenant: &str, email: &str) -> Result<bool, StoreError> {
    let forms: Vec<String> = crate::suppression::keys(email).collect();
    let done =
        sqlx::query("DELETE FROM suppressions WHERE tenant = $1 AND email = ANY($2::text[])")
            .bind(tenant)
            .bind(forms)
            .execute(pool)
            .await
            .context("removing a suppression")?;
    Ok(done.rows_affected() > 0)
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
pub async fn among(
    conn: &mut sqlx::PgConnection,
    pairs: Vec<Pair>,
) -> Result<Vec<Pair>, StoreError> {
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
    .fetch_all(conn)
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
