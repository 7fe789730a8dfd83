//! Storing the new messages of one commit group with a few statements instead
//! of two each: every statement is a round trip to sqlx's SQLite thread (two
//! thread wake-ups), paid per message before. The answers are the same as one
//! insert after the other: a key repeated within the group is a repeat of its
//! first use, and a key whose holder is older than the idempotency window is
//! taken over.

use std::collections::HashMap;

use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use super::ms;
use crate::queue::batch::{self, IDEMPOTENCY_WINDOW};
use crate::queue::{Enqueued, Lease, NewJob, Status};

/// Rows per `INSERT`, largest first: a few statement shapes, each prepared
/// once and cached by sqlx, cover any group size.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// The columns one new row binds, in order.
const COLUMNS: &str = "id, tenant, status, attempts, claims, transport, message, idempotency_key, \
                       created_at, age_from, updated_at, next_attempt_at, lease_until";
const PLACEHOLDERS: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Who holds an idempotency key: a stored message, or one of this group.
#[derive(Clone, Copy)]
struct Holder {
    id: Uuid,
    created_ms: i64,
    /// Its place among the rows about to be inserted, if it is one of them.
    pending: Option<usize>,
}

/// A row to insert, with the key it keeps (an expired key is let go of).
struct NewRow<'a> {
    job: &'a NewJob,
    key: Option<&'a str>,
    lease: Option<Lease>,
}

/// Stores `jobs` in order; one answer each.
pub(super) async fn insert_all<'a>(
    conn: &mut SqliteConnection,
    jobs: &[&'a NewJob],
) -> anyhow::Result<Vec<Enqueued>> {
    let mut holders = stored_holders(conn, jobs).await?;
    let window_ms = i64::try_from(IDEMPOTENCY_WINDOW.as_millis()).unwrap_or(i64::MAX);
    let mut answers = Vec::with_capacity(jobs.len());
    let mut rows: Vec<NewRow<'a>> = Vec::with_capacity(jobs.len());
    for &job in jobs {
        let now = ms(job.now);
        let tenant = job.message.tenant.as_str();
        let key = job.idempotency_key.as_deref();
        if let Some(key) = key {
            if let Some(holder) = holders.get(&(tenant, key)) {
                if holder.created_ms > now - window_ms {
                    answers.push(Enqueued::Duplicate(holder.id));
                    continue;
                }
                // An expired key may be used again: the old row lets go of it.
                match holder.pending {
                    Some(i) => rows[i].key = None,
                    None => release(conn, tenant, key).await?,
                }
            }
            let holder = Holder {
                id: job.message.id,
                created_ms: now,
                pending: Some(rows.len()),
            };
            holders.insert((tenant, key), holder);
        }
        let lease = lease_of(job);
        answers.push(match lease {
            Some(lease) => Enqueued::Claimed(lease),
            None => Enqueued::Created(job.message.id),
        });
        rows.push(NewRow { job, key, lease });
    }
    insert_rows(conn, &rows).await?;
    Ok(answers)
}

/// A message stored already claimed (`?wait=true`) gets its first lease.
fn lease_of(job: &NewJob) -> Option<Lease> {
    job.lease.map(|lease| Lease {
        id: job.message.id,
        attempt: 1,
        claim: 1,
        until: batch::current(job.now) + lease,
    })
}

/// The stored holders of the keys `jobs` carry, in one statement.
async fn stored_holders<'a>(
    conn: &mut SqliteConnection,
    jobs: &[&'a NewJob],
) -> anyhow::Result<HashMap<(&'a str, &'a str), Holder>> {
    let keys: Vec<(&str, &str)> = jobs
        .iter()
        .filter_map(|j| Some((j.message.tenant.as_str(), j.idempotency_key.as_deref()?)))
        .collect();
    let mut holders = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(holders);
    }
    let rows = sqlx::query(
        "SELECT json_extract(k.value, '$[0]') AS tenant, json_extract(k.value, '$[1]') AS key, \
         m.id, m.created_at FROM json_each(?) AS k JOIN messages AS m \
         ON m.tenant = json_extract(k.value, '$[0]') AND m.idempotency_key = json_extract(k.value, '$[1]')",
    )
    .bind(serde_json::to_string(&keys)?)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let (tenant, key): (String, String) = (row.try_get("tenant")?, row.try_get("key")?);
        let id: String = row.try_get("id")?;
        // Borrow the job's own strings, so the map outlives the rows.
        let Some(&slot) = keys.iter().find(|(t, k)| *t == tenant && *k == key) else {
            continue;
        };
        let holder = Holder {
            id: Uuid::parse_str(&id)?,
            created_ms: row.try_get("created_at")?,
            pending: None,
        };
        holders.insert(slot, holder);
    }
    Ok(holders)
}

async fn release(conn: &mut SqliteConnection, tenant: &str, key: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE messages SET idempotency_key = NULL WHERE tenant = ? AND idempotency_key = ?",
    )
    .bind(tenant)
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts `rows` with as few statements as [`CHUNKS`] allow.
async fn insert_rows(conn: &mut SqliteConnection, mut rows: &[NewRow<'_>]) -> anyhow::Result<()> {
    for size in CHUNKS {
        while rows.len() >= size {
            let (chunk, rest) = rows.split_at(size);
            insert_chunk(conn, chunk).await?;
            rows = rest;
        }
    }
    Ok(())
}

async fn insert_chunk(conn: &mut SqliteConnection, rows: &[NewRow<'_>]) -> anyhow::Result<()> {
    let values = vec![PLACEHOLDERS; rows.len()].join(", ");
    let sql = format!("INSERT INTO messages ({COLUMNS}) VALUES {values}");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for row in rows {
        let (job, message) = (row.job, &row.job.message);
        let now = ms(job.now);
        let (status, attempts) = match row.lease {
            Some(_) => (Status::Sending, 1),
            None => (Status::Queued, 0),
        };
        query = query
            .bind(message.id.to_string())
            .bind(&message.tenant)
            .bind(status.as_str())
            .bind(attempts)
            .bind(attempts)
            .bind(&job.transport)
            .bind(serde_json::to_string(message)?)
            .bind(row.key)
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(row.lease.map(|l| ms(l.until)));
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
#[path = "accept_tests.rs"]
mod tests;
