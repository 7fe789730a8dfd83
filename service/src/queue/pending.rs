//! A short-lived cache of each tenant's pending count, shared by the stores:
//! counting a large backlog on every request would cost more than the insert
//! itself, and the per-tenant bound is approximate anyway.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::StoreError;

/// How long a tenant's pending count may be reused.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// How long the others wait for one caller's count before another counts.
const COUNT_FOR: Duration = Duration::from_secs(10);

/// Counts per tenant, reused for [`FRESH_FOR`] and kept up to date with what
/// this process accepts meanwhile. When a count is older, one caller counts
/// again; the others go on with the old figure (plus what was accepted
/// since) until that count arrives, instead of every request of that moment
/// counting the same backlog at once. A count that has not come after
/// [`COUNT_FOR`] (a store that hangs) no longer holds the others back: the
/// next caller counts too.
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingCache(Arc<Mutex<HashMap<String, Entry>>>);

#[derive(Debug)]
struct Entry {
    at: Instant,
    count: u64,
    /// Since when a caller is counting again.
    refreshing: Option<Instant>,
}

/// What a caller does about a tenant's count.
enum Lookup {
    /// Use this figure.
    Known(u64),
    /// Count, and keep the figure for the others.
    Count,
}

impl PendingCache {
    /// `tenant`'s count from the last second (or while another caller counts
    /// again), else the one `read` counts now.
    pub(crate) async fn count<F, Fut>(&self, tenant: &str, read: F) -> Result<u64, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<i64, sqlx::Error>>,
    {
        if let Lookup::Known(count) = self.lookup(tenant) {
            return Ok(count);
        }
        // Whatever ends the count (an error, the request going away) lets
        // the next caller count.
        let counting = Counting {
            cache: self,
            tenant,
        };
        // The one counting is bounded as well: a store that hangs (packets
        // lost on the way to the database) fails the request instead of
        // holding it until TCP gives up.
        let count = tokio::time::timeout(COUNT_FOR, read())
            .await
            .map_err(|_| anyhow::anyhow!("the store did not answer within {COUNT_FOR:?}"))
            .context("counting pending messages")?
            .context("counting pending messages")?;
        let count = u64::try_from(count).unwrap_or_default();
        counting.done(count);
        Ok(count)
    }

    fn lookup(&self, tenant: &str) -> Lookup {
        let Ok(mut cache) = self.0.lock() else {
            return Lookup::Count;
        };
        match cache.get_mut(tenant) {
            Some(entry)
                if entry.at.elapsed() < FRESH_FOR
                    || entry
                        .refreshing
                        .is_some_and(|since| since.elapsed() < COUNT_FOR) =>
            {
                Lookup::Known(entry.count)
            }
            Some(entry) => {
                entry.refreshing = Some(Instant::now());
                Lookup::Count
            }
            None => Lookup::Count,
        }
    }

    /// One more message of `tenant` was accepted.
    pub(crate) fn accepted(&self, tenant: &str) {
        if let Ok(mut cache) = self.0.lock()
            && let Some(entry) = cache.get_mut(tenant)
        {
            entry.count += 1;
        }
    }
}

/// A count under way for one tenant.
struct Counting<'a> {
    cache: &'a PendingCache,
    tenant: &'a str,
}

impl Counting<'_> {
    /// Keeps the figure just read.
    fn done(self, count: u64) {
        if let Ok(mut cache) = self.cache.0.lock() {
            cache.insert(
                self.tenant.to_owned(),
                Entry {
                    at: Instant::now(),
                    count,
                    refreshing: None,
                },
            );
        }
    }
}

impl Drop for Counting<'_> {
    fn drop(&mut self) {
        if let Ok(mut cache) = self.cache.0.lock()
            && let Some(entry) = cache.get_mut(self.tenant)
        {
            entry.refreshing = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn age(cache: &PendingCache, tenant: &str) {
        let mut map = cache.0.lock().unwrap();
        map.get_mut(tenant).unwrap().at = Instant::now() - FRESH_FOR * 2;
    }

    #[tokio::test]
    async fn an_old_count_is_counted_again_by_one_caller_at_a_time() {
        let cache = PendingCache::default();
        let reads = AtomicUsize::new(0);
        let (release, released) = tokio::sync::watch::channel(false);
        let read = |n: i64| {
            let mut released = released.clone();
            let reads = &reads;
            move || async move {
                reads.fetch_add(1, Ordering::SeqCst);
                released.wait_for(|r| *r).await.unwrap();
                Ok(n)
            }
        };
        release.send(true).unwrap();
        assert_eq!(cache.count("acme", read(10)).await.unwrap(), 10);
        cache.accepted("acme");
        assert_eq!(cache.count("acme", read(99)).await.unwrap(), 11, "fresh");
        assert_eq!(reads.load(Ordering::SeqCst), 1);

        age(&cache, "acme");
        release.send(false).unwrap();
        let counting = cache.count("acme", read(5));
        tokio::pin!(counting);
        assert!(futures::poll!(counting.as_mut()).is_pending());
        // Meanwhile the others use the figure they had, accepts included.
        cache.accepted("acme");
        for _ in 0..20 {
            let other = tokio::time::timeout(Duration::from_secs(5), cache.count("acme", read(77)));
            assert_eq!(other.await.expect("not held up").unwrap(), 12);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 2, "one caller counts");
        release.send(true).unwrap();
        assert_eq!(counting.await.unwrap(), 5);
        assert_eq!(
            cache.count("acme", read(77)).await.unwrap(),
            5,
            "the new count"
        );
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_count_that_hangs_is_taken_over() {
        let cache = PendingCache::default();
        assert_eq!(cache.count("acme", || async { Ok(3) }).await.unwrap(), 3);
        age(&cache, "acme");
        let mut hanging = Box::pin(cache.count("acme", std::future::pending));
        assert!(futures::poll!(hanging.as_mut()).is_pending());
        assert_eq!(cache.count("acme", || async { Ok(9) }).await.unwrap(), 3);
        cache.0.lock().unwrap().get_mut("acme").unwrap().refreshing =
            Some(Instant::now() - COUNT_FOR);
        assert_eq!(cache.count("acme", || async { Ok(9) }).await.unwrap(), 9);
    }

    #[tokio::test]
    async fn a_count_that_fails_or_is_dropped_lets_the_next_caller_count() {
        let cache = PendingCache::default();
        assert_eq!(cache.count("acme", || async { Ok(3) }).await.unwrap(), 3);
        age(&cache, "acme");
        let failed = cache
            .count("acme", || async { Err(sqlx::Error::PoolTimedOut) })
            .await;
        assert!(failed.is_err());
        assert_eq!(cache.count("acme", || async { Ok(4) }).await.unwrap(), 4);

        age(&cache, "acme");
        let mut dropped = Box::pin(cache.count("acme", std::future::pending));
        assert!(futures::poll!(dropped.as_mut()).is_pending());
        assert_eq!(cache.count("acme", || async { Ok(8) }).await.unwrap(), 4);
        drop(dropped);
        assert_eq!(cache.count("acme", || async { Ok(8) }).await.unwrap(), 8);
    }
}
