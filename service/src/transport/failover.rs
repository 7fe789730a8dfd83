//! `failover(A B …)` and `roundrobin(A B …)`: several transports behind one.
//!
//! Failover uses the first healthy transport; round robin takes them in turn.
//! A transport that fails with a transient or auth error, or whose key or
//! account its provider refuses (HTTP 401/403), is marked down and skipped for
//! [`SKIP_FOR`] while another one is up; the message goes on to the next one
//! at once. Any other permanent error is returned as it is: a message that one
//! provider refuses as malformed would be refused by the others too.
//! When every transport is marked down, each is tried again rather than
//! failing without trying, so a recovered transport is found on the next attempt.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Delivery, Dsn, SharedTransport, Transport, TransportError};
use crate::email::OutgoingMessage;

/// How long a transport that failed is skipped.
pub const SKIP_FOR: Duration = Duration::from_secs(60);

/// The current time; replaced in tests so that skipping is exact.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// How the transports are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Always the first healthy one.
    Failover,
    /// Each message starts at the next one.
    RoundRobin,
}

/// One inner transport, its name for error messages, and when it is up again.
struct Member {
    name: String,
    transport: SharedTransport,
    down_until: Mutex<Option<Instant>>,
}

impl Member {
    fn is_down(&self, now: Instant) -> bool {
        let until = *self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|t| now < t)
    }

    fn mark(&self, until: Option<Instant>) {
        *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) = until;
    }
}

/// Several transports behind one, by [`Strategy`].
pub struct Group {
    strategy: Strategy,
    members: Vec<Member>,
    next: AtomicUsize,
    clock: Clock,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        f.debug_struct("Group")
            .field("strategy", &self.strategy)
            .field("members", &names)
            .finish()
    }
}

impl Group {
    /// A group of named transports (names appear in error messages; never secrets).
    pub fn new(strategy: Strategy, members: Vec<(String, SharedTransport)>) -> Self {
        Self::with_clock(strategy, members, Arc::new(Instant::now))
    }

    /// [`new`](Self::new) with an injected clock (tests).
    pub fn with_clock(
        strategy: Strategy,
        members: Vec<(String, SharedTransport)>,
        clock: Clock,
    ) -> Self {
        let members = members
            .into_iter()
            .map(|(name, transport)| Member {
                name,
                transport,
                down_until: Mutex::new(None),
            })
            .collect();
        Self {
            strategy,
            members,
            next: AtomicUsize::new(0),
            clock,
        }
    }

    /// The order in which to try the members for one message: those up first
    /// (from the strategy's starting point), those marked down after them.
    fn order(&self, now: Instant) -> Vec<&Member> {
        let n = self.members.len();
        let start = match self.strategy {
            Strategy::Failover => 0,
            Strategy::RoundRobin if n > 0 => self.next.fetch_add(1, Ordering::Relaxed) % n,
            Strategy::RoundRobin => 0,
        };
        let rotated = (0..n).map(|i| &self.members[(start + i) % n]);
        let (up, down): (Vec<_>, Vec<_>) = rotated.partition(|m| !m.is_down(now));
        if up.is_empty() { down } else { up }
    }
}

#[async_trait]
impl Transport for Group {
    async fn send(&self, message: &OutgoingMessage) -> Result<Delivery, TransportError> {
        let mut failures = Vec::new();
        for member in self.order((self.clock)()) {
            match member.transport.send(message).await {
                Ok(delivery) => {
                    member.mark(None);
                    return Ok(delivery);
                }
                Err(
                    e @ TransportError::Permanent {
                        credentials: false, ..
                    },
                ) => return Err(e),
                Err(e) => {
                    tracing::warn!(transport = %member.name, error = %e, "transport failed, trying the next one");
                    // An answer about this message (a 4xx about one
                    // recipient) says nothing of the member: it stays up
                    // for the others' messages.
                    if !e.is_about_the_message() {
                        member.mark(Some((self.clock)() + SKIP_FOR));
                    }
                    failures.push((member.name.as_str(), e));
                }
            }
        }
        Err(all_failed(&failures))
    }

    async fn check(&self) -> Result<(), TransportError> {
        for member in &self.members {
            member
                .transport
                .check()
                .await
                .map_err(|e| named(&member.name, &e))?;
        }
        Ok(())
    }

    /// The members' fetches together: the group is one transport to operators.
    fn token_fetches(&self) -> Option<u64> {
        self.members
            .iter()
            .filter_map(|m| m.transport.token_fetches())
            .reduce(|a, b| a + b)
    }
}

/// One error naming every failure: permanent if every transport refused its
/// credentials (as one transport alone would be), else transient with the
/// soonest retry hint.
fn all_failed(failures: &[(&str, TransportError)]) -> TransportError {
    let message = failures
        .iter()
        .map(|(name, e)| format!("{name}: {e}"))
        .collect::<Vec<_>>()
        .join("; ");
    let message = format!("all transports failed: {message}");
    let error = if failures.iter().all(|(_, e)| !e.is_transient()) {
        TransportError::refused_credentials(message)
    } else {
        let retry_after = failures.iter().filter_map(|(_, e)| e.retry_after()).min();
        TransportError::transient_after(message, retry_after)
    };
    // The first answer about the message stands for the group's; without
    // one (every member unreachable, overloaded or refusing its credentials)
    // the group says nothing about the message, and may be held as down.
    let about_the_message = failures
        .iter()
        .filter(|(_, e)| e.is_about_the_message())
        .find_map(|(_, e)| e.code());
    match about_the_message {
        Some(code) => error.with_code(code),
        None => error,
    }
}

/// The same error, prefixed with the transport's name.
fn named(name: &str, e: &TransportError) -> TransportError {
    e.clone().map_message(|m| format!("{name}: {m}"))
}

/// A name for an inner DSN that never shows its credentials: `scheme://host[:port]`.
pub fn member_name(index: usize, dsn: &Dsn) -> String {
    let base = if dsn.children.is_empty() {
        match dsn.port {
            Some(port) => format!("{}://{}:{port}", dsn.scheme, dsn.host),
            None => format!("{}://{}", dsn.scheme, dsn.host),
        }
    } else {
        format!("{}(…)", dsn.scheme)
    };
    format!("#{} {base}", index + 1)
}

/// Builds `failover(…)` or `roundrobin(…)` from its parsed DSN.
pub fn from_dsn(dsn: &Dsn) -> Result<SharedTransport, super::DsnError> {
    let strategy = match dsn.scheme.as_str() {
        "failover" => Strategy::Failover,
        "roundrobin" => Strategy::RoundRobin,
        other => return Err(super::DsnError::UnknownScheme(other.to_owned())),
    };
    let members = dsn
        .children
        .iter()
        .enumerate()
        .map(|(i, child)| Ok((member_name(i, child), super::from_dsn(child)?)))
        .collect::<Result<Vec<_>, super::DsnError>>()?;
    if members.is_empty() {
        return Err(super::DsnError::invalid(
            &dsn.scheme,
            "needs at least one transport",
        ));
    }
    Ok(Arc::new(Group::new(strategy, members)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::worker::outage::Verdict;

    fn verdict(failures: &[(&str, TransportError)]) -> Verdict {
        Verdict::of(&Err(all_failed(failures)))
    }

    #[test]
    fn a_group_none_of_whose_members_answered_about_the_message_is_down() {
        let refused = TransportError::refused_credentials("401 bad key").with_code(401);
        let unreachable = TransportError::transient("cannot connect");
        let overloaded = TransportError::transient("503").with_code(503);
        assert_eq!(
            verdict(&[("a", refused.clone()), ("b", unreachable.clone())]),
            Verdict::Down
        );
        assert_eq!(
            verdict(&[("a", overloaded), ("b", refused.clone())]),
            Verdict::Down
        );
        // Every member refused its credentials: as one transport alone.
        assert_eq!(
            verdict(&[("a", refused.clone()), ("b", refused.clone())]),
            Verdict::Neither
        );
        // One member's answer about the message decides.
        let busy = TransportError::transient("450 mailbox busy").with_code(450);
        let error = all_failed(&[("a", unreachable), ("b", busy)]);
        assert_eq!(error.code(), Some(450));
        assert_eq!(Verdict::of(&Err(error)), Verdict::Up);
    }
}
