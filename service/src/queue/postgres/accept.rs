//! Storing the new messages of one commit group, their bodies and their
//! recipients with one statement instead of three each: every statement is
//! a round trip to the server, which the writer waits for before sending the
//! next. A message whose idempotency key is already taken (by a stored
//! message, or by one earlier in the group) takes the one-by-one path
//! afterwards, which answers it exactly as before: a repeat, or a takeover
//! of an expired key.

use std::collections::HashSet;

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::writer::enqueue;
use crate::queue::batch::{self, Enqueue};
use crate::queue::history::recipient_addresses;
use crate::queue::{Enqueued, Lease, Status};

/// Stores `group` in order; one answer each.
pub(super) async fn insert_all(
    conn: &mut PgConnection,
    group: &[&Enqueue],
) -> anyhow::Result<Vec<Enqueued>> {
    if group.is_empty() {
        return Ok(Vec::new());
    }
    let leases: Vec<_> = group.iter().map(|n| batch::first_lease(&n.job)).collect();
    let inserted = insert_free(conn, group, &leases).await?;
    let mut answers = Vec::with_capacity(group.len());
    for (&new, lease) in group.iter().zip(leases) {
        let id = new.job.message.id;
        let answer = match lease {
            _ if !inserted.contains(&id) => enqueue(conn, &new.job, &new.stored).await?,
            Some(lease) => Enqueued::Claimed(lease),
            None => Enqueued::Created(id),
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// Inserts every message whose key is free, with its body and recipients, in
/// one statement; the ids inserted.
async fn insert_free(
    conn: &mut PgConnection,
    group: &[&Enqueue],
    leases: &[Option<Lease>],
) -> anyhow::Result<HashSet<Uuid>> {
    let mut columns = Columns::default();
    let mut keys = HashSet::new();
    for (&new, lease) in group.iter().zip(leases) {
        let job = &new.job;
        // A key's later uses in the group wait for the one-by-one path, so
        // that its first use is the one stored.
        if let Some(key) = job.idempotency_key.as_deref()
            && !keys.insert((job.message.tenant.as_str(), key))
        {
            continue;
        }
        columns.push(new, *lease);
    }
    // Bodies and recipients go into their own tables from the same arrays,
    // for the rows the insert kept (their foreign keys are checked at the
    // statement's end).
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "WITH n AS ( \
           SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], \
                     $7::text[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[], $12::text[], \
                     $13::bytea[]) \
              AS n (id, tenant, status, attempts, transport, body, idempotency_key, now, lease_until, \
                    realm, kind, traceparent, packed)), \
         kept AS ( \
           INSERT INTO messages (id, tenant, status, attempts, claims, transport, idempotency_key, \
             created_at, age_from, updated_at, next_attempt_at, lease_until, realm, kind, traceparent) \
           SELECT id, tenant, status, attempts, attempts, transport, idempotency_key, \
                  now, now, now, now, lease_until, realm, kind, traceparent FROM n \
           ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
           RETURNING id), \
         body AS ( \
           INSERT INTO bodies (message_id, body, packed) SELECT n.id, n.body, n.packed FROM n JOIN kept USING (id)), \
         addressed AS ( \
           INSERT INTO recipients (message_id, address) \
           SELECT r.id, r.address FROM UNNEST($14::uuid[], $15::text[]) AS r (id, address) \
           JOIN kept USING (id)) \
         SELECT id FROM kept",
    )
    .bind(columns.id)
    .bind(columns.tenant)
    .bind(columns.status)
    .bind(columns.attempts)
    .bind(columns.transport)
    .bind(columns.body)
    .bind(columns.idempotency_key)
    .bind(columns.now)
    .bind(columns.lease_until)
    .bind(columns.realm)
    .bind(columns.kind)
    .bind(columns.traceparent)
    .bind(columns.packed)
    .bind(columns.recipient_of)
    .bind(columns.address)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().collect())
}

/// The new rows, column by column (one array parameter each).
#[derive(Default)]
struct Columns<'a> {
    id: Vec<Uuid>,
    tenant: Vec<&'a str>,
    status: Vec<&'static str>,
    attempts: Vec<i32>,
    transport: Vec<&'a str>,
    body: Vec<Option<&'a str>>,
    packed: Vec<Option<&'a [u8]>>,
    idempotency_key: Vec<Option<&'a str>>,
    now: Vec<OffsetDateTime>,
    lease_until: Vec<Option<OffsetDateTime>>,
    realm: Vec<Option<&'a str>>,
    kind: Vec<Option<&'a str>>,
    traceparent: Vec<Option<&'a str>>,
    /// Every recipient address (lower case), beside its message's id.
    recipient_of: Vec<Uuid>,
    address: Vec<String>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, new: &'a Enqueue, lease: Option<Lease>) {
        let job = &new.job;
        let (status, attempts) = match lease {
            Some(_) => (Status::Sending, 1),
            None => (Status::Queued, 0),
        };
        self.id.push(job.message.id);
        self.tenant.push(&job.message.tenant);
        self.status.push(status.as_str());
        self.attempts.push(attempts);
        self.transport.push(&job.transport);
        self.body.push(new.stored.text());
        self.packed.push(new.stored.packed());
        self.idempotency_key.push(job.idempotency_key.as_deref());
        self.now.push(job.now);
        self.lease_until.push(lease.map(|l| l.until));
        self.realm.push(job.origin.realm.as_deref());
        self.kind.push(job.origin.kind.as_deref());
        self.traceparent.push(job.origin.traceparent.as_deref());
        for address in recipient_addresses(&job.message) {
            self.recipient_of.push(job.message.id);
            self.address.push(address);
        }
    }
}
