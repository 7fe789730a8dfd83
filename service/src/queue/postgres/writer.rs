//! The writers of the PostgreSQL store: a few tasks, each taking whatever is
//! waiting and applying it in one transaction (group commit, see
//! [`crate::queue::batch`]), so that many requests share one commit while
//! groups still overlap on the server. A failing statement aborts the whole
//! transaction in PostgreSQL; the group is rolled back and answered as failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc};
use uuid::Uuid;

use super::growth::Growth;
use super::{accept, delivered, limits};
use crate::queue::batch::{
    self, Answer, Enqueue, Health, IDEMPOTENCY_WINDOW, MAX_BATCH, Op, Write,
};
use crate::queue::grouping::{self, Delivered, GroupWrites};
use crate::queue::lane;
use crate::queue::packing::Stored;
use crate::queue::sealing::{self, Keyring};
use crate::queue::unopened::{self, SetAside};
use crate::queue::{ClaimedJob, Enqueued, Lane, Lease, NewJob, Outcome, OutcomeUnknown, Status};

/// Groups in flight at once per replica: two, so that one group's commit
/// waits on the disk while the next one is written. Four made groups
/// smaller and had them compete for the same index pages: measured, the
/// server's CPU per message was a fifth higher, for no more accepts at 64
/// connections and fewer at 16 and 128; one could not keep both cores busy.
pub(super) const WRITERS: usize = 2;

/// Longest a group may take. A connection whose packets are lost (a network
/// partition, a host gone without a reset) hangs until TCP gives up, a
/// quarter of an hour later; every request of the group would wait as long,
/// and a stop could not complete. Beyond this bound the group is answered:
/// as not stored if its `COMMIT` was not sent yet (the server cannot commit
/// without it; the connection is dropped, and with it the transaction), as
/// of unknown outcome (504) once it was.
const GROUP_DEADLINE: Duration = Duration::from_secs(10);

/// Applies waiting writes in groups until every sender is gone.
pub(super) async fn run(
    pool: PgPool,
    inbox: Arc<Mutex<mpsc::Receiver<Write>>>,
    health: Health,
    keyring: Option<Arc<Keyring>>,
    cells: Arc<Growth>,
) {
    let mut waiting = Vec::with_capacity(MAX_BATCH);
    loop {
        let taken = inbox.lock().await.recv_many(&mut waiting, MAX_BATCH).await;
        if taken == 0 {
            return;
        }
        let (ops, replies) = batch::split(&mut waiting);
        let result = match pool.acquire().await {
            Ok(mut conn) => {
                let committing = AtomicBool::new(false);
                let applied = tokio::time::timeout(
                    GROUP_DEADLINE,
                    group(
                        &pool,
                        &mut conn,
                        &ops,
                        keyring.as_deref(),
                        &cells,
                        &committing,
                    ),
                )
                .await;
                applied.unwrap_or_else(|_| {
                    // Closed when dropped, not handed back to the pool: its
                    // check of a returning connection would wait for an
                    // answer without bound, holding the slot.
                    conn.close_on_drop();
                    Err(overdue(committing.load(Ordering::Relaxed)))
                })
            }
            Err(e) => Err(anyhow::Error::new(e).context("beginning a transaction")),
        };
        batch::answer(&health, &ops, replies, result);
    }
}

/// Why a group that took longer than [`GROUP_DEADLINE`] was answered so.
fn overdue(committing: bool) -> anyhow::Error {
    let why = format!("the database did not answer within {GROUP_DEADLINE:?}");
    tracing::warn!(committing, "{why}: the group's callers are answered");
    match committing {
        false => anyhow::anyhow!(why),
        true => anyhow::Error::new(OutcomeUnknown).context(why),
    }
}

async fn group(
    pool: &PgPool,
    conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>,
    ops: &[Op],
    keyring: Option<&Keyring>,
    cells: &Arc<Growth>,
    committing: &AtomicBool,
) -> anyhow::Result<Vec<Answer>> {
    let mut tx = sqlx::Connection::begin(&mut **conn)
        .await
        .context("beginning a transaction")?;
    let writes = &mut Writes {
        conn: &mut tx,
        keyring,
        created: 0,
    };
    let answers = grouping::apply_all(writes, ops).await?;
    let created = writes.created;
    committing.store(true, Ordering::Relaxed);
    match tx.commit().await {
        Ok(()) => {
            // Flow-limit cells are prepared statements' table too (see
            // `growth`); a cell per address.
            cells.note(pool, created);
            Ok(answers)
        }
        Err(e) => settle(pool, answers, e).await,
    }
}

/// A group's writes on one PostgreSQL transaction.
struct Writes<'a> {
    conn: &'a mut PgConnection,
    keyring: Option<&'a Keyring>,
    /// Flow-limit cells this group created.
    created: u64,
}

impl GroupWrites for Writes<'_> {
    async fn insert_all(&mut self, new: &[&Enqueue]) -> anyhow::Result<Vec<Enqueued>> {
        let refused = limits::check_new(self.conn, new, &mut self.created).await?;
        let admitted: Vec<&Enqueue> = (new.iter().zip(&refused))
            .filter(|(_, refused)| refused.is_none())
            .map(|(new, _)| *new)
            .collect();
        let mut stored = accept::insert_all(self.conn, &admitted).await?.into_iter();
        refused
            .into_iter()
            .map(|refused| match refused {
                Some(limited) => Ok(limited),
                None => stored.next().context("no answer for a new message"),
            })
            .collect()
    }

    async fn record_all(&mut self, sent: &[Delivered<'_>]) -> anyhow::Result<Vec<bool>> {
        delivered::record_all(self.conn, sent).await
    }

    async fn apply(&mut self, op: &Op) -> anyhow::Result<Answer> {
        apply(self.conn, op, self.keyring).await
    }
}

/// A `COMMIT` that failed on the way (connection reset, server stopped) may
/// have happened on the server all the same. Its new messages decide: all of
/// them there, the group is committed; none there (asked twice), it is not;
/// the server out of reach, nobody can know, and callers are told so
/// ([`OutcomeUnknown`]) rather than that nothing was stored. Claims and
/// outcomes alone need no answer: leases decide for them.
async fn settle(
    pool: &PgPool,
    answers: Vec<Answer>,
    error: sqlx::Error,
) -> anyhow::Result<Vec<Answer>> {
    let ids: Vec<Uuid> = answers
        .iter()
        .filter_map(|a| match a {
            Answer::Enqueued(Enqueued::Created(id)) => Some(*id),
            Answer::Enqueued(Enqueued::Claimed(lease)) => Some(lease.id),
            _ => None,
        })
        .collect();
    let failed = anyhow::Error::new(error).context("committing");
    if ids.is_empty() {
        return Err(failed);
    }
    for pause in [Duration::from_millis(200), Duration::from_secs(1)] {
        tokio::time::sleep(pause).await;
        let count = tokio::time::timeout(Duration::from_secs(3), stored(pool, &ids)).await;
        match count {
            Ok(Ok(n)) if n == ids.len() => {
                tracing::warn!(
                    count = n,
                    "a commit's answer was lost, but the messages are stored"
                );
                return Ok(answers);
            }
            Ok(Ok(0)) => continue,
            _ => break,
        }
    }
    match tokio::time::timeout(Duration::from_secs(3), stored(pool, &ids)).await {
        Ok(Ok(0)) => Err(failed),
        _ => Err(anyhow::Error::new(OutcomeUnknown).context(format!("{failed:#}"))),
    }
}

/// How many of `ids` are in the table.
async fn stored(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE id = ANY($1)")
        .bind(ids)
        .fetch_one(pool)
        .await?;
    Ok(usize::try_from(n).unwrap_or_default())
}

async fn apply(
    conn: &mut PgConnection,
    op: &Op,
    keyring: Option<&Keyring>,
) -> anyhow::Result<Answer> {
    Ok(match op {
        Op::Enqueue(new) => Answer::Enqueued(enqueue(conn, &new.job, &new.stored).await?),
        Op::Claim {
            now,
            lease,
            lane,
            limit,
            max_age,
        } => Answer::Claimed(claim(conn, *now, *lease, *lane, *limit, *max_age, keyring).await?),
        Op::Renew { lease, until } => Answer::Applied(renew(conn, lease, *until).await?),
        Op::Record {
            lease,
            outcome,
            now,
            ..
        } => Answer::Applied(record(conn, lease, outcome, *now).await?),
        Op::Probe { now } => {
            sqlx::query(
                "INSERT INTO store_health (id, probed_at) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
            )
            .bind(*now)
            .execute(&mut *conn)
            .await?;
            Answer::Probed
        }
    })
}

/// Inserts `job`, or finds the message that already holds its idempotency key.
pub(super) async fn enqueue(
    conn: &mut PgConnection,
    job: &NewJob,
    stored: &Stored,
) -> anyhow::Result<Enqueued> {
    // An expired key is let go of, then taken: two rounds suffice unless
    // other requests race for the same key.
    for _ in 0..3 {
        if let Some(done) = try_insert(conn, job, stored).await? {
            return Ok(done);
        }
    }
    anyhow::bail!("storing a message: its idempotency key kept changing hands")
}

/// One attempt at inserting `job`: `None` when its idempotency key was
/// taken by an expired row and let go of meanwhile (try again).
async fn try_insert(
    conn: &mut PgConnection,
    job: &NewJob,
    stored: &Stored,
) -> anyhow::Result<Option<Enqueued>> {
    let message = &job.message;
    let lease = batch::first_lease(job);
    let (status, attempts) = match lease {
        Some(_) => (Status::Sending, 1),
        None => (Status::Queued, 0),
    };
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO messages (id, tenant, status, attempts, claims, transport, idempotency_key, \
         created_at, age_from, updated_at, next_attempt_at, lease_until, realm, kind, traceparent) \
         VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $7, $7, $7, $8, $9, $10, $11) \
         ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING id",
    )
    .bind(message.id)
    .bind(&message.tenant)
    .bind(status.as_str())
    .bind(attempts)
    .bind(&job.transport)
    .bind(&job.idempotency_key)
    .bind(job.now)
    .bind(lease.map(|l| l.until))
    .bind(&job.origin.realm)
    .bind(&job.origin.kind)
    .bind(&job.origin.traceparent)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        sqlx::query("INSERT INTO bodies (message_id, body, packed) VALUES ($1, $2, $3)")
            .bind(message.id)
            .bind(stored.text())
            .bind(stored.packed())
            .execute(&mut *conn)
            .await?;
        let addresses = crate::queue::history::recipient_addresses(message);
        sqlx::query("INSERT INTO recipients (message_id, address) SELECT $1, unnest($2::text[])")
            .bind(message.id)
            .bind(addresses)
            .execute(&mut *conn)
            .await?;
        return Ok(Some(match lease {
            Some(lease) => Enqueued::Claimed(lease),
            None => Enqueued::Created(message.id),
        }));
    }
    // The key is taken: by a message of the last 24 hours (a repeat), or
    // by an older one, which lets go of it.
    let Some(key) = &job.idempotency_key else {
        anyhow::bail!("an insert without an idempotency key conflicted");
    };
    let existing = sqlx::query(
        "SELECT id, created_at FROM messages WHERE tenant = $1 AND idempotency_key = $2",
    )
    .bind(&message.tenant)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = existing else {
        return Ok(None);
    };
    let id: Uuid = row.try_get("id")?;
    let created: OffsetDateTime = row.try_get("created_at")?;
    if created > job.now - IDEMPOTENCY_WINDOW {
        return Ok(Some(Enqueued::Duplicate(id)));
    }
    sqlx::query(
        "UPDATE messages SET idempotency_key = NULL WHERE id = $1 AND idempotency_key = $2",
    )
    .bind(id)
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(None)
}

/// Claims up to `$3` due rows of one lane (`$1`: the lease's end, `$2`:
/// now, `$4`: leases ended before this are abandoned).
///
/// Only retention removes bodies, and only from `sent` and `suppressed`
/// messages, which are never due: every due row has one. Asking for it in
/// the selection made PostgreSQL hash-join the whole bodies table at each
/// claim; a row without one fails decoding and ends `failed` with the
/// reason.
///
/// The oldest due rows of each kind are read in order from the lane's
/// index (`messages_due` or `notices_due`: status, next_attempt_at; see
/// [`crate::queue::lane`]) and locked, then the oldest of those are
/// claimed (the others are unlocked at commit): one `OR` over the kinds
/// made PostgreSQL read every due row and sort them all, so each claim
/// grew with the backlog (2.2 ms for 5,000 due rows; 0.4 ms so).
macro_rules! claim {
    ($($lane:tt)+) => {
        concat!(
            "WITH queued AS (SELECT id, next_attempt_at FROM messages \
                WHERE status = 'queued' AND ", $($lane)+, " AND next_attempt_at <= $2 \
                ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED), \
            retrying AS (SELECT id, next_attempt_at FROM messages \
                WHERE status = 'retrying' AND ", $($lane)+, " AND next_attempt_at <= $2 \
                ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED), \
            abandoned AS (SELECT id, next_attempt_at FROM messages \
                WHERE status = 'sending' AND ", $($lane)+, " AND lease_until < $4 \
                ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED), \
            due AS (SELECT id FROM (SELECT * FROM queued UNION ALL SELECT * FROM retrying \
                UNION ALL SELECT * FROM abandoned) AS d ORDER BY next_attempt_at LIMIT $3) \
            UPDATE messages AS m SET status = 'sending', attempts = m.attempts + 1, claims = m.claims + 1, \
                lease_until = $1, updated_at = $2 \
            FROM due \
            WHERE m.id = due.id \
            RETURNING m.id, (SELECT coalesce(b.packed, convert_to(coalesce(b.body, b.message::text), 'UTF8')) \
                FROM bodies AS b WHERE b.message_id = m.id) AS message, \
                m.transport, m.attempts, m.claims, m.age_from, m.traceparent"
        )
    };
}

/// Claims up to `$3` due notices (`$1`, `$2`, `$4` as in [`claim!`]), at
/// most `$5` of one destination in `sending` at once (see
/// [`crate::queue::lane`]): the tenants with notices waiting are walked in
/// `notices_waiting` (one step each), and each destination's oldest due
/// rows read from there, up to its room, and locked; abandoned leases come
/// from `notices_due` as in the messages' claim. Rows are taken by the
/// place they would have among their destination's notices in `sending`
/// (abandoned leases first), then oldest first: a slot that frees goes to
/// the least busy destination waiting. The claimed rows are
/// updated by their ids as an array: the planner counts ten rows per
/// waiting tenant, and joined to `due` it read the whole table for them.
macro_rules! claim_notices {
    () => {
        concat!(
            "WITH RECURSIVE tenants AS ( \
                (SELECT m.tenant FROM messages AS m WHERE ", lane::waiting_notices!(), " \
                    ORDER BY m.tenant LIMIT 1) \
                UNION ALL SELECT (SELECT m.tenant FROM messages AS m \
                    WHERE ", lane::waiting_notices!(), " AND m.tenant > t.tenant \
                    ORDER BY m.tenant LIMIT 1) \
                FROM tenants AS t WHERE t.tenant IS NOT NULL), \
            waiting AS (SELECT w.id, w.next_attempt_at, t.tenant, d.transport, $5 - r.room AS busy \
                FROM tenants AS t CROSS JOIN (", lane::notice_transports!(), ") AS d \
                CROSS JOIN LATERAL (SELECT $5 - count(*) AS room FROM messages AS s \
                    WHERE s.tenant = t.tenant AND s.status = 'sending' AND s.transport = d.transport) AS r \
                CROSS JOIN LATERAL (SELECT m.id, m.next_attempt_at FROM messages AS m \
                    WHERE ", lane::waiting_notices!(), " AND m.tenant = t.tenant \
                        AND m.transport = d.transport AND m.next_attempt_at <= $2 \
                    ORDER BY m.next_attempt_at LIMIT greatest(r.room, 0) FOR UPDATE SKIP LOCKED) AS w \
                WHERE t.tenant IS NOT NULL), \
            abandoned AS (SELECT id, next_attempt_at FROM messages \
                WHERE status = 'sending' AND ", lane::notice_rows!(), " AND lease_until < $4 \
                ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED), \
            due AS (SELECT id FROM (SELECT id, next_attempt_at, busy + row_number() OVER ( \
                    PARTITION BY tenant, transport ORDER BY next_attempt_at) AS place FROM waiting \
                UNION ALL SELECT id, next_attempt_at, 0 FROM abandoned) AS d \
                ORDER BY place, next_attempt_at LIMIT $3) \
            UPDATE messages AS m SET status = 'sending', attempts = m.attempts + 1, claims = m.claims + 1, \
                lease_until = $1, updated_at = $2 \
            WHERE m.id = ANY (ARRAY(SELECT id FROM due)) \
            RETURNING m.id, (SELECT coalesce(b.packed, convert_to(coalesce(b.body, b.message::text), 'UTF8')) \
                FROM bodies AS b WHERE b.message_id = m.id) AS message, \
                m.transport, m.attempts, m.claims, m.age_from, m.traceparent"
        )
    };
}

lane::lane_claims!(claim, claim_notices);

async fn claim(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    lease: Duration,
    lane: Lane,
    limit: u32,
    max_age: Duration,
    keyring: Option<&Keyring>,
) -> anyhow::Result<Vec<ClaimedJob>> {
    let now = batch::current(now);
    let until = now + lease;
    let mut query = sqlx::query(claim_statement(lane))
        .bind(until)
        .bind(now)
        .bind(i64::from(limit))
        .bind(batch::abandoned_before(now, lease));
    if lane == Lane::Notices {
        query = query.bind(i64::from(lane::NOTICES_PER_DESTINATION));
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in &rows {
        match decode(row, until, keyring) {
            Ok(job) => jobs.push(job),
            Err(e) => {
                let id: Uuid = row.try_get("id")?;
                let age_from = row.try_get("age_from").ok();
                let fate = unopened::set_aside(&e, now, age_from, max_age);
                set_aside(conn, id, &fate, now).await?;
            }
        }
    }
    Ok(jobs)
}

/// Writes what becomes of claimed row `id`, which did not open.
async fn set_aside(
    conn: &mut PgConnection,
    id: Uuid,
    fate: &SetAside,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let query = match fate {
        SetAside::Wait {
            error,
            next_attempt_at,
        } => {
            tracing::warn!(message_id = %id, error = %error, "a stored message is sealed with a key this replica does not hold; it waits");
            sqlx::query(
                "UPDATE messages SET status = 'retrying', attempts = GREATEST(attempts - 1, 0), \
                 last_error = $2, updated_at = $3, next_attempt_at = $4, lease_until = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .bind(now)
            .bind(*next_attempt_at)
        }
        SetAside::Fail { error } => {
            tracing::error!(message_id = %id, error = %error, "a stored message cannot be read; it is marked failed");
            sqlx::query(
                "UPDATE messages SET status = 'failed', last_error = $2, updated_at = $3, \
                 lease_until = NULL, next_attempt_at = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .bind(now)
        }
    };
    query.execute(&mut *conn).await?;
    Ok(())
}

/// A claimed row as a job; an error names what could not be read.
fn decode(
    row: &sqlx::postgres::PgRow,
    until: OffsetDateTime,
    keyring: Option<&Keyring>,
) -> anyhow::Result<ClaimedJob> {
    let id: Uuid = row.try_get("id").context("id")?;
    let stored: Vec<u8> = row.try_get("message").context("message body")?;
    let message = sealing::open_stored(keyring, id, &stored)?;
    let attempts: i32 = row.try_get("attempts").context("attempts")?;
    let claims: i32 = row.try_get("claims").context("claims")?;
    Ok(ClaimedJob {
        message,
        transport: row.try_get("transport").context("transport")?,
        lease: Lease {
            id,
            attempt: u32::try_from(attempts).context("attempts")?,
            claim: u32::try_from(claims).context("claims")?,
            until,
        },
        created_at: row.try_get("age_from").context("age_from")?,
        traceparent: row.try_get("traceparent").context("traceparent")?,
    })
}

async fn renew(
    conn: &mut PgConnection,
    lease: &Lease,
    until: OffsetDateTime,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE messages SET lease_until = $3 WHERE id = $1 AND claims = $2 AND status = 'sending'",
    )
    .bind(lease.id)
    .bind(claim_number(lease)?)
    .bind(until)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn claim_number(lease: &Lease) -> anyhow::Result<i32> {
    i32::try_from(lease.claim).context("claim number out of range")
}

/// `$1` id, `$2` claim, `$3` now: every outcome is fenced by its lease.
async fn record(
    conn: &mut PgConnection,
    lease: &Lease,
    outcome: &Outcome,
    now: OffsetDateTime,
) -> anyhow::Result<bool> {
    const FENCE: &str = "WHERE id = $1 AND claims = $2 AND status = 'sending'";
    if let Some((outcome, answer)) = crate::queue::history::attempt_entry(outcome) {
        // Before the update, under the same fence: only the attempt that
        // still holds the message leaves a row in its history.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO attempts (message_id, attempt, transport, outcome, answer, finished_at) \
             SELECT id, attempts, transport, $3, $4, $5 FROM messages {FENCE}"
        )))
        .bind(lease.id)
        .bind(claim_number(lease)?)
        .bind(outcome)
        .bind(answer)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    let query = match outcome {
        Outcome::Sent {
            provider_message_id,
        } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE messages SET status = 'sent', provider_message_id = $4, sent_at = $3, updated_at = $3, \
             lease_until = NULL, next_attempt_at = NULL {FENCE}"
        )))
        .bind(lease.id)
        .bind(claim_number(lease)?)
        .bind(now)
        .bind(provider_message_id.clone()),
        Outcome::Retrying {
            error,
            next_attempt_at,
        } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE messages SET status = 'retrying', last_error = $4, next_attempt_at = $5, updated_at = $3, \
             lease_until = NULL {FENCE}"
        )))
        .bind(lease.id)
        .bind(claim_number(lease)?)
        .bind(now)
        .bind(error.clone())
        .bind(*next_attempt_at),
        Outcome::Failed { error } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE messages SET status = 'failed', last_error = $4, updated_at = $3, lease_until = NULL, \
             next_attempt_at = NULL {FENCE}"
        )))
        .bind(lease.id)
        .bind(claim_number(lease)?)
        .bind(now)
        .bind(error.clone()),
        Outcome::Suppressed { reason } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE messages SET status = 'suppressed', attempts = GREATEST(attempts - 1, 0), last_error = $4, updated_at = $3, \
             lease_until = NULL, next_attempt_at = NULL {FENCE}"
        )))
        .bind(lease.id)
        .bind(claim_number(lease)?)
        .bind(now)
        .bind(reason.clone()),
        Outcome::Released { next_attempt_at } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE messages SET status = 'retrying', attempts = GREATEST(attempts - 1, 0), \
             next_attempt_at = $4, updated_at = $3, lease_until = NULL {FENCE}"
        )))
        .bind(lease.id)
        .bind(claim_number(lease)?)
        .bind(now)
        .bind(*next_attempt_at),
    };
    Ok(query.execute(&mut *conn).await?.rows_affected() == 1)
}
