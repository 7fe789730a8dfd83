//! One source's cached token, with a single request in flight at a time.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use tokio::time::Instant;

use super::{AccessToken, OAuthError, TokenFreshness};

/// The cached token of one source. Callers that find it stale queue on
/// `fetching`; the first one fetches, the others take its result.
#[derive(Debug, Default)]
pub(super) struct TokenCache {
    current: Mutex<Option<AccessToken>>,
    /// The latest failure and when it happened, shared with the callers that
    /// were waiting for that fetch so a down endpoint is asked once, not by
    /// every waiting caller in turn.
    last_failure: Mutex<Option<(Instant, OAuthError)>>,
    fetching: tokio::sync::Mutex<()>,
    /// Tokens fetched successfully, for the refresh metric.
    fetched: AtomicU64,
    /// What operators see: the latest token's times and the latest failure.
    shown: Mutex<TokenFreshness>,
}

impl TokenCache {
    /// The cached token while fresh, else the result of `fetch` (run by one
    /// caller at a time).
    pub(super) async fn get<F, Fut>(&self, fetch: F) -> Result<AccessToken, OAuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, OAuthError>>,
    {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let asked_at = Instant::now();
        let _turn = self.fetching.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        if let Some(error) = self.failure_since(asked_at) {
            return Err(error);
        }
        match fetch().await {
            Ok(token) => {
                let fetches = self.fetched.fetch_add(1, Ordering::Relaxed) + 1;
                let mut shown = lock(&self.shown);
                shown.fetched_at = Some(SystemTime::now());
                shown.expires_at = Some(token.expires_at());
                shown.fetches = fetches;
                drop(shown);
                *lock(&self.current) = Some(token.clone());
                Ok(token)
            }
            Err(error) => {
                lock(&self.shown).last_error = Some((SystemTime::now(), error.to_string()));
                *lock(&self.last_failure) = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    /// Drops `token` if it is still the cached one (not a newer token).
    pub(super) fn invalidate(&self, token: &AccessToken) {
        let mut current = lock(&self.current);
        if current.as_ref() == Some(token) {
            *current = None;
        }
    }

    /// How many tokens were fetched successfully so far.
    pub(super) fn fetches(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// The latest token's times and the latest failure.
    pub(super) fn freshness(&self) -> TokenFreshness {
        lock(&self.shown).clone()
    }

    fn fresh(&self) -> Option<AccessToken> {
        lock(&self.current)
            .as_ref()
            .filter(|t| t.is_fresh())
            .cloned()
    }

    fn failure_since(&self, since: Instant) -> Option<OAuthError> {
        lock(&self.last_failure)
            .as_ref()
            .filter(|(at, _)| *at >= since)
            .map(|(_, e)| e.clone())
    }
}

/// Locks a mutex that guards plain data; a panic elsewhere cannot leave that
/// data half-written, so a poisoned lock is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn counting_fetch(
        count: &Arc<AtomicUsize>,
        lifetime: Duration,
    ) -> impl Future<Output = Result<AccessToken, OAuthError>> + use<> {
        let count = Arc::clone(count);
        async move {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(AccessToken::new(format!("token-{n}"), lifetime))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_fetch() {
        let cache = Arc::new(TokenCache::default());
        let count = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let (cache, count) = (Arc::clone(&cache), Arc::clone(&count));
                tokio::spawn(async move {
                    cache
                        .get(|| counting_fetch(&count, Duration::from_secs(3600)))
                        .await
                })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap().secret(), "token-1");
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_a_minute_before_expiry() {
        let cache = TokenCache::default();
        let count = Arc::new(AtomicUsize::new(0));
        let life = Duration::from_secs(3600);
        cache.get(|| counting_fetch(&count, life)).await.unwrap();
        tokio::time::advance(Duration::from_secs(3600 - 61)).await;
        let t = cache.get(|| counting_fetch(&count, life)).await.unwrap();
        assert_eq!(t.secret(), "token-1");
        tokio::time::advance(Duration::from_secs(2)).await;
        let t = cache.get(|| counting_fetch(&count, life)).await.unwrap();
        assert_eq!(t.secret(), "token-2");
        assert_eq!(cache.fetches(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_drops_only_the_refused_token() {
        let cache = TokenCache::default();
        let count = Arc::new(AtomicUsize::new(0));
        let life = Duration::from_secs(3600);
        let first = cache.get(|| counting_fetch(&count, life)).await.unwrap();
        cache.invalidate(&first);
        let second = cache.get(|| counting_fetch(&count, life)).await.unwrap();
        assert_eq!(second.secret(), "token-2");
        // A late refusal of the old token must not throw away the new one.
        cache.invalidate(&first);
        let again = cache.get(|| counting_fetch(&count, life)).await.unwrap();
        assert_eq!(again.secret(), "token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_callers_share_a_failure() {
        let cache = Arc::new(TokenCache::default());
        let count = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let (cache, count) = (Arc::clone(&cache), Arc::clone(&count));
                tokio::spawn(async move {
                    cache
                        .get(|| async move {
                            count.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Err(OAuthError::Config("no".into()))
                        })
                        .await
                })
            })
            .collect();
        for caller in callers {
            assert!(caller.await.unwrap().is_err());
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(cache.fetches(), 0, "a failed fetch is not a refresh");
    }
}
