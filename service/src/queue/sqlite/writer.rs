//! The one writer of the SQLite store: every state change (accepting,
//! claiming, renewing a lease, recording an outcome) goes through it, and
//! whatever is waiting is applied in one transaction (group commit, see
//! [`crate::queue::batch`]).
//!
//! The groups run on a thread of the writer's own, on a connection that
//! thread owns (rusqlite, the same SQLite library sqlx links): a group's
//! statements are plain calls on that thread, not each a round trip to
//! sqlx's connection thread, and the thread answers the callers itself. The
//! writer's task holds the store's sqlx write connection while a group runs,
//! so that the few writes made through sqlx (console actions, events,
//! pruning) still take turns with the groups instead of waiting on SQLite's
//! lock.
//!
//! SQLite may roll a transaction back by itself when a statement fails
//! (`SQLITE_FULL`, `SQLITE_IOERR`); statements after that would each commit
//! on their own. So the first failing statement ends the group: nothing more
//! runs, the transaction is rolled back, and the connection is closed so
//! that the next group starts on a fresh one.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags, Row};
use sqlx::SqlitePool;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{accept, delivered, from_ms, ms};
use crate::queue::batch::{self, Answer, Enqueue, Health, MAX_BATCH, Op, Write};
use crate::queue::grouping::{self, Delivered, GroupWrites};
use crate::queue::lane;
use crate::queue::sealing::{self, Keyring};
use crate::queue::unopened::{self, SetAside};
use crate::queue::{ClaimedJob, Enqueued, Lane, Lease, Outcome};

/// The database file the writer's thread opens: the one sqlx's pools
/// opened (for `sqlite::memory:`, sqlx's named in-memory database, shared
/// with its connections through SQLite's shared cache).
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) filename: PathBuf,
    pub(super) in_memory: bool,
}

impl Target {
    /// A connection set up as sqlx sets up the store's write connection.
    pub(super) fn open(&self) -> anyhow::Result<Connection> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        flags |= match self.in_memory {
            true => OpenFlags::SQLITE_OPEN_MEMORY | OpenFlags::SQLITE_OPEN_SHARED_CACHE,
            false => OpenFlags::SQLITE_OPEN_PRIVATE_CACHE,
        };
        let conn = Connection::open_with_flags(&self.filename, flags)
            .with_context(|| format!("opening {}", self.filename.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // `journal_mode = WAL` belongs to the file (sqlx set it); these
        // belong to each connection. See `SqliteStore::open_sealed` for the
        // statement journal kept in memory.
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;",
        )?;
        // Every statement the writer runs stays prepared (about thirty).
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }
}

/// A migrated in-memory store: a sqlx connection, and one to the same
/// database as the writer's thread opens it.
#[cfg(test)]
pub(super) async fn test_store() -> (sqlx::SqliteConnection, Connection) {
    use sqlx::Connection as _;
    use std::str::FromStr as _;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:").unwrap();
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::migrate!("./migrations").run(&mut conn).await.unwrap();
    let target = Target {
        filename: options.get_filename().to_path_buf(),
        in_memory: true,
    };
    (conn, target.open().unwrap())
}

/// A group handed to the writer's thread; `done` fires once it is answered.
struct Group {
    writes: Vec<Write>,
    done: oneshot::Sender<Vec<Write>>,
}

/// Starts the writer's thread, and the task that hands it the groups; an
/// error when the thread cannot start (the store cannot take writes).
pub(super) fn start(
    pool: SqlitePool,
    inbox: mpsc::Receiver<Write>,
    health: Health,
    keyring: Option<Arc<Keyring>>,
    target: Target,
) -> anyhow::Result<()> {
    let (groups, thread_inbox) = std_mpsc::channel::<Group>();
    let answers = health.clone();
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || serve(target, thread_inbox, answers, keyring))
        .context("starting the queue store's writer thread")?;
    tokio::spawn(run(pool, inbox, health, groups));
    Ok(())
}

/// Hands waiting writes to the writer's thread in groups until every sender
/// is gone.
async fn run(
    pool: SqlitePool,
    mut inbox: mpsc::Receiver<Write>,
    health: Health,
    groups: std_mpsc::Sender<Group>,
) {
    let mut waiting = Vec::with_capacity(MAX_BATCH);
    while inbox.recv_many(&mut waiting, MAX_BATCH).await > 0 {
        // Taking sqlx's one write connection is this group's turn.
        let turn = match pool.acquire().await {
            Ok(turn) => turn,
            Err(e) => {
                let (ops, replies) = batch::split(&mut waiting);
                let e = anyhow::Error::new(e).context("opening the queue file");
                batch::answer(&health, &ops, replies, Err(e));
                continue;
            }
        };
        let (done, answered) = oneshot::channel();
        let group = Group {
            writes: std::mem::take(&mut waiting),
            done,
        };
        if groups.send(group).is_err() {
            // The thread is gone; its callers were dropped with it.
            return;
        }
        if let Ok(back) = answered.await {
            waiting = back;
        }
        drop(turn);
    }
}

/// The writer's thread: one group after the other on its own connection,
/// opened again after a group failed.
fn serve(
    target: Target,
    groups: std_mpsc::Receiver<Group>,
    health: Health,
    keyring: Option<Arc<Keyring>>,
) {
    let mut conn: Option<Connection> = None;
    for Group { mut writes, done } in groups {
        let (ops, replies) = batch::split(&mut writes);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let conn = match conn.as_mut() {
                Some(conn) => conn,
                None => conn.insert(target.open()?),
            };
            group(conn, &ops, keyring.as_deref())
        }))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the queue store's writer panicked")));
        crate::queue::clock_steps::settle_backward_steps(result.is_ok());
        if result.is_err() {
            // Whatever state SQLite left the connection in, it is not reused.
            if let Some(conn) = conn.take() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        batch::answer(&health, &ops, replies, result);
        let _ = done.send(writes);
    }
}

/// One transaction for the whole group, or none of it.
fn group(
    conn: &mut Connection,
    ops: &[Op],
    keyring: Option<&Keyring>,
) -> anyhow::Result<Vec<Answer>> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let answers = at_once(grouping::apply_all(&mut Writes { conn, keyring }, ops))?;
    conn.execute_batch("COMMIT")?;
    Ok(answers)
}

/// The output of `future`, which never waits: the writes below are
/// synchronous, behind the async interface both stores' groups share.
fn at_once<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let future = std::pin::pin!(future);
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => anyhow::bail!("a write of the queue store waited for something"),
    }
}

/// A group's writes on the writer's connection, inside its transaction.
struct Writes<'a> {
    conn: &'a Connection,
    keyring: Option<&'a Keyring>,
}

impl GroupWrites for Writes<'_> {
    async fn insert_all(&mut self, new: &[&Enqueue]) -> anyhow::Result<Vec<Enqueued>> {
        accept::insert_all(self.conn, new)
    }

    async fn record_all(&mut self, sent: &[Delivered<'_>]) -> anyhow::Result<Vec<bool>> {
        delivered::record_all(self.conn, sent)
    }

    async fn apply(&mut self, op: &Op) -> anyhow::Result<Answer> {
        apply(self.conn, op, self.keyring)
    }
}

fn apply(conn: &Connection, op: &Op, keyring: Option<&Keyring>) -> anyhow::Result<Answer> {
    Ok(match op {
        Op::Enqueue(new) => {
            let stored = accept::insert_all(conn, &[new.as_ref()])?;
            let done = stored.into_iter().next();
            Answer::Enqueued(done.context("no answer for a new message")?)
        }
        Op::Claim {
            now,
            lease,
            lane,
            limit,
            max_age,
        } => Answer::Claimed(claim(conn, *now, *lease, *lane, *limit, *max_age, keyring)?),
        Op::Renew { lease, until } => Answer::Applied(renew(conn, lease, *until)?),
        Op::Record {
            lease,
            outcome,
            now,
            ..
        } => Answer::Applied(record(conn, lease, outcome, *now)?),
        Op::Probe { now } => {
            // Room for the largest request (a 1 MiB body): a smaller probe
            // could fit while a full group of messages does not, and
            // readiness would flap to 200 while requests are answered 503.
            conn.prepare_cached(
                "INSERT OR REPLACE INTO store_health (id, probed_at, room) VALUES (1, ?, zeroblob(1048576))",
            )?
            .execute([ms(*now)])?;
            Answer::Probed
        }
    })
}

/// Claims up to `?3` due rows of one lane (`?1`: the lease's end, `?2`:
/// now, `?4`: leases ended before this are abandoned). The oldest due rows
/// of each kind, read in order from the lane's index (`messages_due` or
/// `notices_due`: status, next_attempt_at; see [`crate::queue::lane`]),
/// then the oldest of those: one `OR` over the kinds made SQLite read every
/// due row and sort them all, so each claim grew with the backlog (27 ms
/// for 100,000 due rows; 0.8 ms so). The limit is `?3 + 0`, not `?3`:
/// SQLite builds a bare bound LIMIT into the plan as a constant, so every
/// claim asking for a different number of rows than the one before was
/// prepared all over again.
macro_rules! claim {
    ($($lane:tt)+) => {
        concat!(
            "UPDATE messages SET status = 'sending', attempts = attempts + 1, claims = claims + 1, \
                 lease_until = ?1, updated_at = ?2 \
             WHERE id IN (SELECT id FROM ( \
                 SELECT * FROM (SELECT id, next_attempt_at FROM messages \
                     WHERE status = 'queued' AND ", $($lane)+, " AND next_attempt_at <= ?2 \
                     ORDER BY next_attempt_at LIMIT ?3 + 0) \
                 UNION ALL SELECT * FROM (SELECT id, next_attempt_at FROM messages \
                     WHERE status = 'retrying' AND ", $($lane)+, " AND next_attempt_at <= ?2 \
                     ORDER BY next_attempt_at LIMIT ?3 + 0) \
                 UNION ALL SELECT * FROM (SELECT id, next_attempt_at FROM messages \
                     WHERE status = 'sending' AND ", $($lane)+, " AND lease_until < ?4 \
                     ORDER BY next_attempt_at LIMIT ?3 + 0)) \
               ORDER BY next_attempt_at LIMIT ?3 + 0) \
             AND EXISTS (SELECT 1 FROM bodies WHERE message_id = messages.id) \
             RETURNING rowid, id, (SELECT message FROM bodies WHERE message_id = messages.id) AS message, \
                 transport, attempts, claims, age_from, traceparent"
        )
    };
}

/// Claims up to `?3` due notices (`?1`, `?2`, `?4` as in [`claim!`]), at
/// most `?5` of one destination in `sending` at once (see
/// [`crate::queue::lane`]): the tenants with notices waiting are walked in
/// `notices_waiting` (one step each), and each destination's oldest due
/// rows read from there up to its room; abandoned leases come from
/// `notices_due` as in the messages' claim. SQLite takes no correlated
/// `LIMIT`, so a destination's rows are read up to `?5` and numbered.
/// Rows are taken by the place they would have among their destination's
/// notices in `sending` (abandoned leases first), then oldest first: a
/// slot that frees goes to the least busy destination waiting.
macro_rules! claim_notices {
    () => {
        concat!(
            "UPDATE messages SET status = 'sending', attempts = attempts + 1, claims = claims + 1, \
                 lease_until = ?1, updated_at = ?2 \
             WHERE id IN (WITH RECURSIVE tenants(tenant) AS ( \
                 SELECT (SELECT min(tenant) FROM messages INDEXED BY notices_waiting \
                     WHERE ", lane::waiting_notices!(), ") \
                 UNION ALL SELECT (SELECT min(m.tenant) FROM messages AS m INDEXED BY notices_waiting \
                     WHERE ", lane::waiting_notices!(), " AND m.tenant > tenants.tenant) \
                 FROM tenants WHERE tenant IS NOT NULL), \
             destinations(tenant, transport, room) AS (SELECT t.tenant, d.transport, \
                 ?5 - (SELECT count(*) FROM messages AS s WHERE s.tenant = t.tenant \
                     AND s.status = 'sending' AND s.transport = d.transport) \
                 FROM tenants AS t, (", lane::notice_transports!(), ") AS d \
                 WHERE t.tenant IS NOT NULL), \
             waiting AS (SELECT w.id, w.next_attempt_at, d.room, \
                 row_number() OVER (PARTITION BY w.tenant, w.transport ORDER BY w.next_attempt_at) AS n \
                 FROM destinations AS d JOIN messages AS w ON w.rowid IN ( \
                     SELECT rowid FROM messages INDEXED BY notices_waiting \
                     WHERE ", lane::waiting_notices!(), " AND tenant = d.tenant \
                         AND transport = d.transport AND next_attempt_at <= ?2 \
                     ORDER BY next_attempt_at LIMIT ?5 + 0) \
                 WHERE d.room > 0) \
             SELECT id FROM ( \
                 SELECT id, next_attempt_at, ?5 - room + n AS place FROM waiting WHERE n <= room \
                 UNION ALL SELECT * FROM (SELECT id, next_attempt_at, 0 FROM messages \
                     WHERE status = 'sending' AND ", lane::notice_rows!(), " AND lease_until < ?4 \
                     ORDER BY next_attempt_at LIMIT ?3 + 0)) \
               ORDER BY place, next_attempt_at LIMIT ?3 + 0) \
             AND EXISTS (SELECT 1 FROM bodies WHERE message_id = messages.id) \
             RETURNING rowid, id, (SELECT message FROM bodies WHERE message_id = messages.id) AS message, \
                 transport, attempts, claims, age_from, traceparent"
        )
    };
}

lane::lane_claims!(claim, claim_notices);

fn claim(
    conn: &Connection,
    now: OffsetDateTime,
    lease: Duration,
    lane: Lane,
    limit: u32,
    max_age: Duration,
    keyring: Option<&Keyring>,
) -> anyhow::Result<Vec<ClaimedJob>> {
    let now = batch::current(now);
    let now_ms = ms(now);
    let until = now + lease;
    let abandoned = ms(batch::abandoned_before(now, lease));
    let back = crate::queue::clock_steps::take_backward_steps();
    if !back.is_zero() {
        // Every time in this file was written by this process's clock: the
        // ones ahead move back with it, so that what was due stays due.
        let moved = conn
            .prepare_cached(
                "UPDATE messages SET next_attempt_at = next_attempt_at - ?1 \
                 WHERE status IN ('queued', 'retrying') AND next_attempt_at > ?2",
            )?
            .execute((i64::try_from(back.as_millis()).unwrap_or(i64::MAX), now_ms))?;
        tracing::warn!(
            count = moved,
            seconds = back.as_secs(),
            "messages' next attempts moved back with the clock"
        );
    }
    let mut jobs = Vec::new();
    let mut unreadable = Vec::new();
    {
        let mut statement = conn.prepare_cached(claim_statement(lane))?;
        let (until_ms, limit) = (ms(until), i64::from(limit));
        let room = i64::from(lane::NOTICES_PER_DESTINATION);
        let mut rows = match lane {
            Lane::Messages => statement.query((until_ms, now_ms, limit, abandoned))?,
            Lane::Notices => statement.query((until_ms, now_ms, limit, abandoned, room))?,
        };
        while let Some(row) = rows.next()? {
            match decode(row, until, keyring) {
                Ok(job) => jobs.push(job),
                Err(e) => {
                    let age_from = row.get::<_, i64>("age_from").ok().map(from_ms);
                    let fate = unopened::set_aside(&e, now, age_from, max_age);
                    unreadable.push((row.get::<_, i64>("rowid")?, fate));
                }
            }
        }
    }
    for (rowid, fate) in unreadable {
        set_aside(conn, rowid, &fate, now_ms)?;
    }
    Ok(jobs)
}

/// Writes what becomes of claimed row `rowid`, which did not open.
fn set_aside(conn: &Connection, rowid: i64, fate: &SetAside, now_ms: i64) -> anyhow::Result<()> {
    match fate {
        SetAside::Wait {
            error,
            next_attempt_at,
        } => {
            tracing::warn!(rowid, error = %error, "a stored message is sealed with a key this process does not hold; it waits");
            conn.prepare_cached(
                "UPDATE messages SET status = 'retrying', attempts = max(attempts - 1, 0), \
                 last_error = ?, updated_at = ?, next_attempt_at = ?, lease_until = NULL WHERE rowid = ?",
            )?
            .execute((error, now_ms, ms(*next_attempt_at), rowid))?;
        }
        SetAside::Fail { error } => {
            tracing::error!(rowid, error = %error, "a stored message cannot be read; it is marked failed");
            conn.prepare_cached(
                "UPDATE messages SET status = 'failed', last_error = ?, updated_at = ?, \
                 lease_until = NULL, next_attempt_at = NULL WHERE rowid = ?",
            )?
            .execute((error, now_ms, rowid))?;
        }
    }
    Ok(())
}

/// A claimed row as a job; an error names what could not be read.
fn decode(
    row: &Row<'_>,
    until: OffsetDateTime,
    keyring: Option<&Keyring>,
) -> anyhow::Result<ClaimedJob> {
    let id: String = row.get("id").context("id")?;
    let stored = row.get_ref("message").context("message")?;
    let stored = match stored {
        rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b,
        other => anyhow::bail!("message: stored as {}", other.data_type()),
    };
    let attempts: i64 = row.get("attempts").context("attempts")?;
    let claims: i64 = row.get("claims").context("claims")?;
    let id = Uuid::parse_str(&id).context("id")?;
    let message = sealing::open_stored(keyring, id, stored)?;
    Ok(ClaimedJob {
        message,
        transport: row.get("transport").context("transport")?,
        lease: Lease {
            id,
            attempt: u32::try_from(attempts).context("attempts")?,
            claim: u32::try_from(claims).context("claims")?,
            until,
        },
        created_at: from_ms(row.get("age_from").context("age_from")?),
        traceparent: row.get("traceparent").context("traceparent")?,
    })
}

/// The condition every lease-fenced write carries (`?1`, `?2`: the lease's
/// id and claim).
const FENCE: &str = "id = ?1 AND claims = ?2 AND status = 'sending'";

fn renew(conn: &Connection, lease: &Lease, until: OffsetDateTime) -> anyhow::Result<bool> {
    let changed = conn
        .prepare_cached(&format!(
            "UPDATE messages SET lease_until = ?3 WHERE {FENCE}"
        ))?
        .execute((lease.id.to_string(), lease.claim, ms(until)))?;
    Ok(changed == 1)
}

fn record(
    conn: &Connection,
    lease: &Lease,
    outcome: &Outcome,
    now: OffsetDateTime,
) -> anyhow::Result<bool> {
    let now = ms(now);
    let id = lease.id.to_string();
    if let Some((outcome, answer)) = crate::queue::history::attempt_entry(outcome) {
        // Before the update, under the same fence: only the attempt that
        // still holds the message leaves a row in its history.
        conn.prepare_cached(&format!(
            "INSERT INTO attempts (message_id, attempt, transport, outcome, answer, finished_at) \
             SELECT id, attempts, transport, ?3, ?4, ?5 FROM messages WHERE {FENCE}"
        ))?
        .execute((&id, lease.claim, outcome, answer, now))?;
    }
    let fence = (&id, lease.claim);
    let changed = match outcome {
        Outcome::Sent {
            provider_message_id,
        } => conn
            .prepare_cached(&format!(
                "UPDATE messages SET status = 'sent', provider_message_id = ?3, sent_at = ?4, updated_at = ?4, \
                 lease_until = NULL, next_attempt_at = NULL WHERE {FENCE}"
            ))?
            .execute((fence.0, fence.1, provider_message_id, now))?,
        Outcome::Retrying {
            error,
            next_attempt_at,
        } => conn
            .prepare_cached(&format!(
                "UPDATE messages SET status = 'retrying', last_error = ?3, next_attempt_at = ?4, updated_at = ?5, \
                 lease_until = NULL WHERE {FENCE}"
            ))?
            .execute((fence.0, fence.1, error, ms(*next_attempt_at), now))?,
        Outcome::Failed { error } => conn
            .prepare_cached(&format!(
                "UPDATE messages SET status = 'failed', last_error = ?3, updated_at = ?4, lease_until = NULL, \
                 next_attempt_at = NULL WHERE {FENCE}"
            ))?
            .execute((fence.0, fence.1, error, now))?,
        Outcome::Suppressed { reason } => conn
            .prepare_cached(&format!(
                "UPDATE messages SET status = 'suppressed', attempts = MAX(attempts - 1, 0), last_error = ?3, \
                 updated_at = ?4, lease_until = NULL, next_attempt_at = NULL WHERE {FENCE}"
            ))?
            .execute((fence.0, fence.1, reason, now))?,
        Outcome::Released { next_attempt_at } => conn
            .prepare_cached(&format!(
                "UPDATE messages SET status = 'retrying', attempts = MAX(attempts - 1, 0), next_attempt_at = ?3, \
                 updated_at = ?4, lease_until = NULL WHERE {FENCE}"
            ))?
            .execute((fence.0, fence.1, ms(*next_attempt_at), now))?,
    };
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use crate::email::{Mailbox, OutgoingMessage};
    use crate::queue::sqlite::SqliteStore;
    use crate::queue::{Enqueued, JobStore, NewJob};
    use crate::suppression::{Reason, Suppression};

    fn job(n: usize) -> NewJob {
        NewJob {
            message: OutgoingMessage::plain(
                "acme",
                Mailbox::new("no-reply@acme.example"),
                Mailbox::new(format!("user{n}@example.com")),
                "Hi",
                "Hello",
            ),
            idempotency_key: None,
            transport: "default".into(),
            now: OffsetDateTime::now_utc(),
            lease: None,
            origin: Default::default(),
            limits: Vec::new(),
        }
    }

    /// Groups on the writer's thread and writes through sqlx's write
    /// connection at the same time: every one succeeds, and sqlx sees what
    /// the writer's thread wrote (for `sqlite::memory:`, through the shared
    /// in-memory database: a writer's connection opened on a database of its
    /// own would leave the queue empty here).
    async fn writes_through_both_connections(url: &str) {
        let store = SqliteStore::open(url).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..1000 {
            let store = store.clone();
            tasks.spawn(async move {
                match store.enqueue(job(n)).await.unwrap() {
                    Enqueued::Created(_) => {}
                    other => panic!("{other:?}"),
                }
            });
        }
        for n in 0..200 {
            let store = store.clone();
            tasks.spawn(async move {
                let entry = Suppression {
                    tenant: "acme".into(),
                    email: format!("listed{n}@example.com"),
                    reason: Reason::Manual,
                    detail: None,
                    message_id: None,
                    created_at: OffsetDateTime::now_utc(),
                };
                assert!(store.suppress(&entry).await.unwrap());
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let listed = store.suppressions(Some("acme"), 1000).await.unwrap();
        assert_eq!(listed.len(), 200);
        assert_eq!(store.stats().await.unwrap().queued, 1000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_memory_the_groups_and_sqlx_s_writes_share_one_database() {
        writes_through_both_connections("sqlite::memory:").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_a_file_the_groups_and_sqlx_s_writes_go_side_by_side() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("queue.db").display());
        writes_through_both_connections(&url).await;
    }
}
