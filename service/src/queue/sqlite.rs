//! The embedded queue store: one SQLite file in WAL mode with `synchronous=FULL`,
//! so that a `202` means the message is on disk.
//!
//! Every change goes through one writer task that commits whatever is waiting
//! in one transaction (group commit): many concurrent requests share one disk
//! sync, and a group whose commit fails is answered with an error as a whole.
//! The file belongs to one serving process: at its start,
//! [`JobStore::recover_interrupted`] makes rows a previous process left in
//! `sending` (it died mid-delivery) claimable at once.

use super::WAKE_STEP;
use super::lane;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::batch::Writes;
use super::lookups::Lookups;
use super::pending::PendingCache;
use super::sealing::Keyring;
use super::{
    ClaimedJob, Enqueued, JobStore, Lane, Lease, ListFilter, MessageRecord, NewJob, Outcome,
    Pruned, QueueStats, RECORD_COLUMNS, Status, StoreError,
};

mod accept;
mod console;
mod delivered;
mod events;
mod limits;
mod reseal;
mod retention;
mod stats;
mod suppressions;
mod walk;
mod writer;
#[doc(hidden)]
pub use writer::{CLAIM_MESSAGES, CLAIM_NOTICES, claim_statement};

/// Makes up to `?3` held messages of the transport `?2` due at `?1`. It
/// states the messages' lane (transports that are held as down are mail
/// transports, never notices) so that it reads `messages_due`, a partial
/// index of that lane: otherwise the only index left for it is the
/// transport's, every row it ever sent included.
#[doc(hidden)]
pub const WAKE: &str = concat!(
    "UPDATE messages SET next_attempt_at = ?1 WHERE rowid IN (SELECT rowid FROM messages \
     WHERE status = 'retrying' AND ",
    lane::message_rows!(),
    " AND next_attempt_at > ?1 AND transport = ?2 LIMIT ?3)"
);

/// A tenant's messages not yet at an end (`?1`: the tenant), read from
/// `messages_breakdown` (tenant, status, transport) alone. Notices
/// (webhooks, Keycloak feedback) are not counted: a tenant's receiver that
/// is down keeps them retrying for a day, and they are not email waiting.
/// The lane is the aggregate's filter, on the same index entries: in the
/// `WHERE` it matches `messages_due`, the lane's partial index, which would
/// read every tenant's waiting messages (PostgreSQL chose it so).
#[doc(hidden)]
pub const PENDING_COUNT: &str = concat!(
    "SELECT count(*) FILTER (WHERE ",
    lane::message_rows!(),
    ") FROM messages WHERE tenant = ? AND status IN ('queued', 'sending', 'retrying')"
);

/// The SQLite queue store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    writes: Writes,
    pending: PendingCache,
    lookups: Lookups,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `url`: `sqlite://PATH` or `sqlite::memory:`.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        Self::open_sealed(url, None).await
    }

    /// Opens the store in the file `url` names, which must exist: for
    /// commands that act on a queue the service has kept (`keys rotate`),
    /// where a mistyped path must not become a new, empty queue.
    pub async fn open_existing(url: &str) -> Result<SqliteStore, StoreError> {
        Self::open_with(connect_options(url, Create::Never)?, url, None).await
    }

    /// [`SqliteStore::open`], sealing new messages with `keyring` (and opening sealed ones).
    pub async fn open_sealed(
        url: &str,
        keyring: Option<Arc<Keyring>>,
    ) -> Result<SqliteStore, StoreError> {
        Self::open_with(connect_options(url, Create::IfMissing)?, url, keyring).await
    }

    async fn open_with(
        options: SqliteConnectOptions,
        url: &str,
        keyring: Option<Arc<Keyring>>,
    ) -> Result<SqliteStore, StoreError> {
        // Commit groups run on the writer thread's own connection
        // (`writer.rs`); this pool's one connection applies the migrations
        // and the other writes (console actions, events, pruning), and is
        // held by the writer while a group runs, so that the two take turns.
        //
        // Statements that may write several rows keep the original of every
        // page they change (a statement journal) in case they fail alone.
        // Past 64 KiB SQLite spills that journal to a temporary file: a file
        // created, written and deleted for most groups, a third of the
        // writer's `pwrite` calls. A failing statement ends its whole group
        // anyway, and a group's statements are bounded by its size, so the
        // journal stays in memory (here and on the writer's connection).
        //
        // Neither pool pings a connection before lending it: a SQLite
        // connection is this process's own and breaks only with its thread
        // (its next statement fails; sqlx's ping as it comes back to the
        // pool closes it), and each ping is one more round trip to sqlx's
        // SQLite thread per use: a third of a suppression lookup's.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone().pragma("temp_store", "memory"))
            .await
            .with_context(|| format!("opening {url}"))?;
        sqlx::migrate!("./migrations")
            .run(&write)
            .await
            .context("applying the store's migrations")?;
        let read = if url.contains(":memory:") {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
                .connect_with(options.clone().read_only(true))
                .await
                .with_context(|| format!("opening {url} for reading"))?
        };
        let (writes, inbox) = Writes::channel(keyring.clone());
        let target = writer::Target {
            filename: options.get_filename().to_path_buf(),
            in_memory: url.contains(":memory:") || url.contains("mode=memory"),
        };
        writer::start(write.clone(), inbox, writes.health.clone(), keyring, target)?;
        let reads = read.clone();
        let lookups = Lookups::start(std::sync::Arc::new(move |pairs| {
            let reads = reads.clone();
            Box::pin(async move { suppressions::among(&reads, pairs).await })
        }));
        Ok(SqliteStore {
            read,
            write,
            writes,
            pending: Default::default(),
            lookups,
        })
    }
}

/// Whether opening a store may create its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Create {
    /// The serving process: a first start creates the file and its directory.
    IfMissing,
    /// An operator's command on an existing queue: nothing is created.
    Never,
}

fn connect_options(url: &str, create: Create) -> Result<SqliteConnectOptions, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("`{url}` is not a sqlite:// URL"))?;
    let file = options.get_filename().to_path_buf();
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if create == Create::Never {
        if in_memory {
            return Err(anyhow::anyhow!(
                "`{url}` is an in-memory database: it holds no stored queue to act on"
            )
            .into());
        }
        if !file.is_file() {
            return Err(anyhow::anyhow!(
                "no SQLite database at {}: check MAILBRIDGE_DATABASE_URL (`{url}`); \
                 only `mailbridge serve` creates the file",
                file.display()
            )
            .into());
        }
    } else if let Some(dir) = (!in_memory)
        .then(|| file.parent())
        .flatten()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(options
        // Also at the open itself: a file removed after the check above is
        // an error, not a new database.
        .create_if_missing(create == Create::IfMissing)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10)))
}

/// The status filter of the console's list and search, as `?1`: a plain
/// equality when one is asked for, so that SQLite reads that status's rows
/// newest first from `messages_status_id` (`?1 IS NULL OR status = ?1` would
/// make it walk every newer row of the table). The tenant filters are plain
/// equalities for one tenant for the same reason (`messages_tenant_id`).
fn status_clause(status: Option<Status>) -> &'static str {
    match status {
        Some(_) => "status = ?1 ",
        None => "?1 IS NULL ",
    }
}

/// Unix milliseconds of `t`.
fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn record(row: &SqliteRow) -> Result<MessageRecord, StoreError> {
    let read = || -> anyhow::Result<MessageRecord> {
        let id: String = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let attempts: i64 = row.try_get("attempts")?;
        let status =
            Status::parse(&status).with_context(|| format!("unknown stored status {status}"))?;
        Ok(MessageRecord {
            id: Uuid::parse_str(&id).context("a stored id is not a UUID")?,
            tenant: row.try_get("tenant")?,
            status,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            last_error: row.try_get("last_error")?,
            transport: row.try_get("transport")?,
            provider_message_id: row.try_get("provider_message_id")?,
            next_attempt_at: match status {
                Status::Queued | Status::Retrying => row
                    .try_get::<Option<i64>, _>("next_attempt_at")?
                    .map(from_ms),
                _ => None,
            },
            created_at: from_ms(row.try_get("created_at")?),
            updated_at: from_ms(row.try_get("updated_at")?),
            sent_at: row.try_get::<Option<i64>, _>("sent_at")?.map(from_ms),
            realm: row.try_get("realm")?,
            kind: row.try_get("kind")?,
            traceparent: row.try_get("traceparent")?,
        })
    };
    Ok(read().context("a stored status row cannot be read")?)
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        self.writes.enqueue(job, &self.pending).await
    }

    fn hand_over(&self, job: NewJob, ticket: super::Ticket) {
        self.writes.hand_over(job, ticket);
    }

    async fn handed_over(
        &self,
        tenant: &str,
        transport: &str,
        receipt: super::Receipt,
    ) -> Result<Enqueued, StoreError> {
        (self.writes)
            .handed_over(tenant, transport, receipt, &self.pending)
            .await
    }

    async fn claim(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        lane: Lane,
        limit: u32,
        max_age: Duration,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        self.writes.claim(now, lease, lane, limit, max_age).await
    }

    async fn renew(&self, lease: &Lease, until: OffsetDateTime) -> Result<bool, StoreError> {
        self.writes.renew(lease, until).await
    }

    async fn record_with(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        now: OffsetDateTime,
        notice: Option<&NewJob>,
    ) -> Result<bool, StoreError> {
        self.writes.record(lease, outcome, now, notice).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<MessageRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM messages WHERE id = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await
        .context("reading a message")?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<MessageRecord>, StoreError> {
        let status = status_clause(filter.status);
        let tenant = match filter.tenant {
            Some(_) => "AND tenant = ?2 ",
            None => "AND ?2 IS NULL ",
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM messages WHERE {status}{tenant}\
             AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
        )))
        .bind(filter.status.map(Status::as_str))
        .bind(filter.tenant.as_deref())
        .bind(filter.before.map(|id| id.to_string()))
        .bind(i64::from(filter.limit.max(1)))
        .fetch_all(&self.read)
        .await
        .context("listing messages")?;
        rows.iter().map(record).collect()
    }

    async fn requeue_failed(&self, id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE messages SET status = 'queued', attempts = 0, next_attempt_at = ?1, updated_at = ?1, \
             age_from = ?1, last_error = NULL WHERE id = ?2 AND status = 'failed' \
             AND EXISTS (SELECT 1 FROM bodies WHERE message_id = ?2)",
        )
        .bind(ms(now))
        .bind(id.to_string())
        .execute(&self.write)
        .await
        .context("requeueing a message")?;
        Ok(done.rows_affected() == 1)
    }

    async fn wake(&self, transport: &str, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut woken = 0;
        loop {
            let done = sqlx::query(WAKE)
                .bind(ms(now))
                .bind(transport)
                .bind(WAKE_STEP)
                .execute(&self.write)
                .await
                .context("making held messages due")?;
            woken += done.rows_affected();
            if done.rows_affected() < WAKE_STEP as u64 {
                return Ok(woken);
            }
        }
    }

    async fn pending_count(&self, tenant: &str) -> Result<u64, StoreError> {
        let read = || {
            sqlx::query_scalar(PENDING_COUNT)
                .bind(tenant)
                .fetch_one(&self.read)
        };
        self.pending.count(tenant, read).await
    }

    async fn recover_interrupted(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE messages SET lease_until = 0 WHERE status = 'sending'")
            .execute(&self.write)
            .await
            .context("recovering interrupted deliveries")?;
        Ok(done.rows_affected())
    }

    async fn purge_bodies(
        &self,
        older_than: OffsetDateTime,
        after: Option<&str>,
        batch: u32,
    ) -> Result<Pruned, StoreError> {
        retention::purge(&self.write, older_than, after, batch).await
    }

    async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM messages WHERE id = ? AND status IN ('sent', 'failed', 'suppressed')",
        )
        .bind(id.to_string())
        .execute(&self.write)
        .await
        .context("deleting a message")?;
        Ok(done.rows_affected() == 1)
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        stats::read(&self.read).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.writes.health.failing() {
            return self.writes.probe().await;
        }
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .context("store ping")?;
        Ok(())
    }

    async fn add_event(&self, event: &crate::events::DeliveryEvent) -> Result<bool, StoreError> {
        events::add(&self.write, &super::storable_event(event)).await
    }

    async fn take_signature(
        &self,
        token: &crate::events::signature::SignatureToken,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        events::take_signature(&self.write, token, now).await
    }

    async fn events(&self, id: Uuid) -> Result<Vec<crate::events::DeliveryEvent>, StoreError> {
        events::list(&self.read, id).await
    }

    async fn recipients(&self, id: Uuid) -> Result<Vec<String>, StoreError> {
        events::recipients(&self.read, id).await
    }

    async fn find_by_provider_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        events::by_provider_id(&self.read, &super::storable_id(provider_message_id)).await
    }

    async fn suppress(&self, entry: &crate::suppression::Suppression) -> Result<bool, StoreError> {
        suppressions::add(&self.write, &super::storable_suppression(entry)).await
    }

    async fn unsuppress(&self, tenant: &str, email: &str) -> Result<bool, StoreError> {
        suppressions::remove(&self.write, tenant, email).await
    }

    async fn suppressions(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<crate::suppression::Suppression>, StoreError> {
        suppressions::list(&self.read, tenant, limit).await
    }

    async fn suppressed_among(
        &self,
        tenant: &str,
        emails: &[String],
    ) -> Result<Vec<String>, StoreError> {
        self.lookups.among(tenant, emails).await
    }

    async fn prune_limits(
        &self,
        now: OffsetDateTime,
        after: Option<&str>,
        batch: u32,
    ) -> Result<Pruned, StoreError> {
        limits::prune(&self.write, now, after, batch).await
    }

    async fn find_idempotent(
        &self,
        tenant: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StoreError> {
        limits::idempotent(&self.read, tenant, key, now).await
    }

    async fn attempts(&self, id: Uuid) -> Result<Vec<super::history::AttemptRecord>, StoreError> {
        console::attempts(&self.read, id).await
    }

    async fn search(
        &self,
        search: &super::history::Search,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        console::search(&self.read, search).await
    }

    async fn breakdown(
        &self,
        tenants: Option<&[String]>,
        since: OffsetDateTime,
    ) -> Result<super::history::Breakdown, StoreError> {
        console::breakdown(&self.read, tenants, since).await
    }

    async fn transport_health(
        &self,
        transports: &[String],
    ) -> Result<Vec<super::history::TransportHealth>, StoreError> {
        console::transport_health(&self.read, transports).await
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row as _;

    use super::*;

    #[tokio::test]
    async fn the_pending_count_leaves_notices_out_reading_one_covering_index() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        sqlx::query(
            "INSERT INTO messages (id, tenant, status, transport, created_at, age_from, updated_at) \
             VALUES ('a', 'acme', 'queued', 'default', 0, 0, 0), \
             ('b', 'acme', 'retrying', 'default', 0, 0, 0), ('c', 'acme', 'sent', 'default', 0, 0, 0), \
             ('d', 'acme', 'retrying', 'webhook', 0, 0, 0), ('e', 'acme', 'queued', 'keycloak', 0, 0, 0), \
             ('f', 'other', 'queued', 'default', 0, 0, 0)",
        )
        .execute(&store.write)
        .await
        .unwrap();
        assert_eq!(store.pending_count("acme").await.unwrap(), 2);
        let steps = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {PENDING_COUNT}"
        )))
        .fetch_all(&store.read)
        .await
        .unwrap();
        let plan: Vec<String> = steps.iter().map(|row| row.get("detail")).collect();
        assert_eq!(
            plan,
            ["SEARCH messages USING COVERING INDEX messages_breakdown (tenant=? AND status=?)"]
        );
    }
}
