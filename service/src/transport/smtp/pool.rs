//! Idle SMTP connections kept for the next message.
//!
//! A connection goes back to the pool only after a transaction that ended
//! well. It is not probed with NOOP before reuse (one round trip per message
//! saved); instead a reused connection whose first command finds it closed is
//! replaced at once (see [`super::connect::Failure::Stale`]). Connections idle
//! longer than [`IDLE_TIMEOUT`], or authenticated with an XOAUTH2 token that
//! is no longer the current one, are closed instead of reused.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::connect::Connection;
use crate::oauth::AccessToken;

/// How long an idle connection is kept; servers commonly drop idle clients
/// after a few minutes (Postfix: 300 s).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound of the polite QUIT when a connection is closed.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The idle connections of one transport, the most recently used last.
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<Vec<(Instant, Connection)>>,
}

impl Pool {
    /// An idle connection authenticated with `token` (or without XOAUTH2),
    /// closing the stale ones met on the way.
    pub(super) fn take(&self, token: Option<&AccessToken>) -> Option<Connection> {
        let mut idle = self.lock();
        let (usable, stale): (Vec<_>, Vec<_>) = idle
            .drain(..)
            .partition(|(since, c)| since.elapsed() < IDLE_TIMEOUT && c.token.as_ref() == token);
        *idle = usable;
        let found = idle.pop().map(|(_, c)| c);
        drop(idle);
        for (_, connection) in stale {
            close(connection);
        }
        found
    }

    /// Keeps `connection` for the next message, unless it broke.
    pub(super) fn put(&self, connection: Connection) {
        if connection.smtp.has_broken() {
            return;
        }
        self.lock().push((Instant::now(), connection));
    }

    /// Closes every idle connection.
    pub(super) fn clear(&self) {
        let idle = std::mem::take(&mut *self.lock());
        for (_, connection) in idle {
            close(connection);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Instant, Connection)>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Says QUIT (bounded) in the background and drops the connection.
pub(super) fn close(mut connection: Connection) {
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
