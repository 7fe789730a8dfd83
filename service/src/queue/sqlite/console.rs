//! The console's reads: attempts, searches and the overview's breakdown.

use anyhow::Context as _;
use sqlx::{Row as _, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{from_ms, ms, record};
use crate::queue::history::{
    AttemptRecord, Breakdown, FAILURE_RUNS, LAST_OUTCOMES, RecipientMatch, Search, TransportHealth,
    prefix_end,
};
use crate::queue::{MessageRecord, RECORD_COLUMNS, Status, StoreError};
use std::collections::BTreeMap;

/// A message's attempts, oldest first.
pub(super) async fn attempts(
    pool: &SqlitePool,
    id: Uuid,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT attempt, transport, outcome, answer, finished_at FROM attempts \
         WHERE message_id = ? ORDER BY id",
    )
    .bind(id.to_string())
    .fetch_all(pool)
    .await
    .context("reading a message's attempts")?;
    let read = |row: &sqlx::sqlite::SqliteRow| -> anyhow::Result<AttemptRecord> {
        Ok(AttemptRecord {
            attempt: u32::try_from(row.try_get::<i64, _>("attempt")?).unwrap_or_default(),
            transport: row.try_get("transport")?,
            outcome: row.try_get("outcome")?,
            answer: row.try_get("answer")?,
            finished_at: from_ms(row.try_get("finished_at")?),
        })
    };
    Ok(rows
        .iter()
        .map(read)
        .collect::<anyhow::Result<_>>()
        .context("a stored attempt cannot be read")?)
}

/// Status rows matching `search`, newest first.
pub(super) async fn search(
    pool: &SqlitePool,
    search: &Search,
) -> Result<Vec<MessageRecord>, StoreError> {
    // A prefix is an index range [prefix, prefix_end); every statement
    // names both bound values, used or not.
    let (recipient, lo, hi) = match &search.recipient {
        None => ("AND ?5 IS NULL AND ?6 IS NULL ", None, None),
        Some(RecipientMatch::Exact(a)) => (
            "AND ?6 IS NULL AND id IN (SELECT message_id FROM recipients WHERE address = ?5) ",
            Some(a.clone()),
            None,
        ),
        Some(RecipientMatch::Prefix(p)) => (
            "AND id IN (SELECT message_id FROM recipients WHERE address >= ?5 AND address < ?6) ",
            Some(p.clone()),
            Some(prefix_end(p)),
        ),
    };
    let tenants = search
        .tenants
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .context("tenant list")?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM messages WHERE (?1 IS NULL OR status = ?1) \
         AND (?2 IS NULL OR tenant IN (SELECT value FROM json_each(?2))) \
         AND (?3 IS NULL OR created_at >= ?3) AND (?4 IS NULL OR created_at < ?4) {recipient}\
         AND (?7 IS NULL OR id < ?7) ORDER BY id DESC LIMIT ?8"
    )))
    .bind(search.status.map(Status::as_str))
    .bind(tenants)
    .bind(search.since.map(ms))
    .bind(search.until.map(ms))
    .bind(lo)
    .bind(hi)
    .bind(search.before.map(|id| id.to_string()))
    .bind(i64::from(search.limit.max(1)))
    .fetch_all(pool)
    .await
    .context("searching messages")?;
    rows.iter().map(record).collect()
}

/// Counts by tenant, transport and status; deliveries since `since`; the oldest unsent.
pub(super) async fn breakdown(
    pool: &SqlitePool,
    tenants: Option<&[String]>,
    since: OffsetDateTime,
) -> Result<Breakdown, StoreError> {
    let tenants = tenants
        .map(serde_json::to_string)
        .transpose()
        .context("tenant list")?;
    const ONLY: &str = "(?1 IS NULL OR tenant IN (SELECT value FROM json_each(?1)))";
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT tenant, transport, status, count(*) AS n FROM messages WHERE {ONLY} \
         GROUP BY tenant, transport, status ORDER BY tenant, transport, status"
    )))
    .bind(&tenants)
    .fetch_all(pool)
    .await
    .context("reading the queue's breakdown")?;
    let mut breakdown = Breakdown::default();
    for row in rows {
        let status: String = row.try_get("status").context("breakdown: status")?;
        let Some(status) = Status::parse(&status) else {
            continue;
        };
        let count: i64 = row.try_get("n").context("breakdown: count")?;
        breakdown.counts.push((
            row.try_get("tenant").context("breakdown: tenant")?,
            row.try_get("transport").context("breakdown: transport")?,
            status,
            u64::try_from(count).unwrap_or_default(),
        ));
    }
    let sent: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM messages WHERE sent_at >= ?2 AND {ONLY}"
    )))
    .bind(&tenants)
    .bind(ms(since))
    .fetch_one(pool)
    .await
    .context("counting recent deliveries")?;
    breakdown.sent_since = u64::try_from(sent).unwrap_or_default();
    let oldest: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT min(created_at) FROM messages WHERE status IN ('queued', 'sending', 'retrying') AND {ONLY}"
    )))
    .bind(&tenants)
    .fetch_one(pool)
    .await
    .context("finding the oldest unsent message")?;
    breakdown.oldest_unsent = oldest.map(from_ms);
    Ok(breakdown)
}

/// Each transport's last delivery, last failure and failures since.
pub(super) async fn transport_health(
    pool: &SqlitePool,
) -> Result<Vec<TransportHealth>, StoreError> {
    let mut health: BTreeMap<String, TransportHealth> = BTreeMap::new();
    let rows = sqlx::query(LAST_OUTCOMES)
        .fetch_all(pool)
        .await
        .context("reading the transports' last outcomes")?;
    for row in rows {
        let transport: String = row.try_get("transport").context("transport")?;
        let outcome: String = row.try_get("outcome").context("outcome")?;
        let at = from_ms(row.try_get("finished_at").context("finished_at")?);
        health
            .entry(transport.clone())
            .or_insert_with(|| TransportHealth {
                transport,
                ..TransportHealth::default()
            })
            .add(&outcome, row.try_get("answer").context("answer")?, at);
    }
    let runs = sqlx::query(FAILURE_RUNS)
        .fetch_all(pool)
        .await
        .context("counting the transports' failures")?;
    for row in runs {
        let transport: String = row.try_get("transport").context("transport")?;
        let count: i64 = row.try_get("n").context("count")?;
        if let Some(h) = health.get_mut(&transport) {
            h.consecutive_failures = u64::try_from(count).unwrap_or_default();
        }
    }
    Ok(health.into_values().collect())
}
