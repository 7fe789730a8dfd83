//! The moment a message leaves: from the end of an SMTP `DATA` (the final
//! dot) or the sending of a provider's API request on, the peer may have the
//! message, and an attempt cut before its answer is recorded would be
//! attempted again: the message would go twice.
//!
//! The worker runs each send inside a [`Handover`] (a task-local); a
//! transport calls [`begin`] right before the bytes that hand the message
//! over, and [`Handed::refused`] when the peer's answer says it did not take
//! it. Once the service is stopping, the worker cuts a send only while
//! nothing is handed over, and [`begin`] never lets a new hand-over start:
//! it waits for the cut instead. Outside the worker (`mailbridge send`, a
//! transport's own tests) there is no [`Handover`] and both do nothing.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

tokio::task_local! {
    static CURRENT: Arc<Handover>;
}

/// One attempt's hand-over state, shared by the worker and the transport.
#[derive(Debug)]
pub struct Handover {
    /// The message may be with the peer, and no answer said otherwise.
    handed: AtomicBool,
    /// Cancelled once the service is stopping: no new hand-over starts.
    stopping: CancellationToken,
    /// Told when a hand-over ended with a refusal.
    refused: Notify,
}

impl Handover {
    /// A hand-over state for one attempt; `stopping` is the service's.
    pub fn new(stopping: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            handed: AtomicBool::new(false),
            stopping,
            refused: Notify::new(),
        })
    }

    /// Runs `send` with `self` as the current hand-over state.
    pub fn scope<F: Future>(self: &Arc<Self>, send: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self.clone(), send)
    }

    /// Whether the message may be with the peer: cutting the attempt now
    /// could deliver it twice.
    pub fn handed(&self) -> bool {
        self.handed.load(Ordering::SeqCst)
    }

    /// Completes when a hand-over may have ended by a refusal (check
    /// [`Handover::handed`] again).
    pub async fn refused(&self) {
        self.refused.notified().await;
    }
}

/// A hand-over under way (see [`begin`]).
#[must_use = "say when the peer refused the message"]
#[derive(Debug)]
pub struct Handed(Option<Arc<Handover>>);

impl Handed {
    /// The peer answered that it did not take the message: cutting the
    /// attempt is harmless again.
    pub fn refused(self) {
        if let Some(handover) = self.0 {
            handover.handed.store(false, Ordering::SeqCst);
            handover.refused.notify_one();
        }
    }
}

/// Called by a transport right before it hands the message over (writes the
/// message after `DATA`, sends an API request). Once the service is stopping
/// it never completes: the worker cuts the attempt before anything is sent.
pub async fn begin() -> Handed {
    let Ok(handover) = CURRENT.try_with(Arc::clone) else {
        return Handed(None);
    };
    if handover.stopping.is_cancelled() {
        std::future::pending::<()>().await;
    }
    handover.handed.store(true, Ordering::SeqCst);
    Handed(Some(handover))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hand_over_is_marked_until_refused_and_none_starts_once_stopping() {
        let stopping = CancellationToken::new();
        let handover = Handover::new(stopping.clone());
        let handed = handover.scope(begin()).await;
        assert!(handover.handed());
        handed.refused();
        assert!(!handover.handed());
        handover.refused().await;

        stopping.cancel();
        let late = handover.scope(begin());
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), late).await;
        assert!(waited.is_err(), "no hand-over starts once stopping");
        assert!(!handover.handed());
    }

    #[tokio::test]
    async fn outside_an_attempt_nothing_is_marked_or_held() {
        begin().await.refused();
    }
}
