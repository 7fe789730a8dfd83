//! Storing the new messages of one commit group with a few statements instead
//! of two or three each. One lookup finds the stored holders of all
//! the group's idempotency keys; the rows go in with multi-row `INSERT`s,
//! their recipients with one more. The answers are those of one insert after
//! the other: a key repeated within the group is a repeat of its first use,
//! and a key whose holder is older than the idempotency window is taken over.

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, ToSql};
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
/// A group of 31 new messages takes one statement per table instead of
/// seven (16 + 4 + 4 + 4 + 1 + 1 + 1); four shapes, each prepared once and
/// cached.
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
pub(super) fn insert_all<'a>(
    conn: &Connection,
    group: &[&'a Enqueue],
) -> anyhow::Result<Vec<Enqueued>> {
    let mut holders = stored_holders(conn, group)?;
    let mut cells = Cells::read(conn, group.iter().map(|n| n.job.limits.as_slice()))?;
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
                    None => release(conn, tenant, key)?,
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
    cells.write(conn)?;
    insert_rows(conn, &rows)?;
    insert_recipients(conn, &rows)?;
    Ok(answers)
}

/// The stored holders of the keys `group` carries, in one statement.
fn stored_holders<'a>(
    conn: &Connection,
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
    let mut statement = conn.prepare_cached(
        "SELECT json_extract(k.value, '$[0]') AS tenant, json_extract(k.value, '$[1]') AS key, \
         m.id, m.created_at FROM json_each(?) AS k JOIN messages AS m \
         ON m.tenant = json_extract(k.value, '$[0]') AND m.idempotency_key = json_extract(k.value, '$[1]')",
    )?;
    let mut rows = statement.query([serde_json::to_string(&keys)?])?;
    while let Some(row) = rows.next()? {
        let (tenant, key): (String, String) = (row.get("tenant")?, row.get("key")?);
        let id: String = row.get("id")?;
        // Borrow the job's own strings, so the map outlives the rows.
        let Some(&slot) = keys.iter().find(|(t, k)| *t == tenant && *k == key) else {
            continue;
        };
        let holder = Holder {
            id: Uuid::parse_str(&id)?,
            created_ms: row.get("created_at")?,
            pending: None,
        };
        holders.insert(slot, holder);
    }
    Ok(holders)
}

fn release(conn: &Connection, tenant: &str, key: &str) -> anyhow::Result<()> {
    conn.prepare_cached(
        "UPDATE messages SET idempotency_key = NULL WHERE tenant = ? AND idempotency_key = ?",
    )?
    .execute((tenant, key))?;
    Ok(())
}

/// Inserts `rows`, a statement per table for every 64 of them.
fn insert_rows(conn: &Connection, rows: &[NewRow<'_>]) -> anyhow::Result<()> {
    for chunk in rows.chunks(SHAPES[SHAPES.len() - 1]) {
        insert_chunk(conn, chunk)?;
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

/// Runs the statement of `sql` with `values` bound in order; the parameters
/// after them (the rows a shape leaves unfilled) are `NULL`.
fn execute_padded(conn: &Connection, sql: &str, values: &[&dyn ToSql]) -> anyhow::Result<()> {
    // The cache hands statements out with no value bound.
    let mut statement = conn.prepare_cached(sql)?;
    for (i, value) in values.iter().enumerate() {
        statement.raw_bind_parameter(i + 1, value)?;
    }
    statement.raw_execute()?;
    Ok(())
}

/// The values of a new row that the job does not hold as they are bound.
struct Bound {
    id: String,
    status: &'static str,
    now: i64,
    attempts: i64,
    lease_until: Option<i64>,
}

fn insert_chunk(conn: &Connection, rows: &[NewRow<'_>]) -> anyhow::Result<()> {
    let shape = shape(rows.len());
    let bound: Vec<Bound> = rows
        .iter()
        .map(|row| {
            let (status, attempts) = match row.lease {
                Some(_) => (Status::Sending, 1),
                None => (Status::Queued, 0),
            };
            Bound {
                id: row.new.job.message.id.to_string(),
                status: status.as_str(),
                now: ms(row.new.job.now),
                attempts,
                lease_until: row.lease.map(|l| ms(l.until)),
            }
        })
        .collect();
    let mut params: Vec<&dyn ToSql> = Vec::with_capacity(rows.len() * WIDTH);
    for (row, b) in rows.iter().zip(&bound) {
        let job = &row.new.job;
        params.extend([
            &b.id as &dyn ToSql,
            &job.message.tenant,
            &b.status,
            &b.attempts,
            &b.attempts,
            &job.transport,
            &row.key,
            &b.now,
            &b.now,
            &b.now,
            &b.now,
            &b.lease_until,
            &job.origin.realm,
            &job.origin.kind,
            &job.origin.traceparent,
        ]);
    }
    execute_padded(conn, &STATEMENTS[shape].0, &params)?;
    let mut params: Vec<&dyn ToSql> = Vec::with_capacity(rows.len() * 2);
    for (row, b) in rows.iter().zip(&bound) {
        params.push(&b.id);
        params.push(&row.new.stored);
    }
    // The bodies, in a table of their own (written once; claims and
    // outcomes change only the status rows).
    execute_padded(conn, &STATEMENTS[shape].1, &params)
}

impl ToSql for Stored {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Stored::Text(text) => ToSqlOutput::from(text.as_str()),
            Stored::Packed(packed) => ToSqlOutput::from(packed.as_slice()),
        })
    }
}

/// Every recipient of the new rows, in one statement.
fn insert_recipients(conn: &Connection, rows: &[NewRow<'_>]) -> anyhow::Result<()> {
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
    conn.prepare_cached(
        "INSERT INTO recipients (message_id, address) \
         SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)",
    )?
    .execute([serde_json::to_string(&pairs)?])?;
    Ok(())
}

#[cfg(test)]
#[path = "accept_tests.rs"]
mod tests;
