//! The retry policy: a pure function of the attempt number, the message's age,
//! the transport's hint and a jitter value, so that the schedule can be tested
//! literally.

use std::time::Duration;

use time::OffsetDateTime;

/// When to try again, and when to give up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry's delay ceiling (`MAILBRIDGE_RETRY_BASE`).
    pub base: Duration,
    /// The cap of one delay (`MAILBRIDGE_RETRY_MAX_INTERVAL`).
    pub max_interval: Duration,
    /// Attempts before `failed` (`MAILBRIDGE_RETRY_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// Age after which a message is `failed` (`MAILBRIDGE_RETRY_MAX_AGE`).
    /// When the next delay would pass it, the last attempt is made at that
    /// age instead: a message is retried for as long as it was promised,
    /// whatever the longest delay.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max_interval: Duration::from_secs(3600),
            max_attempts: 10,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// What to do after a transient failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Try again at this time.
    Retry {
        /// The next attempt's time.
        at: OffsetDateTime,
    },
    /// Give up: the message becomes `failed`.
    Fail {
        /// Why, for `last_error`.
        reason: String,
    },
}

impl RetryPolicy {
    /// The delay ceiling after attempt `attempt` (1-based): `base × 2^(attempt−1)`, capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        self.base.saturating_mul(factor).min(self.max_interval)
    }

    /// Decides after attempt `attempt` failed transiently at `now`.
    /// `jitter` is uniform in [0, 1): full jitter picks a delay in [0, ceiling).
    pub fn decide(
        &self,
        attempt: u32,
        created_at: OffsetDateTime,
        now: OffsetDateTime,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Decision {
        if attempt >= self.max_attempts {
            return Decision::Fail {
                reason: format!("gave up after {attempt} attempts"),
            };
        }
        let jittered = self.ceiling(attempt).mul_f64(jitter.clamp(0.0, 1.0));
        // A hint counts up to the longest delay of our own: one that asks
        // for a day (a misconfigured proxy, a quota's reset) would otherwise
        // fail the message at its first attempt, or hold it past its age.
        let hint = retry_after.unwrap_or_default().min(self.max_interval);
        let delay = jittered.max(hint);
        match self.wait_within_age(created_at, now, delay) {
            Some(delay) => Decision::Retry { at: now + delay },
            None => Decision::Fail {
                reason: format!(
                    "gave up: no attempt is made more than {} after the message was accepted",
                    humantime::format_duration(self.max_age)
                ),
            },
        }
    }

    /// `wait` from `now`, cut to end at the maximum age of a message
    /// accepted at `created_at`; `None` once that age is reached (an
    /// attempt made at it was the last).
    pub fn wait_within_age(
        &self,
        created_at: OffsetDateTime,
        now: OffsetDateTime,
        wait: Duration,
    ) -> Option<Duration> {
        let left = created_at + self.max_age - now;
        if !left.is_positive() {
            return None;
        }
        Some(wait.min(left.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    #[test]
    fn the_default_schedule_literally() {
        let p = RetryPolicy::default();
        let ceilings: Vec<u64> = (1..=12).map(|a| p.ceiling(a).as_secs()).collect();
        assert_eq!(
            ceilings,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(p.ceiling(1000), Duration::from_secs(3600), "no overflow");
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let p = RetryPolicy::default();
        assert_eq!(p.decide(3, T0, T0, None, 0.0), Decision::Retry { at: T0 });
        assert_eq!(
            p.decide(3, T0, T0, None, 0.5),
            Decision::Retry {
                at: T0 + Duration::from_secs(10)
            }
        );
        assert_eq!(
            p.decide(3, T0, T0, None, 0.999),
            Decision::Retry {
                at: T0 + Duration::from_millis(19_980)
            }
        );
    }

    #[test]
    fn never_earlier_than_the_transports_hint() {
        let p = RetryPolicy::default();
        let hint = Some(Duration::from_secs(120));
        assert_eq!(
            p.decide(1, T0, T0, hint, 0.9),
            Decision::Retry {
                at: T0 + Duration::from_secs(120)
            }
        );
    }

    #[test]
    fn gives_up_after_max_attempts_or_max_age() {
        let p = RetryPolicy::default();
        assert!(
            matches!(p.decide(10, T0, T0, None, 0.5), Decision::Fail { reason } if reason.contains("10 attempts"))
        );
        assert!(matches!(
            p.decide(9, T0, T0, None, 0.5),
            Decision::Retry { .. }
        ));
        let day = T0 + Duration::from_secs(24 * 3600);
        assert!(
            matches!(p.decide(2, T0, day, None, 0.9), Decision::Fail { reason } if reason.contains("after the message was accepted"))
        );
        // Five seconds before the age, the next attempt is at the age.
        let late = day - Duration::from_secs(5);
        assert_eq!(
            p.decide(2, T0, late, None, 0.9),
            Decision::Retry { at: day }
        );
    }

    #[test]
    fn a_policy_that_retries_up_to_its_age_makes_its_last_attempt_at_that_age() {
        // Delays of up to 6 h: after an attempt 20 h in, the next one (here
        // 5.4 h later) would pass the 24 h.
        let p = RetryPolicy {
            max_interval: Duration::from_secs(6 * 3600),
            max_attempts: 100,
            ..RetryPolicy::default()
        };
        let day = Duration::from_secs(24 * 3600);
        let late = T0 + Duration::from_secs(20 * 3600);
        assert_eq!(
            p.decide(20, T0, late, None, 0.9),
            Decision::Retry { at: T0 + day }
        );
        // A provider's hint past the end is cut to it too.
        assert_eq!(
            p.decide(20, T0, late, Some(Duration::from_secs(6 * 3600)), 0.0),
            Decision::Retry { at: T0 + day }
        );
        // A delay that stays within the age is kept as it is.
        assert_eq!(
            p.decide(20, T0, late, None, 0.5),
            Decision::Retry {
                at: late + Duration::from_secs(3 * 3600)
            }
        );
        // The attempt made at the age is the last.
        for now in [T0 + day, T0 + day + Duration::from_secs(1)] {
            assert!(
                matches!(p.decide(21, T0, now, None, 0.5), Decision::Fail { reason } if reason.contains("after the message was accepted")),
                "{now}"
            );
        }
    }

    #[test]
    fn a_hold_that_would_pass_the_age_ends_at_it() {
        let p = RetryPolicy::default();
        let day = Duration::from_secs(24 * 3600);
        let hour = Duration::from_secs(3600);
        let early = T0 + Duration::from_secs(3600);
        assert_eq!(p.wait_within_age(T0, early, hour), Some(hour));
        let late = T0 + day - Duration::from_secs(600);
        assert_eq!(
            p.wait_within_age(T0, late, hour),
            Some(Duration::from_secs(600))
        );
        assert_eq!(p.wait_within_age(T0, T0 + day, hour), None);
    }

    #[test]
    fn a_hint_longer_than_the_longest_delay_waits_that_long_and_fails_nothing() {
        let p = RetryPolicy::default();
        for hint in [24 * 3600, 48 * 3600, u64::MAX / 4] {
            assert_eq!(
                p.decide(1, T0, T0, Some(Duration::from_secs(hint)), 0.0),
                Decision::Retry {
                    at: T0 + p.max_interval
                },
                "{hint}"
            );
        }
    }
}
