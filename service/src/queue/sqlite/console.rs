//! The console's reads: attempts, searches and the overview's breakdown.

use anyhow::Context as _;
use sqlx::{Row as _, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{from_ms, ms, record};
use crate::queue::history::{
    AttemptRecord, Breakdown, FAILURES, RecipientMatch, Search, TransportHealth, last_outcome,
    prefix_end,
};
use crate::queue::{MessageRecord, RECORD_COLUMNS, Status, StoreError};

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
    // One tenant (a tenant's own console) is read from `messages_tenant_id`;
    // several are looked up in a JSON list.
    let (tenant, tenants) = match search.tenants.as_deref() {
        None => ("AND ?2 IS NULL ", None),
        Some([one]) => ("AND tenant = ?2 ", Some(one.clone())),
        Some(many) => (
            "AND tenant IN (SELECT value FROM json_each(?2)) ",
            Some(serde_json::to_string(many).context("tenant list")?),
        ),
    };
    // A plain equality, so that a rare transport is read from its index
    // (`?9 IS NULL OR …` would make SQLite walk every newer row).
    let transport = match search.transport {
        Some(_) => "AND transport = ?9 ",
        None => "AND ?9 IS NULL ",
    };
    let status = super::status_clause(search.status);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM messages WHERE {status}{tenant}\
         AND (?3 IS NULL OR created_at >= ?3) AND (?4 IS NULL OR created_at < ?4) {recipient}\
         {transport}AND (?7 IS NULL OR id < ?7) ORDER BY id DESC LIMIT ?8"
    )))
    .bind(search.status.map(Status::as_str))
    .bind(tenants)
    .bind(search.since.map(ms))
    .bind(search.until.map(ms))
    .bind(lo)
    .bind(hi)
    .bind(search.before.map(|id| id.to_string()))
    .bind(i64::from(search.limit.max(1)))
    .bind(&search.transport)
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

/// The last outcome named `outcome` of `transport`: its id, answer and time.
async fn last(
    pool: &SqlitePool,
    transport: &str,
    outcome: &str,
) -> Result<Option<(i64, Option<String>, OffsetDateTime)>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(last_outcome(outcome, "?")))
        .bind(transport)
        .fetch_optional(pool)
        .await
        .context("reading a transport's last outcome")?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some((
        row.try_get("id").context("id")?,
        row.try_get("answer").context("answer")?,
        from_ms(row.try_get("finished_at").context("finished_at")?),
    )))
}

/// Each transport's last delivery, last failure and failures since: a few
/// index lookups per transport, whatever the history's length.
pub(super) async fn transport_health(
    pool: &SqlitePool,
    transports: &[String],
) -> Result<Vec<TransportHealth>, StoreError> {
    let mut health = Vec::with_capacity(transports.len());
    for transport in transports {
        let mut h = TransportHealth {
            transport: transport.clone(),
            ..TransportHealth::default()
        };
        let sent = last(pool, transport, "sent").await?;
        let mut failure = None;
        for outcome in FAILURES {
            if let Some(found) = last(pool, transport, outcome).await?
                && failure.as_ref().is_none_or(|(id, _, _)| found.0 > *id)
            {
                failure = Some(found);
            }
        }
        let since = sent.as_ref().map_or(0, |(id, _, _)| *id);
        if let Some((_, answer, at)) = sent {
            h.add("sent", answer, at);
        }
        if let Some((_, answer, at)) = failure {
            h.add("failed", answer, at);
        }
        let count: i64 = sqlx::query_scalar(FAILURES_SINCE)
            .bind(transport)
            .bind(since)
            .fetch_one(pool)
            .await
            .context("counting a transport's failures")?;
        h.consecutive_failures = u64::try_from(count).unwrap_or_default();
        health.push(h);
    }
    Ok(health)
}

/// Failures of a transport after a given attempt row.
const FAILURES_SINCE: &str =
    "SELECT count(*) FROM attempts WHERE transport = ? AND id > ? AND outcome <> 'sent'";
