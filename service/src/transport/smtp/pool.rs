//! Idle SMTP connections kept for the next message.
//!
//! A connection goes back to the pool only after a transaction that ended
//! well. It is not probed with NOOP before reuse (one round trip per message
//! saved); instead a reused connection whose first command finds it closed is
//! replaced at once (see [`super::connect::Failure::Stale`]). Connections idle
//! longer than the transport's `idle_timeout`, or authenticated with an
//! XOAUTH2 token that is no longer the current one, are closed instead of
//! reused; a background sweep closes expired ones even when no mail comes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::connect::Connection;
use crate::oauth::AccessToken;

/// Bound of the polite QUIT when a connection is closed.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The idle connections of one transport, the most recently used last.
pub(super) struct Pool {
    idle_timeout: Duration,
    idle: Mutex<Vec<(Instant, Connection)>>,
    /// Whether the sweeping task runs (started with the first idle connection).
    sweeping: AtomicBool,
}

impl Pool {
    pub(super) fn new(idle_timeout: Duration) -> Self {
        Self {
            idle_timeout,
            idle: Mutex::default(),
            sweeping: AtomicBool::new(false),
        }
    }

    /// An idle connection authenticated with `token` (or without XOAUTH2),
    /// closing the stale ones met on the way.
    pub(super) fn take(&self, token: Option<&AccessToken>) -> Option<Connection> {
        self.retain(|since, c| self.fresh(since) && c.token.as_ref() == token)
            .pop()
            .map(|(_, c)| c)
    }

    /// Keeps `connection` for the next message, unless it broke.
    pub(super) fn put(self: &Arc<Self>, connection: Connection) {
        if connection.smtp.has_broken() {
            return;
        }
        self.lock().push((Instant::now(), connection));
        if !self.sweeping.swap(true, Ordering::AcqRel)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(sweep(Arc::downgrade(self)));
        }
    }

    /// Closes the connections idle longer than the idle timeout.
    fn close_expired(&self) {
        drop(self.retain(|since, _| self.fresh(since)));
    }

    /// Closes the idle connections `keep` rejects; answers the rest, locked.
    fn retain(
        &self,
        keep: impl Fn(&Instant, &Connection) -> bool,
    ) -> MutexGuard<'_, Vec<(Instant, Connection)>> {
        let mut idle = self.lock();
        let (kept, closing): (Vec<_>, Vec<_>) =
            idle.drain(..).partition(|(since, c)| keep(since, c));
        *idle = kept;
        // `close` only spawns the QUIT: nothing waits while the lock is held.
        for (_, connection) in closing {
            close(connection);
        }
        idle
    }

    /// Whether a connection idle since `since` may still be used.
    fn fresh(&self, since: &Instant) -> bool {
        since.elapsed() < self.idle_timeout
    }

    /// Closes every idle connection.
    pub(super) fn clear(&self) {
        let idle = std::mem::take(&mut *self.lock());
        for (_, connection) in idle {
            close(connection);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(Instant, Connection)>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every half idle timeout, closes expired idle connections of `pool`,
/// until the transport is gone.
async fn sweep(pool: Weak<Pool>) {
    loop {
        let Some(period) = pool.upgrade().map(|p| p.idle_timeout / 2) else {
            return;
        };
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        pool.close_expired();
    }
}

/// Says QUIT (bounded) in the background and drops the connection; one
/// left in the middle of a message is dropped at once.
pub(super) fn close(mut connection: Connection) {
    if connection.in_data {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        connection.log.sent("QUIT");
        if let Ok(reply) = tokio::time::timeout(QUIT_TIMEOUT, connection.smtp.quit()).await {
            connection.log.answer(&reply);
        }
    });
}
