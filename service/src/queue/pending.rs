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

/// Counts per tenant, reused for [`FRESH_FOR`] and kept up to date with what
/// this process accepts meanwhile.
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingCache(Arc<Mutex<HashMap<String, (Instant, u64)>>>);

impl PendingCache {
    /// `tenant`'s count from the last second, else the one `read` counts now.
    pub(crate) async fn count<F, Fut>(&self, tenant: &str, read: F) -> Result<u64, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<i64, sqlx::Error>>,
    {
        if let Some(count) = self.get(tenant) {
            return Ok(count);
        }
        let count = read().await.context("counting pending messages")?;
        let count = u64::try_from(count).unwrap_or_default();
        self.put(tenant, count);
        Ok(count)
    }

    /// A tenant's count from the last second, if there is one.
    fn get(&self, tenant: &str) -> Option<u64> {
        let cache = self.0.lock().ok()?;
        let (at, count) = cache.get(tenant)?;
        (at.elapsed() < FRESH_FOR).then_some(*count)
    }

    /// Remembers a count just read from the store.
    fn put(&self, tenant: &str, count: u64) {
        if let Ok(mut cache) = self.0.lock() {
            cache.insert(tenant.to_owned(), (Instant::now(), count));
        }
    }

    /// One more message of `tenant` was accepted.
    pub(crate) fn accepted(&self, tenant: &str) {
        if let Ok(mut cache) = self.0.lock()
            && let Some((_, count)) = cache.get_mut(tenant)
        {
            *count += 1;
        }
    }
}
