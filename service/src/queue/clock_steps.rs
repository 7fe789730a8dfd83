//! Steps of the wall clock, seen against the monotonic one. Leases end at
//! wall-clock times (replicas share them through the store), so a clock set
//! forward (an NTP step, a virtual machine resumed) would make every lease in
//! flight look abandoned at once, and the next claim would send those
//! messages again while their attempts still run. A claim therefore counts
//! a lease as abandoned only once it ended a lease length ago *and* by the
//! forward steps this process saw in the last two lease lengths: by then
//! every attempt in flight has renewed its lease by the new clock (renewals
//! come every third of a lease).
//!
//! A clock set back leaves the times stored before the step (when a message
//! is due) that far ahead: the SQLite store, whose every time this process
//! wrote, moves them back by the step at its next claim
//! ([`take_backward_steps`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// A wall clock running ahead of the monotonic one by more than this
/// between two looks is a step (NTP slews far less).
const STEP: Duration = Duration::from_secs(1);

/// The clocks at the last look, and the steps seen since.
#[derive(Debug, Default)]
pub(crate) struct ClockSteps(Mutex<Seen>);

#[derive(Debug, Default)]
struct Seen {
    last: Option<(Instant, OffsetDateTime)>,
    /// When each forward step was seen, and its size.
    forward: Vec<(Instant, Duration)>,
    /// Backward steps seen and not yet taken.
    backward: Duration,
    /// Taken by a transaction not yet committed: given back if it is not.
    taken: Duration,
}

impl ClockSteps {
    /// Looks at both clocks (`at`, `wall`); answers the forward steps seen
    /// within `window` before `at`, this look's included.
    pub(crate) fn forward_within(
        &self,
        at: Instant,
        wall: OffsetDateTime,
        window: Duration,
    ) -> Duration {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((then, then_wall)) = seen.last {
            let monotonic = at.saturating_duration_since(then);
            let ahead = (wall - then_wall) - monotonic;
            if ahead > STEP {
                let ahead = ahead.unsigned_abs();
                tracing::warn!(
                    seconds = ahead.as_secs(),
                    "the wall clock stepped forward: leases in flight are not taken for abandoned until renewed"
                );
                seen.forward.push((at, ahead));
            } else if -ahead > STEP {
                let back = ahead.unsigned_abs();
                tracing::warn!(seconds = back.as_secs(), "the wall clock stepped back");
                seen.backward += back;
            }
        }
        seen.last = Some((at, wall));
        seen.forward
            .retain(|(when, _)| at.saturating_duration_since(*when) < window);
        seen.forward.iter().map(|(_, step)| *step).sum()
    }

    /// The backward steps seen since the last call, held until
    /// [`Self::settle`] says whether the transaction that applied them
    /// committed.
    pub(crate) fn take_backward(&self) -> Duration {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let back = std::mem::take(&mut seen.backward);
        seen.taken += back;
        back
    }

    /// The transaction that took backward steps committed (they are done)
    /// or not (they are to be taken again).
    pub(crate) fn settle(&self, committed: bool) {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let taken = std::mem::take(&mut seen.taken);
        if !committed {
            seen.backward += taken;
        }
    }
}

/// This process's clocks.
static STEPS: std::sync::LazyLock<ClockSteps> = std::sync::LazyLock::new(ClockSteps::default);

/// The forward steps of the wall clock seen in the last `window`.
pub(crate) fn forward_steps(window: Duration) -> Duration {
    STEPS.forward_within(Instant::now(), OffsetDateTime::now_utc(), window)
}

/// The backward steps of the wall clock seen (by a claim) since the last call.
pub(crate) fn take_backward_steps() -> Duration {
    STEPS.take_backward()
}

/// Whether the transaction that took backward steps committed.
pub(crate) fn settle_backward_steps(committed: bool) {
    STEPS.settle(committed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_step_counts_for_the_window_and_then_no_longer() {
        let steps = ClockSteps::default();
        let (start, wall) = (Instant::now(), OffsetDateTime::now_utc());
        let window = Duration::from_secs(240);
        let at = |secs: u64| start + Duration::from_secs(secs);
        let sec = time::Duration::seconds;
        assert_eq!(steps.forward_within(at(0), wall, window), Duration::ZERO);
        // Both clocks run alike: no step.
        assert_eq!(
            steps.forward_within(at(10), wall + sec(10), window),
            Duration::ZERO
        );
        // The wall clock jumps an hour ahead (a VM resumed, an NTP step).
        let hour = Duration::from_secs(3600);
        let after = steps.forward_within(at(11), wall + sec(3611), window);
        assert_eq!(after, hour);
        assert_eq!(
            steps.forward_within(at(200), wall + sec(3800), window),
            hour
        );
        assert_eq!(
            steps.forward_within(at(252), wall + sec(3852), window),
            Duration::ZERO
        );
        // A step back is no forward step, but is kept until taken; half a
        // second of slewing is neither.
        assert_eq!(steps.take_backward(), Duration::ZERO);
        assert_eq!(
            steps.forward_within(at(253), wall + sec(253), window),
            Duration::ZERO
        );
        assert_eq!(steps.take_backward(), hour);
        assert_eq!(steps.take_backward(), Duration::ZERO);
        // Taken by a transaction that rolled back: taken again next time.
        steps.settle(false);
        assert_eq!(steps.take_backward(), hour);
        steps.settle(true);
        assert_eq!(steps.take_backward(), Duration::ZERO);
        let slewed = wall + sec(254) + time::Duration::milliseconds(500);
        assert_eq!(
            steps.forward_within(at(254), slewed, window),
            Duration::ZERO
        );
        assert_eq!(steps.take_backward(), Duration::ZERO);
    }
}
