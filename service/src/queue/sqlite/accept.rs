//! Storing the new messages of one commit group with a few statements instead
//! of two or three each: every statement is a round trip to sqlx's SQLite
//! thread (two thread wake-ups). One lookup finds the stored holders of all
//! the group's idempotency keys; the rows go in with multi-row `INSERT`s,
//! their recipients with one more. The answers are those of one insert after
//! the other: a key repeated within the group is a repeat of its first use,
//! and a key whose holder is older than the idempotency window is taken over.

use std::collections::HashMap;
use std::sync::LazyLock;

use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Row, Sqlite, SqliteConnection};
use uuid::Uuid;

use super::limits::Cells;
use super::ms;
use crate::queue::batch::{self, Enqueue, IDEMPOTENCY_WINDOW};
use crate::queue::history::recipient_addresses;
use crate::queue::packing::Stored;
use crate::queue::{Enqueued, Lease, Status};

/// Rows per `INSERT` statement, smallest first: a chunk of up to 64 rows
/// goes in one statement of the smallest shape that holds it, the rows it
/// does not fill bound as `NULL` and left out by the statement's `WHERE`.
/// Every statement is a round trip to sqlx's SQLite thread, so a group of
/// 31 new messages takes one statement per table instead of seven (16 + 4 +
/// 4 + 4 + 1 + 1 + 1); four shapes, each prepared once and cached by sqlx.
const SHAPES: [usize; 4] = [8, 16, 32, 64];

/// The columns one new row binds, in order.
const COLUMNS: &str = "id, tenant, status, attempts, claims, transport, idempotency_key, \
                       created_at, age_from, updated_at, next_attempt_at, lease_until, realm, kind, traceparent";
/// How many values one row of [`COLUMNS`] binds.
const WIDTH: usize = 15;

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
    new: &'a Enqueue,
    key: Option<&'a str>,
    lease: Option<Lease>,
}

/// Stores `group` in order; one answer each.
pub(super) async fn insert_all<'a>(
    conn: &mut SqliteConnection,
    group: &[&'a Enqueue],
) -> anyhow::Result<Vec<Enqueued>> {
    let mut holders = stored_holders(conn, group).await?;
    let mut cells = Cells::read(conn, group.iter().map(|n| n.job.limits.as_slice())).await?;
    let window_ms = i64::try_from(IDEMPOTENCY_WINDOW.as_millis()).unwrap_or(i64::MAX);
    let mut answers = Vec::with_capacity(group.len());
    let mut rows: Vec<NewRow<'a>> = Vec::with_capacity(group.len());
    for &new in group {
        let job = &new.job;
        let now = ms(job.now);
        let tenant = job.message.tenant.as_str();
        let key = job.idempotency_key.as_deref();
        if let Some(key) = key
            && let Some(holder) = holders.get(&(tenant, key))
            && holder.created_ms > now - window_ms
        {
            answers.push(Enqueued::Duplicate(holder.id));
            continue;
        }
        // A repeat is answered above, never limited; a refused message
        // stores nothing and keeps nothing from an older holder of its key.
        if let Some((wait, index)) = cells.spend(&job.limits, job.now) {
            answers.push(Enqueued::Limited { wait, index });
            continue;
        }
        if let Some(key) = key {
            if let Some(holder) = holders.get(&(tenant, key)) {
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
        let lease = batch::first_lease(job);
        answers.push(match lease {
            Some(lease) => Enqueued::Claimed(lease),
            None => Enqueued::Created(job.message.id),
        });
        rows.push(NewRow { new, key, lease });
    }
    cells.write(conn).await?;
    insert_rows(conn, &rows).await?;
    insert_recipients(conn, &rows).await?;
    Ok(answers)
}

/// The stored holders of the keys `group` carries, in one statement.
async fn stored_holders<'a>(
    conn: &mut SqliteConnection,
    group: &[&'a Enqueue],
) -> anyhow::Result<HashMap<(&'a str, &'a str), Holder>> {
    let keys: Vec<(&str, &str)> = group
        .iter()
        .filter_map(|n| {
            Some((
                n.job.message.tenant.as_str(),
                n.job.idempotency_key.as_deref()?,
            ))
        })
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

/// Inserts `rows`, a statement per table for every 64 of them.
async fn insert_rows(conn: &mut SqliteConnection, rows: &[NewRow<'_>]) -> anyhow::Result<()> {
    for chunk in rows.chunks(SHAPES[SHAPES.len() - 1]) {
        insert_chunk(conn, chunk).await?;
    }
    Ok(())
}

/// The smallest statement shape that holds `rows` rows (at most the largest),
/// as its place in [`SHAPES`].
fn shape(rows: usize) -> usize {
    SHAPES
        .iter()
        .position(|&size| size >= rows)
        .unwrap_or(SHAPES.len() - 1)
}

/// The `INSERT`s of every shape, `(messages, bodies)`, built once.
static STATEMENTS: LazyLock<[(String, String); SHAPES.len()]> = LazyLock::new(|| {
    SHAPES.map(|rows| {
        (
            padded_insert("messages", COLUMNS, WIDTH, rows),
            padded_insert("bodies", "message_id, message", 2, rows),
        )
    })
});

/// `INSERT INTO table (columns)` of `rows` rows of `width` parameters each,
/// keeping only the rows whose first value is not `NULL`.
fn padded_insert(table: &str, columns: &str, width: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    let values = vec![row.as_str(); rows].join(", ");
    format!(
        "INSERT INTO {table} ({columns}) SELECT * FROM (VALUES {values}) WHERE column1 IS NOT NULL"
    )
}

/// `query` with `NULL` bound for the values of the rows a shape of `size`
/// rows leaves unfilled after `filled`, each `width` values wide.
fn pad<'q>(
    mut query: Query<'q, Sqlite, SqliteArguments>,
    filled: usize,
    size: usize,
    width: usize,
) -> Query<'q, Sqlite, SqliteArguments> {
    for _ in filled * width..size * width {
        query = query.bind(None::<&str>);
    }
    query
}

async fn insert_chunk(conn: &mut SqliteConnection, rows: &[NewRow<'_>]) -> anyhow::Result<()> {
    let shape = shape(rows.len());
    let mut query = sqlx::query(STATEMENTS[shape].0.as_str());
    for row in rows {
        let job = &row.new.job;
        let now = ms(job.now);
        let (status, attempts) = match row.lease {
            Some(_) => (Status::Sending, 1),
            None => (Status::Queued, 0),
        };
        query = query
            .bind(job.message.id.to_string())
            .bind(&job.message.tenant)
            .bind(status.as_str())
            .bind(attempts)
            .bind(attempts)
            .bind(&job.transport)
            .bind(row.key)
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(row.lease.map(|l| ms(l.until)))
            .bind(job.origin.realm.as_deref())
            .bind(job.origin.kind.as_deref())
            .bind(job.origin.traceparent.as_deref());
    }
    pad(query, rows.len(), SHAPES[shape], WIDTH)
        .execute(&mut *conn)
        .await?;
    insert_bodies(conn, rows, shape).await
}

/// The bodies of a chunk of new rows, in a table of their own (written once;
/// claims and outcomes change only the status rows).
async fn insert_bodies(
    conn: &mut SqliteConnection,
    rows: &[NewRow<'_>],
    shape: usize,
) -> anyhow::Result<()> {
    let mut query = sqlx::query(STATEMENTS[shape].1.as_str());
    for row in rows {
        query = query.bind(row.new.job.message.id.to_string());
        query = match &row.new.stored {
            Stored::Text(text) => query.bind(text.as_str()),
            Stored::Packed(packed) => query.bind(packed.as_slice()),
        };
    }
    pad(query, rows.len(), SHAPES[shape], 2)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Every recipient of the new rows, in one statement.
async fn insert_recipients(conn: &mut SqliteConnection, rows: &[NewRow<'_>]) -> anyhow::Result<()> {
    let pairs: Vec<(String, String)> = rows
        .iter()
        .flat_map(|row| {
            let id = row.new.job.message.id.to_string();
            let addresses = recipient_addresses(&row.new.job.message);
            addresses.into_iter().map(move |a| (id.clone(), a))
        })
        .collect();
    if pairs.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO recipients (message_id, address) \
         SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)",
    )
    .bind(serde_json::to_string(&pairs)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
#[path = "accept_tests.rs"]
mod tests;
