//! A transport that is down is held, not hammered: once
//! [`THRESHOLD`] attempts in a row through it failed in a way that says
//! nothing about their message (no answer at all, or an HTTP 429/5xx, an
//! SMTP 421, credentials that cannot be refreshed), deliveries through it
//! wait without spending their attempts, and one attempt at a time probes
//! it when the hold ends. Without this, every queued message spent an
//! attempt at each of its retries while the relay or API was down, and an
//! outage of some twenty minutes (the default schedule: ten attempts
//! within 5 s to 21 min on average) turned the whole queue `failed`.
//!
//! The hold starts at the retry policy's first delay, doubles with each
//! failed probe up to [`LONGEST`] (or the policy's longest delay, if
//! shorter), and is at least the provider's own hint (`Retry-After`). Any
//! answer about a message (sent; refused for good; a 4xx about it) ends
//! the hold. The state is per process, like the rate limits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::transport::{Delivery, TransportError};

/// Failures in a row, without an answer about any message, that hold a transport.
pub const THRESHOLD: u32 = 5;
/// The longest hold between two probes.
pub const LONGEST: Duration = Duration::from_secs(300);
/// The longest a provider's hint (`Retry-After`) holds a transport: one that
/// asks for a day would keep every message through it waiting past its age.
pub const LONGEST_HINT: Duration = Duration::from_secs(3600);
/// Messages held back for a hold's end exactly; those after them come due
/// spread over one more hold (see [`Outages::spread`]).
pub const AT_HOLD_END: u32 = 64;

/// What one attempt's result says about its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It answered about the message: it works.
    Up,
    /// It failed as it would for any message.
    Down,
    /// Nothing either way (its credentials were refused for good).
    Neither,
}

impl Verdict {
    /// Reads one attempt's result.
    pub fn of(result: &Result<Delivery, TransportError>) -> Self {
        let error = match result {
            Ok(_) => return Self::Up,
            Err(error) => error,
        };
        match error {
            TransportError::Permanent {
                credentials: true, ..
            } => Self::Neither,
            error if error.is_about_the_message() => Self::Up,
            _ => Self::Down,
        }
    }
}

/// The holds of every transport of this process.
#[derive(Debug)]
pub struct Outages {
    first: Duration,
    longest: Duration,
    /// How long a probe may go unanswered before another may start (the
    /// lease: a send is bounded by it, but a probe whose lease is lost
    /// never answers).
    probe_bound: Duration,
    health: Mutex<HashMap<String, Health>>,
    /// Per transport: whether a wake runs, and whether another must follow it.
    wakes: Mutex<HashMap<String, WakeRun>>,
}

/// A transport's wake in flight: `again` when a message was released after
/// it began, so that the wake running now may have missed it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct WakeRun {
    again: bool,
}

/// What a caller that wants a transport's held messages woken should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeTurn {
    /// Run the wake (and ask again with [`Outages::wake_done`] afterwards).
    Run,
    /// One runs already, and another will follow it: nothing to do.
    Covered,
}

#[derive(Debug, Default)]
struct Health {
    /// Failures in a row (of the kind [`Verdict::Down`]).
    failures: u32,
    held: Option<Hold>,
}

#[derive(Debug)]
struct Hold {
    since: Instant,
    until: Instant,
    length: Duration,
    probe: Option<Instant>,
    /// Messages held back since this hold (or its last renewal) began.
    held_back: u32,
}

/// Whether an attempt may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The transport is not held.
    Open,
    /// It is held, and this attempt is the one that probes it.
    Probe,
    /// It is held: wait this long without spending the attempt.
    Wait(Duration),
}

impl Outages {
    /// Holds that start at `first`, reach at most `longest` (and [`LONGEST`]),
    /// and probes answered within `probe_bound`.
    pub fn new(first: Duration, longest: Duration, probe_bound: Duration) -> Self {
        let first = first.max(Duration::from_millis(10));
        Self {
            first,
            longest: longest.min(LONGEST).max(first),
            probe_bound,
            health: Mutex::new(HashMap::new()),
            wakes: Mutex::new(HashMap::new()),
        }
    }

    /// Asks to wake `transport`'s held messages. When a hold ends, every
    /// message held back meanwhile asks: one wake at a time runs (each an
    /// update of up to a thousand rows, which concurrent ones would wait on
    /// each other's locks for, holding a connection each), and one more
    /// follows it if anyone asked while it ran.
    pub fn wake_turn(&self, transport: &str) -> WakeTurn {
        let mut wakes = self.wakes.lock().unwrap_or_else(|e| e.into_inner());
        match wakes.get_mut(transport) {
            Some(run) => {
                run.again = true;
                WakeTurn::Covered
            }
            None => {
                wakes.insert(transport.to_owned(), WakeRun::default());
                WakeTurn::Run
            }
        }
    }

    /// A wake of `transport` that ended without [`Outages::wake_done`] (its
    /// task dropped): the next caller runs one.
    pub fn wake_dropped(&self, transport: &str) {
        let mut wakes = self.wakes.lock().unwrap_or_else(|e| e.into_inner());
        wakes.remove(transport);
    }

    /// A wake of `transport` has run: true when it must run once more.
    pub fn wake_done(&self, transport: &str) -> bool {
        let mut wakes = self.wakes.lock().unwrap_or_else(|e| e.into_inner());
        match wakes.get_mut(transport) {
            Some(run) if run.again => {
                run.again = false;
                true
            }
            _ => {
                wakes.remove(transport);
                false
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Health>> {
        // Plain numbers and times: a panic elsewhere leaves nothing half-written.
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an attempt through `transport` may go at `now`.
    pub fn gate(&self, transport: &str, now: Instant) -> Gate {
        let mut health = self.lock();
        let Some(hold) = health.get_mut(transport).and_then(|h| h.held.as_mut()) else {
            return Gate::Open;
        };
        if now < hold.until {
            return Gate::Wait(hold.until - now);
        }
        match hold.probe {
            Some(started) if now.duration_since(started) < self.probe_bound => {
                Gate::Wait(hold.length)
            }
            _ => {
                hold.probe = Some(now);
                Gate::Probe
            }
        }
    }

    /// Takes in one attempt's result through `transport` at `now`; answers
    /// `Some(true)` when this began a hold, `Some(false)` when it ended one.
    pub fn answered(
        &self,
        transport: &str,
        result: &Result<Delivery, TransportError>,
        now: Instant,
    ) -> Option<bool> {
        match Verdict::of(result) {
            Verdict::Neither => None,
            Verdict::Up => {
                let mut health = self.lock();
                let hold = health.remove(transport)?.held?;
                tracing::warn!(
                    transport,
                    held_s = now.duration_since(hold.since).as_secs(),
                    "the transport answers again; deliveries through it resume"
                );
                Some(false)
            }
            Verdict::Down => {
                let hint = result.as_ref().err().and_then(TransportError::retry_after);
                let hint = hint.unwrap_or_default().min(LONGEST_HINT);
                self.failed(transport, hint, result, now).then_some(true)
            }
        }
    }

    /// Counts a failure; whether it began a hold.
    fn failed(
        &self,
        transport: &str,
        hint: Duration,
        result: &Result<Delivery, TransportError>,
        now: Instant,
    ) -> bool {
        let error = || {
            result
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        let mut health = self.lock();
        let h = health.entry(transport.to_owned()).or_default();
        h.failures = h.failures.saturating_add(1);
        match &mut h.held {
            Some(hold) if hold.probe.is_some() => {
                // The probe failed (or an attempt that began before the hold).
                hold.probe = None;
                hold.held_back = 0;
                hold.length = (hold.length * 2).min(self.longest);
                hold.until = hold.until.max(now + hold.length.max(hint));
                tracing::info!(
                    transport,
                    hold_ms = hold.length.max(hint).as_millis() as u64,
                    error = %error(),
                    "the transport is still down; deliveries through it wait"
                );
            }
            Some(hold) => {
                hold.until = hold.until.max(now + hint);
                return false;
            }
            None if h.failures >= THRESHOLD => {
                let length = self.first;
                h.held = Some(Hold {
                    since: now,
                    until: now + length.max(hint),
                    length,
                    probe: None,
                    held_back: 0,
                });
                tracing::warn!(
                    transport,
                    failures = h.failures,
                    hold_ms = length.max(hint).as_millis() as u64,
                    error = %error(),
                    "the transport is down; deliveries through it wait without spending their attempts"
                );
                return true;
            }
            None => {}
        }
        false
    }

    /// How far past its wait a message held back now may come due: nothing
    /// for the first [`AT_HOLD_END`] of a hold (one of them probes the
    /// transport when the hold ends), the hold's length for those after.
    /// Held back all for the same moment, a large backlog would be claimed
    /// and put back all at once at every hold's end, a burst of writes as
    /// large as the backlog; spread, it comes due a little at a time. When
    /// the probe finds the transport working, all of it is made due at once
    /// anyway (`JobStore::wake`).
    pub fn spread(&self, transport: &str) -> Duration {
        let mut health = self.lock();
        let Some(hold) = health.get_mut(transport).and_then(|h| h.held.as_mut()) else {
            return Duration::ZERO;
        };
        hold.held_back = hold.held_back.saturating_add(1);
        match hold.held_back > AT_HOLD_END {
            true => hold.length,
            false => Duration::ZERO,
        }
    }

    /// Whether `transport` is held now (for tests and the console).
    pub fn is_held(&self, transport: &str) -> bool {
        self.lock().get(transport).is_some_and(|h| h.held.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn outages() -> Outages {
        Outages::new(5 * S, 3600 * S, 120 * S)
    }

    fn refused() -> Result<Delivery, TransportError> {
        Err(TransportError::transient(
            "connection to relay:587 failed: refused",
        ))
    }

    fn sent() -> Result<Delivery, TransportError> {
        Ok(Delivery::default())
    }

    #[test]
    fn one_wake_runs_at_a_time_and_one_more_follows_if_asked_meanwhile() {
        let outages = Outages::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(5),
        );
        assert_eq!(outages.wake_turn("smtp"), WakeTurn::Run);
        for _ in 0..50 {
            assert_eq!(outages.wake_turn("smtp"), WakeTurn::Covered);
        }
        assert_eq!(outages.wake_turn("ses"), WakeTurn::Run, "per transport");
        assert!(outages.wake_done("smtp"), "asked while it ran: once more");
        assert!(!outages.wake_done("smtp"), "then it ends");
        assert_eq!(
            outages.wake_turn("smtp"),
            WakeTurn::Run,
            "and the next asks anew"
        );
        outages.wake_dropped("smtp");
        assert_eq!(
            outages.wake_turn("smtp"),
            WakeTurn::Run,
            "a dropped wake blocks none"
        );
    }

    #[test]
    fn what_a_result_says_about_its_transport() {
        let down = [
            TransportError::transient("connection reset"),
            TransportError::transient("sendgrid: HTTP 429").with_code(429),
            TransportError::transient("sendgrid: HTTP 503").with_code(503),
            TransportError::transient("relay answered 421 closing").with_code(421),
            TransportError::auth("no OAuth2 access token: the token endpoint did not answer"),
        ];
        for error in down {
            assert_eq!(Verdict::of(&Err(error.clone())), Verdict::Down, "{error}");
        }
        let up = [
            TransportError::transient("451 4.7.1 greylisted").with_code(451),
            TransportError::permanent("550 5.1.1 no such user").with_code(550),
            TransportError::permanent("postmark: HTTP 422").with_code(422),
        ];
        for error in up {
            assert_eq!(Verdict::of(&Err(error.clone())), Verdict::Up, "{error}");
        }
        assert_eq!(Verdict::of(&sent()), Verdict::Up);
    }

    #[test]
    fn holds_after_the_threshold_and_probes_one_at_a_time() {
        let o = outages();
        let t0 = Instant::now();
        for n in 1..=THRESHOLD {
            assert_eq!(o.gate("relay", t0), Gate::Open, "before failure {n}");
            let began = o.answered("relay", &refused(), t0);
            assert_eq!(began, (n == THRESHOLD).then_some(true), "failure {n}");
        }
        assert!(o.is_held("relay"));
        assert_eq!(o.gate("relay", t0), Gate::Wait(5 * S));
        assert_eq!(
            o.gate("other", t0),
            Gate::Open,
            "one transport's hold is its own"
        );
        // The hold ends: one attempt probes, the others wait a hold more.
        assert_eq!(o.gate("relay", t0 + 5 * S), Gate::Probe);
        assert_eq!(o.gate("relay", t0 + 6 * S), Gate::Wait(5 * S));
        // The probe fails: the hold doubles.
        assert_eq!(o.answered("relay", &refused(), t0 + 7 * S), None);
        assert_eq!(o.gate("relay", t0 + 7 * S), Gate::Wait(10 * S));
        assert_eq!(o.gate("relay", t0 + 17 * S), Gate::Probe);
        // It succeeds: open again, and the count starts over.
        assert_eq!(o.answered("relay", &sent(), t0 + 18 * S), Some(false));
        assert_eq!(o.answered("relay", &sent(), t0 + 18 * S), None);
        assert!(!o.is_held("relay"));
        assert_eq!(o.gate("relay", t0 + 18 * S), Gate::Open);
        for _ in 1..THRESHOLD {
            o.answered("relay", &refused(), t0 + 19 * S);
        }
        assert!(
            !o.is_held("relay"),
            "the count started over after the success"
        );
    }

    #[test]
    fn a_hint_of_a_day_holds_for_an_hour_at_most() {
        let o = outages();
        let t0 = Instant::now();
        let day = Err(TransportError::transient_after(
            "503 Service Unavailable",
            Some(24 * 3600 * S),
        ));
        for _ in 0..THRESHOLD {
            o.answered("relay", &day, t0);
        }
        assert!(o.is_held("relay"));
        assert_eq!(o.gate("relay", t0), Gate::Wait(LONGEST_HINT));
        assert_eq!(o.gate("relay", t0 + LONGEST_HINT), Gate::Probe);
    }

    #[test]
    fn a_hold_s_first_messages_come_due_at_its_end_and_the_rest_spread_over_one_more() {
        let o = outages();
        let t0 = Instant::now();
        assert_eq!(o.spread("relay"), Duration::ZERO, "not held");
        for _ in 0..THRESHOLD {
            o.answered("relay", &refused(), t0);
        }
        let spreads = |n| (0..n).map(|_| o.spread("relay")).collect::<Vec<_>>();
        let first = spreads(AT_HOLD_END);
        assert!(first.iter().all(|s| s.is_zero()), "{first:?}");
        assert_eq!(spreads(3), [5 * S; 3], "after them, over the hold's length");
        // A failed probe renews the hold (doubled): its first ones go at its end again.
        assert_eq!(o.gate("relay", t0 + 5 * S), Gate::Probe);
        o.answered("relay", &refused(), t0 + 6 * S);
        let again = spreads(AT_HOLD_END);
        assert!(again.iter().all(|s| s.is_zero()), "{again:?}");
        assert_eq!(spreads(1), [10 * S]);
        assert_eq!(
            o.spread("other"),
            Duration::ZERO,
            "one transport's hold is its own"
        );
    }

    #[test]
    fn an_answer_about_a_message_resets_the_count() {
        let o = outages();
        let t0 = Instant::now();
        let greylisted = Err(TransportError::transient("451 greylisted").with_code(451));
        for _ in 0..10 {
            for _ in 1..THRESHOLD {
                o.answered("relay", &refused(), t0);
            }
            o.answered("relay", &greylisted, t0);
        }
        assert!(!o.is_held("relay"));
    }

    #[test]
    fn failures_that_began_before_the_hold_do_not_lengthen_it() {
        let o = outages();
        let t0 = Instant::now();
        for _ in 0..THRESHOLD + 20 {
            o.answered("relay", &refused(), t0);
        }
        assert_eq!(o.gate("relay", t0), Gate::Wait(5 * S));
    }

    #[test]
    fn the_providers_hint_and_the_longest_hold_bound_the_wait() {
        let o = Outages::new(5 * S, 20 * S, 120 * S);
        let t0 = Instant::now();
        let slow_down =
            Err(TransportError::transient_after("HTTP 429", Some(60 * S)).with_code(429));
        for _ in 0..THRESHOLD {
            o.answered("api", &slow_down, t0);
        }
        assert_eq!(
            o.gate("api", t0),
            Gate::Wait(60 * S),
            "at least the provider's hint"
        );
        let mut at = t0 + 60 * S;
        for _ in 0..5 {
            assert_eq!(o.gate("api", at), Gate::Probe);
            o.answered("api", &refused(), at);
            at += 20 * S;
        }
        assert_eq!(
            o.gate("api", at - 20 * S),
            Gate::Wait(20 * S),
            "the longest hold"
        );
    }

    #[test]
    fn a_probe_that_never_answers_is_replaced_after_its_bound() {
        let o = outages();
        let t0 = Instant::now();
        for _ in 0..THRESHOLD {
            o.answered("relay", &refused(), t0);
        }
        assert_eq!(o.gate("relay", t0 + 5 * S), Gate::Probe);
        assert_eq!(o.gate("relay", t0 + 100 * S), Gate::Wait(5 * S));
        assert_eq!(o.gate("relay", t0 + 126 * S), Gate::Probe);
    }

    #[test]
    fn refused_credentials_neither_hold_nor_open() {
        let o = outages();
        let t0 = Instant::now();
        let revoked = Err(TransportError::Permanent {
            message: "sendgrid: HTTP 401".into(),
            credentials: true,
            code: Some(401),
        });
        for _ in 0..THRESHOLD - 1 {
            o.answered("api", &refused(), t0);
        }
        o.answered("api", &revoked, t0);
        o.answered("api", &refused(), t0);
        assert!(o.is_held("api"));
    }
}
