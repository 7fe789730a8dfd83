//! WAL checkpoints beside the writer instead of inside its commits. By
//! default SQLite copies the WAL back into the database file (and syncs that
//! file) in whichever commit crosses 1,000 pages: under load several times a
//! second, each time holding up every request of that group. The writer's
//! connection therefore does not checkpoint; a connection of its own does,
//! shortly after commits, in `PASSIVE` mode, which never blocks the writer.
//! Durability is the WAL's either way: each commit is synced to it first.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio::sync::mpsc;

use crate::queue::StoreError;

/// Least time between two checkpoints: the WAL grows by at most this much
/// of the writer's output before it is copied back.
const PAUSE: Duration = Duration::from_millis(100);

/// The WAL file is cut back to this size once checkpointed (bytes).
pub(super) const WAL_SIZE_LIMIT: &str = "67108864";

/// Asks for a checkpoint; cheap, and never waits.
#[derive(Debug, Clone)]
pub(super) struct Checkpoints(mpsc::Sender<()>);

impl Checkpoints {
    /// Something was committed: checkpoint soon.
    pub(super) fn wanted(&self) {
        let _ = self.0.try_send(());
    }
}

/// Starts the checkpointing connection; it stops when every [`Checkpoints`] is gone.
pub(super) async fn start(options: SqliteConnectOptions) -> Result<Checkpoints, StoreError> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .context("opening the queue file for checkpoints")?;
    let (wanted, mut asked) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut failing = false;
        while asked.recv().await.is_some() {
            failing = checkpoint(&pool, failing).await;
            tokio::time::sleep(PAUSE).await;
        }
        pool.close().await;
    });
    Ok(Checkpoints(wanted))
}

/// One passive checkpoint; says whether it failed, logging only changes
/// (a full disk would otherwise log ten times a second).
async fn checkpoint(pool: &SqlitePool, was_failing: bool) -> bool {
    match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(pool)
        .await
    {
        Ok(_) if was_failing => {
            tracing::info!("queue store: WAL checkpoints succeed again");
            false
        }
        Ok(_) => false,
        Err(e) => {
            if !was_failing {
                tracing::warn!(error = %e, "queue store: a WAL checkpoint failed; commits go on in the WAL, and checkpoints are tried again");
            }
            true
        }
    }
}
