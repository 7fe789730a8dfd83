//! Storing the new messages of one commit group with one `INSERT` instead of
//! one each: every statement is a round trip to the server, which the writer
//! waits for before sending the next. A message whose idempotency key is
//! already taken (by a stored message, or by one earlier in the group) takes
//! the one-by-one path afterwards, which answers it exactly as before: a
//! repeat, or a takeover of an expired key.

use std::collections::HashSet;

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::writer::{enqueue, lease_of};
use crate::queue::{Enqueued, Lease, NewJob, Status};

/// Stores `jobs` in order; one answer each.
pub(super) async fn insert_all(
    conn: &mut PgConnection,
    jobs: &[&NewJob],
) -> anyhow::Result<Vec<Enqueued>> {
    let leases: Vec<_> = jobs.iter().map(|&job| lease_of(job)).collect();
    let inserted = insert_free(conn, jobs, &leases).await?;
    let mut answers = Vec::with_capacity(jobs.len());
    for (&job, lease) in jobs.iter().zip(leases) {
        let answer = if inserted.contains(&job.message.id) {
            match lease {
                Some(lease) => Enqueued::Claimed(lease),
                None => Enqueued::Created(job.message.id),
            }
        } else {
            enqueue(conn, job).await?
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// Inserts every job whose key is free, in one statement; the ids inserted.
async fn insert_free(
    conn: &mut PgConnection,
    jobs: &[&NewJob],
    leases: &[Option<Lease>],
) -> anyhow::Result<HashSet<Uuid>> {
    let mut columns = Columns::default();
    for (&job, lease) in jobs.iter().zip(leases) {
        columns.push(job, *lease)?;
    }
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO messages (id, tenant, status, attempts, claims, transport, message, idempotency_key, \
         created_at, age_from, updated_at, next_attempt_at, lease_until) \
         SELECT id, tenant, status, attempts, attempts, transport, message::jsonb, idempotency_key, \
                now, now, now, now, lease_until \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], \
                     $7::text[], $8::timestamptz[], $9::timestamptz[]) \
              AS n (id, tenant, status, attempts, transport, message, idempotency_key, now, lease_until) \
         ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING id",
    )
    .bind(columns.id)
    .bind(columns.tenant)
    .bind(columns.status)
    .bind(columns.attempts)
    .bind(columns.transport)
    .bind(columns.message)
    .bind(columns.idempotency_key)
    .bind(columns.now)
    .bind(columns.lease_until)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().collect())
}

/// The new rows, column by column (one array parameter each).
#[derive(Default)]
struct Columns {
    id: Vec<Uuid>,
    tenant: Vec<String>,
    status: Vec<&'static str>,
    attempts: Vec<i32>,
    transport: Vec<String>,
    message: Vec<String>,
    idempotency_key: Vec<Option<String>>,
    now: Vec<OffsetDateTime>,
    lease_until: Vec<Option<OffsetDateTime>>,
}

impl Columns {
    fn push(&mut self, job: &NewJob, lease: Option<Lease>) -> anyhow::Result<()> {
        let (status, attempts) = match lease {
            Some(_) => (Status::Sending, 1),
            None => (Status::Queued, 0),
        };
        self.id.push(job.message.id);
        self.tenant.push(job.message.tenant.clone());
        self.status.push(status.as_str());
        self.attempts.push(attempts);
        self.transport.push(job.transport.clone());
        self.message.push(serde_json::to_string(&job.message)?);
        self.idempotency_key.push(job.idempotency_key.clone());
        self.now.push(job.now);
        self.lease_until.push(lease.map(|l| l.until));
        Ok(())
    }
}
