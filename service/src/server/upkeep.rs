//! The store's upkeep in the background: retention and flow-limit pruning.
//! Each is a walk of short steps through the store, other tasks (and, on
//! SQLite, commit groups waiting for its one writer) running between them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::queue::{JobStore, Pruned, StoreError};

/// How often flow-limit cells are pruned by default.
pub(super) const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Rows looked at per step: short statements that accepts and limit checks
/// (which wait for the same rows or the same SQLite writer) barely notice.
const STEP: u32 = 1000;

/// Drops the bodies of messages that ended (sent or suppressed) more than
/// `retention` ago, hourly and at start, [`STEP`] bodies at a time.
pub(super) async fn retention_task(store: Arc<dyn JobStore>, retention: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let cutoff = time::OffsetDateTime::now_utc() - retention;
        let purged = walk(|after| {
            let store = store.clone();
            async move { store.purge_bodies(cutoff, after.as_deref(), STEP).await }
        })
        .await;
        match purged {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "removed bodies of messages past their retention"),
            Err((n, e)) => tracing::warn!(
                count = n,
                error = %e,
                "could not apply retention to every message; trying again in an hour"
            ),
        }
    }
}

/// Deletes flow-limit cells whose window has passed, every `every`: a walk
/// over all cells, [`STEP`] at a time.
pub(super) async fn prune_task(store: Arc<dyn JobStore>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = time::OffsetDateTime::now_utc();
        let pruned = walk(|after| {
            let store = store.clone();
            async move { store.prune_limits(now, after.as_deref(), STEP).await }
        })
        .await;
        match pruned {
            Ok(0) => {}
            Ok(n) => tracing::debug!(count = n, "pruned flow-limit cells past their window"),
            Err((_, e)) => {
                tracing::warn!(error = %e, "could not prune flow limits; trying again later")
            }
        }
    }
}

/// Takes `step`s, each from where the one before ended (`None` first),
/// until one says nothing is left; the rows they deleted. A step that fails
/// ends the walk (with what was deleted before it): the next run starts over.
async fn walk<F, Fut>(mut step: F) -> Result<u64, (u64, StoreError)>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Pruned, StoreError>>,
{
    let (mut deleted, mut after) = (0, None);
    loop {
        match step(after.take()).await {
            Ok(done) => {
                deleted += done.deleted;
                match done.next {
                    Some(next) => after = Some(next),
                    None => return Ok(deleted),
                }
            }
            Err(e) => return Err((deleted, e)),
        }
        tokio::task::yield_now().await;
    }
}
