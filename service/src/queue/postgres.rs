//! The shared queue store: PostgreSQL, for several replicas of the service
//! working one queue.
//!
//! Changes are committed in groups by a few writer tasks (see [`writer`]), so
//! a `202` means the row is committed (with PostgreSQL's default
//! `synchronous_commit = on`, on disk) while many requests share a commit.
//! Replicas claim with `FOR UPDATE SKIP LOCKED`: two of them never
//! claim the same message, and neither waits for the other. A row in
//! `sending` may be another replica's delivery in progress, so nothing is
//! recovered at start: a message whose replica died is claimed again when its
//! lease expires.

use super::WAKE_STEP;
use super::lane;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor as _, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::batch::Writes;
use super::lookups::Lookups;
use super::pending::PendingCache;
use super::{
    ClaimedJob, Enqueued, JobStore, Lane, Lease, ListFilter, MessageRecord, NewJob, Outcome,
    Pruned, QueueStats, RECORD_COLUMNS, Status, StoreError,
};
use growth::Growth;

mod accept;
mod console;
mod delivered;
#[doc(hidden)]
pub use delivered::RECORD_SENT;
mod events;
mod growth;
#[doc(hidden)]
pub use growth::GROWTH_MIN;
mod limits;
mod reseal;
mod retention;
#[doc(hidden)]
pub use retention::PURGE;
mod suppressions;
mod writer;
#[doc(hidden)]
pub use writer::{CLAIM_MESSAGES, CLAIM_NOTICES, claim_statement};

/// Makes up to `$3` held messages of the transport `$2` due at `$1`. It
/// states the messages' lane (transports that are held as down are mail
/// transports, never notices) so that it reads `messages_due`, a partial
/// index of that lane: otherwise the only index left for it is the
/// transport's, every row it ever sent included.
#[doc(hidden)]
pub const WAKE: &str = concat!(
    "UPDATE messages SET next_attempt_at = $1 WHERE id IN (SELECT id FROM messages \
     WHERE status = 'retrying' AND ",
    lane::message_rows!(),
    " AND next_attempt_at > $1 AND transport = $2 LIMIT $3)"
);

/// A tenant's messages not yet at an end (`$1`: the tenant), one equality
/// per status, so that `messages_breakdown` gives exactly those rows
/// whatever the statistics say. Written with `IN`, plans made from a young
/// table's statistics took only the tenant from the index and tested the
/// status of every row of the tenant, sent ones included (5–30 ms per count
/// under load, many at once when the cache ran out).
///
/// Notices (webhooks, Keycloak feedback) are not counted: a tenant's
/// receiver that is down keeps them retrying for a day, and they are not
/// email waiting. The lane is the aggregate's filter, read from the same
/// index entries (transport is its last column): in the `WHERE` it matches
/// `messages_due`, the lane's partial index, which PostgreSQL then read
/// for every tenant's waiting messages, the tenant a filter.
#[doc(hidden)]
pub const PENDING_COUNT: &str = concat!(
    "SELECT (SELECT count(*) FILTER (WHERE ",
    lane::message_rows!(),
    ") FROM messages WHERE tenant = $1 AND status = 'queued') \
     + (SELECT count(*) FILTER (WHERE ",
    lane::message_rows!(),
    ") FROM messages WHERE tenant = $1 AND status = 'sending') \
     + (SELECT count(*) FILTER (WHERE ",
    lane::message_rows!(),
    ") FROM messages WHERE tenant = $1 AND status = 'retrying')"
);

/// Connections per replica: the writers, the API's reads and the worker share them.
const MAX_CONNECTIONS: u32 = 16;

/// The PostgreSQL queue store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    writes: Writes,
    pending: PendingCache,
    lookups: Lookups,
    /// Rows added to `messages` and `suppressions` (see `growth`; the
    /// writers count the cells of `flow_limits`).
    grown: std::sync::Arc<Growth>,
    listed: std::sync::Arc<Growth>,
}

/// Longest a read may take (a suppression lookup, a pending count): one
/// whose server stopped answering (packets lost) fails the request rather
/// than holding it until TCP gives up. Under the lookups' own bound.
const STATEMENT_DEADLINE: Duration = Duration::from_secs(8);

/// How long a ping waits for a connection, then for its answer: together
/// under `/readyz`'s bound.
const PING_ACQUIRE: Duration = Duration::from_millis(1000);
const PING_DEADLINE: Duration = Duration::from_millis(800);

/// The error for a connection whose statement got no answer in time: it is
/// closed when dropped (within seconds), not handed back to the pool, whose
/// check of a returning connection would wait for an answer without bound
/// and keep its slot the while.
fn unanswered(mut conn: sqlx::pool::PoolConnection<sqlx::Postgres>, what: &str) -> StoreError {
    conn.close_on_drop();
    anyhow::anyhow!("{what}: the database did not answer within {STATEMENT_DEADLINE:?}").into()
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host/db?sslmode=…`) and
    /// applies the store's migrations (replicas starting together take turns).
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        Self::open_sealed(url, None).await
    }

    /// [`PgStore::open`], sealing new messages with `keyring` (and opening sealed ones).
    pub async fn open_sealed(
        url: &str,
        keyring: Option<std::sync::Arc<super::sealing::Keyring>>,
    ) -> Result<PgStore, StoreError> {
        let shown = redact(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| {
                anyhow::anyhow!(
                    "`{shown}` is not a postgres:// URL: {}",
                    redact(&e.to_string())
                )
            })?
            .application_name("mailbridge");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to {shown}: {}", redact(&e.to_string())))?;
        sqlx::migrate!("./migrations-postgres")
            .run(&pool)
            .await
            .context("applying the store's migrations")?;
        let (writes, inbox) = Writes::channel(keyring.clone());
        let grown = Growth::open(&pool, "messages, bodies, recipients", "messages").await;
        let listed = Growth::open(&pool, "suppressions", "suppressions").await;
        let cells = Growth::open(&pool, "flow_limits", "flow_limits").await;
        let inbox = std::sync::Arc::new(tokio::sync::Mutex::new(inbox));
        for _ in 0..writer::WRITERS {
            tokio::spawn(writer::run(
                pool.clone(),
                inbox.clone(),
                writes.health.clone(),
                keyring.clone(),
                cells.clone(),
            ));
        }
        let reads = pool.clone();
        let lookups = Lookups::start(std::sync::Arc::new(move |pairs| {
            let reads = reads.clone();
            Box::pin(async move {
                let mut conn = reads.acquire().await.context("looking up suppressions")?;
                match tokio::time::timeout(
                    STATEMENT_DEADLINE,
                    suppressions::among(&mut conn, pairs),
                )
                .await
                {
                    Ok(found) => found,
                    Err(_) => Err(unanswered(conn, "looking up suppressions")),
                }
            })
        }));
        Ok(PgStore {
            pool,
            writes,
            pending: PendingCache::default(),
            lookups,
            grown,
            listed,
        })
    }

    /// Runs one `UPDATE … WHERE id = $1` style statement.
    async fn update(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
        what: &'static str,
    ) -> Result<u64, StoreError> {
        let done = query.execute(&self.pool).await.context(what)?;
        Ok(done.rows_affected())
    }
}

/// `url` with its password (and user) replaced, fit for a log line: up to
/// the last `@` before a space (a password may hold an unencoded `/` or
/// `?`), and a `password=` option's value.
pub fn redact(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_owned();
    };
    let rest = &text[scheme_end + 3..];
    let url_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (url, after) = rest.split_at(url_end);
    let url = match url.rfind('@') {
        Some(at) => format!("***@{}", &url[at + 1..]),
        None => url.to_owned(),
    };
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let pairs: Vec<&str> = (query.split('&'))
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => "password=***",
                    _ => pair,
                })
                .collect();
            format!("{base}?{}", pairs.join("&"))
        }
        None => url,
    };
    format!("{}{url}{after}", &text[..scheme_end + 3])
}

fn record(row: &PgRow) -> Result<MessageRecord, StoreError> {
    let read = || -> anyhow::Result<MessageRecord> {
        let status: String = row.try_get("status")?;
        let attempts: i32 = row.try_get("attempts")?;
        let status =
            Status::parse(&status).with_context(|| format!("unknown stored status {status}"))?;
        Ok(MessageRecord {
            id: row.try_get("id")?,
            tenant: row.try_get("tenant")?,
            status,
            attempts: u32::try_from(attempts).unwrap_or_default(),
            last_error: row.try_get("last_error")?,
            transport: row.try_get("transport")?,
            provider_message_id: row.try_get("provider_message_id")?,
            next_attempt_at: match status {
                Status::Queued | Status::Retrying => row.try_get("next_attempt_at")?,
                _ => None,
            },
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            sent_at: row.try_get("sent_at")?,
            realm: row.try_get("realm")?,
            kind: row.try_get("kind")?,
            traceparent: row.try_get("traceparent")?,
        })
    };
    Ok(read().context("a stored status row cannot be read")?)
}

impl PgStore {
    /// A new message's answer, its row counted in the table's growth.
    fn noted(&self, enqueued: Result<Enqueued, StoreError>) -> Result<Enqueued, StoreError> {
        let enqueued = enqueued.context("storing a message")?;
        if enqueued.stored() {
            self.grown.note(&self.pool, 1);
        }
        Ok(enqueued)
    }
}

#[async_trait]
impl JobStore for PgStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        let enqueued = self.writes.enqueue(job, &self.pending).await;
        self.noted(enqueued)
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
        let enqueued = (self.writes)
            .handed_over(tenant, transport, receipt, &self.pending)
            .await;
        self.noted(enqueued)
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
            "SELECT {RECORD_COLUMNS} FROM messages WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context("reading a message")?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<MessageRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM messages WHERE ($1::text IS NULL OR status = $1) \
             AND ($2::text IS NULL OR tenant = $2) AND ($3::uuid IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4"
        )))
        .bind(filter.status.map(Status::as_str))
        .bind(filter.tenant.as_deref().map(super::storable))
        .bind(filter.before)
        .bind(i64::from(filter.limit.max(1)))
        .fetch_all(&self.pool)
        .await
        .context("listing messages")?;
        rows.iter().map(record).collect()
    }

    async fn requeue_failed(&self, id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "UPDATE messages SET status = 'queued', attempts = 0, next_attempt_at = $2, updated_at = $2, \
             age_from = $2, last_error = NULL WHERE id = $1 AND status = 'failed' \
             AND EXISTS (SELECT 1 FROM bodies WHERE message_id = $1)",
        )
        .bind(id)
        .bind(now);
        Ok(self.update(query, "requeueing a message").await? == 1)
    }

    async fn wake(&self, transport: &str, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut woken = 0;
        loop {
            let query = sqlx::query(WAKE).bind(now).bind(transport).bind(WAKE_STEP);
            let done = self.update(query, "making held messages due").await?;
            woken += done;
            if done < WAKE_STEP as u64 {
                return Ok(woken);
            }
        }
    }

    async fn pending_count(&self, tenant: &str) -> Result<u64, StoreError> {
        let read = || async {
            let mut conn = self.pool.acquire().await?;
            // Planned at each use (at most about once a second per
            // tenant), for the table as it is then.
            let count = sqlx::query_scalar(PENDING_COUNT)
                .bind(tenant)
                .persistent(false)
                .fetch_one(&mut *conn);
            match tokio::time::timeout(STATEMENT_DEADLINE, count).await {
                Ok(count) => count,
                Err(_) => {
                    conn.close_on_drop();
                    Err(sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the database did not answer within {STATEMENT_DEADLINE:?}"),
                    )))
                }
            }
        };
        self.pending.count(tenant, read).await
    }

    async fn recover_interrupted(&self) -> Result<u64, StoreError> {
        // Shared by replicas: a `sending` row may be a live delivery elsewhere.
        // Leases decide when it is claimable again.
        Ok(0)
    }

    async fn purge_bodies(
        &self,
        older_than: OffsetDateTime,
        after: Option<&str>,
        batch: u32,
    ) -> Result<Pruned, StoreError> {
        retention::purge(&self.pool, older_than, after, batch).await
    }

    async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        // The rows hanging off the message have no foreign keys (migrations
        // 0011 and 0012): they go in the same statement, only if the
        // message does.
        let deleted: i64 = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM messages WHERE id = $1 \
                 AND status IN ('sent', 'failed', 'suppressed') RETURNING id), \
             body AS (DELETE FROM bodies WHERE message_id IN (SELECT id FROM gone)), \
             addressed AS (DELETE FROM recipients WHERE message_id IN (SELECT id FROM gone)), \
             history AS (DELETE FROM attempts WHERE message_id IN (SELECT id FROM gone)), \
             events AS (DELETE FROM delivery_events WHERE message_id IN (SELECT id FROM gone)) \
             SELECT count(*) FROM gone",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .context("deleting a message")?;
        Ok(deleted == 1)
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let mut conn = self.pool.acquire().await.context("reading queue figures")?;
        let read = async {
            let rows = sqlx::query(
                "SELECT status, count(*) AS n, min(created_at) AS oldest FROM messages \
                 WHERE status IN ('queued', 'sending', 'retrying') GROUP BY status",
            )
            .fetch_all(&mut *conn)
            .await?;
            // Dead letters are never purged and only counted, from the index
            // where the visibility map allows: their oldest is not asked for.
            let failed: i64 =
                sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = 'failed'")
                    .fetch_one(&mut *conn)
                    .await?;
            Ok::<_, sqlx::Error>((rows, failed))
        };
        let (rows, failed) = match tokio::time::timeout(STATEMENT_DEADLINE, read).await {
            Ok(read) => read.context("reading queue figures")?,
            Err(_) => return Err(unanswered(conn, "reading queue figures")),
        };
        let mut stats = QueueStats::default();
        for row in rows {
            let status: String = row.try_get("status").context("queue figures: status")?;
            let count: i64 = row.try_get("n").context("queue figures: count")?;
            let oldest: Option<OffsetDateTime> =
                row.try_get("oldest").context("queue figures: oldest")?;
            stats.add(
                Status::parse(&status),
                u64::try_from(count).unwrap_or_default(),
                oldest,
            );
        }
        stats.set_failed(failed);
        Ok(stats)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.writes.health.failing() {
            return self.writes.probe().await;
        }
        // Each step bounded under `/readyz`'s own 2 s, so that a server out
        // of reach fails the ping here, where its connection is closed: one
        // dropped mid-statement by the probe's timeout would be handed back
        // to the pool, whose check waits for an answer without bound and
        // keeps the slot (every probe would pin one more).
        let mut conn = tokio::time::timeout(PING_ACQUIRE, self.pool.acquire())
            .await
            .map_err(|_| anyhow::anyhow!("store ping: no connection within {PING_ACQUIRE:?}"))?
            .context("store ping")?;
        match tokio::time::timeout(PING_DEADLINE, conn.execute("SELECT 1")).await {
            Ok(done) => {
                done.context("store ping")?;
                Ok(())
            }
            Err(_) => {
                conn.close_on_drop();
                Err(anyhow::anyhow!("store ping: no answer within {PING_DEADLINE:?}").into())
            }
        }
    }

    async fn add_event(&self, event: &crate::events::DeliveryEvent) -> Result<bool, StoreError> {
        events::add(&self.pool, &super::storable_event(event)).await
    }

    async fn take_signature(
        &self,
        token: &crate::events::signature::SignatureToken,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        events::take_signature(&self.pool, token, now).await
    }

    async fn events(&self, id: Uuid) -> Result<Vec<crate::events::DeliveryEvent>, StoreError> {
        events::list(&self.pool, id).await
    }

    async fn recipients(&self, id: Uuid) -> Result<Vec<String>, StoreError> {
        events::recipients(&self.pool, id).await
    }

    async fn find_by_provider_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        events::by_provider_id(&self.pool, &super::storable_id(provider_message_id)).await
    }

    async fn suppress(&self, entry: &crate::suppression::Suppression) -> Result<bool, StoreError> {
        suppressions::add(
            &self.pool,
            &self.listed,
            &super::storable_suppression(entry),
        )
        .await
    }

    async fn unsuppress(&self, tenant: &str, email: &str) -> Result<bool, StoreError> {
        suppressions::remove(&self.pool, tenant, email).await
    }

    async fn suppressions(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<crate::suppression::Suppression>, StoreError> {
        suppressions::list(&self.pool, tenant, limit).await
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
        limits::prune(&self.pool, now, after, batch).await
    }

    async fn find_idempotent(
        &self,
        tenant: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StoreError> {
        limits::idempotent(&self.pool, tenant, key, now).await
    }

    async fn attempts(&self, id: Uuid) -> Result<Vec<super::history::AttemptRecord>, StoreError> {
        console::attempts(&self.pool, id).await
    }

    async fn search(
        &self,
        search: &super::history::Search,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        console::search(&self.pool, &search.storable()).await
    }

    async fn breakdown(
        &self,
        tenants: Option<&[String]>,
        since: OffsetDateTime,
    ) -> Result<super::history::Breakdown, StoreError> {
        console::breakdown(&self.pool, tenants, since).await
    }

    async fn transport_health(
        &self,
        transports: &[String],
    ) -> Result<Vec<super::history::TransportHealth>, StoreError> {
        console::transport_health(&self.pool, transports).await
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_a_log_line() {
        assert_eq!(
            redact("postgres://mb:s3cret@db.internal:5432/mailbridge?sslmode=require"),
            "postgres://***@db.internal:5432/mailbridge?sslmode=require"
        );
        assert_eq!(
            redact("postgres://db.internal/mailbridge"),
            "postgres://db.internal/mailbridge"
        );
        assert_eq!(redact("postgres://a:b@c@host/db"), "postgres://***@host/db");
        assert_eq!(redact("not a url"), "not a url");
        assert_eq!(
            redact("postgres://mb:pa/ss@db/x and more"),
            "postgres://***@db/x and more"
        );
        assert_eq!(redact("postgres://mb:pa?ss@db/x"), "postgres://***@db/x");
        assert_eq!(
            redact("postgres://db/x?sslmode=require&password=s3cret"),
            "postgres://db/x?sslmode=require&password=***"
        );
    }
}
