//! Statistics that keep up with a young table's growth.
//!
//! PostgreSQL keeps the plans of prepared statements (and of foreign-key
//! checks) per connection until a table's statistics change. Made from the
//! statistics of a small table (autovacuum's first ANALYZE of a new install,
//! a suppression list of ten entries) those plans scan the table, cheaper
//! than an index for a page or two, and they stay so however much the table
//! grows until the next ANALYZE, which autovacuum runs only at its next
//! pass (a minute apart by default, later when its workers are busy).
//! Meanwhile every claim, every lookup read the whole table: a claim took
//! 81 ms with 100,000 queued messages, a suppression lookup 49 ms with
//! 200,000 entries, a flow limit's lock and spend 6 and 4 ms with 100,000
//! cells.
//!
//! So a replica takes the statistics of the tables it fills itself (the
//! queue's, the suppression list, the flow limits' cells), each time its
//! own additions may have doubled them: at its 1,000th new row, and then
//! when its additions since reach the rows the last ANALYZE counted. A
//! table of a million rows has had about ten; each samples at most 30,000
//! rows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::PgPool;

/// Rows added before the statistics are taken again, at the least.
pub const GROWTH_MIN: u64 = 1_000;

/// Rows this replica added to some tables since it last took their statistics.
#[derive(Debug)]
pub(super) struct Growth {
    /// The tables, as `ANALYZE` takes them (`messages, bodies`).
    tables: &'static str,
    /// The one whose row count says when the next time is.
    counted: &'static str,
    /// Rows added since, and the rows the last ANALYZE counted.
    state: Mutex<(u64, u64)>,
    /// An ANALYZE is under way.
    running: AtomicBool,
}

impl Growth {
    /// Starts counting from what the statistics say now: a replica started
    /// on a large table takes no ANALYZE until it may have doubled it.
    pub(super) async fn open(
        pool: &PgPool,
        tables: &'static str,
        counted: &'static str,
    ) -> Arc<Growth> {
        let growth = Growth {
            tables,
            counted,
            state: Mutex::new((0, 0)),
            running: AtomicBool::new(false),
        };
        // Unknown (an error) counts as a small table: statistics come sooner.
        let rows = growth.rows(pool).await.unwrap_or(0);
        growth.state.lock().unwrap_or_else(|e| e.into_inner()).1 = rows;
        Arc::new(growth)
    }

    /// Counts `rows` added; true when the statistics are due, and then no
    /// other caller is told so until [`Growth::analyze`] has run.
    fn added(&self, rows: u64) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (added, counted) = &mut *state;
        *added += rows;
        if *added < (*counted).max(GROWTH_MIN) || self.running.swap(true, Ordering::AcqRel) {
            return false;
        }
        *added = 0;
        true
    }

    /// Counts `rows` added and, when the statistics are due, takes them in
    /// the background: the caller does not wait, and a caller that goes away
    /// (a client hanging up) does not cut it short.
    pub(super) fn note(self: &Arc<Self>, pool: &PgPool, rows: u64) {
        if self.added(rows) {
            let (growth, pool) = (self.clone(), pool.clone());
            tokio::spawn(async move { growth.analyze(&pool).await });
        }
    }

    /// Takes the statistics (after [`Growth::added`] said so). A failure is
    /// logged: only plans suffer from old statistics, until autovacuum
    /// takes them.
    async fn analyze(&self, pool: &PgPool) {
        if let Err(error) = self.try_analyze(pool).await {
            tracing::warn!(
                tables = self.tables,
                error = %format!("{error:#}"),
                "could not take the statistics of a growing table"
            );
        }
        self.running.store(false, Ordering::Release);
    }

    async fn try_analyze(&self, pool: &PgPool) -> anyhow::Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {}", self.tables)))
            .execute(pool)
            .await?;
        let rows = self.rows(pool).await?;
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = rows;
        Ok(())
    }

    /// The rows of the counted table, as its statistics say.
    async fn rows(&self, pool: &PgPool) -> anyhow::Result<u64> {
        let rows: f32 =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = $1::regclass")
                .bind(self.counted)
                .fetch_one(pool)
                .await?;
        // reltuples is -1 before a table's first ANALYZE, a count after it.
        Ok(if rows.is_finite() && rows > 0.0 {
            rows as u64
        } else {
            0
        })
    }
}
