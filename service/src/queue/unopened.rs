//! What a claim does with a row it cannot open. A body that is damaged
//! (cut short, altered, copied from another row) never will open: the row is
//! `failed` at once. A body sealed with a key this process does not hold is
//! not damaged: during a rolling key rotation, replicas not yet restarted
//! lack the new key, and a replica without keys at all meets rows sealed by
//! one that has them. Such a row goes back as `retrying` for a replica that
//! holds the key, without spending an attempt, and is `failed` only when
//! its retry age runs out, like any transient failure.

use std::time::Duration;

use time::OffsetDateTime;

use super::sealing::OpenError;

/// How long a row sealed with a key this process lacks waits before it is
/// claimed again: a replica that holds the key takes it meanwhile, and one
/// that does not is not kept busy claiming it over and over.
pub(crate) const KEY_WAIT: Duration = Duration::from_secs(60);

/// What becomes of a claimed row that did not open.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SetAside {
    /// Back to `retrying` at `next_attempt_at`, the claim not counted as an attempt.
    Wait {
        error: String,
        next_attempt_at: OffsetDateTime,
    },
    /// `failed`, with why.
    Fail { error: String },
}

/// The fate of a row claimed at `now` whose decoding failed with `e`; its
/// age counts from `age_from` (`None`: unreadable too) up to `max_age`.
pub(crate) fn set_aside(
    e: &anyhow::Error,
    now: OffsetDateTime,
    age_from: Option<OffsetDateTime>,
    max_age: Duration,
) -> SetAside {
    let (Some(key @ OpenError::KeyNotHeld { .. }), Some(age_from)) =
        (e.downcast_ref::<OpenError>(), age_from)
    else {
        return SetAside::Fail {
            error: undecodable(e),
        };
    };
    // The last look is at the retry age itself, as for a transient failure.
    let end = age_from + max_age;
    let next_attempt_at = (now + KEY_WAIT).min(end);
    if now >= end {
        let max_age = humantime::format_duration(max_age);
        return SetAside::Fail {
            error: format!(
                "{key}; gave up: no replica holding the key took it within {max_age} after the message was accepted"
            ),
        };
    }
    SetAside::Wait {
        error: format!("{key}; left for a replica that holds the key"),
        next_attempt_at,
    }
}

/// Why a stored row cannot be delivered, for its `last_error`.
fn undecodable(e: impl std::fmt::Display) -> String {
    format!("the stored message cannot be read ({e}); it was not delivered")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::sealing::SealError;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn key_not_held() -> anyhow::Error {
        OpenError::KeyNotHeld {
            kid: "new".into(),
            keys_set: true,
        }
        .into()
    }

    #[test]
    fn a_key_not_held_waits_for_a_replica_that_holds_it_until_the_retry_age() {
        let now = T0 + Duration::from_secs(3600);
        let waits = set_aside(&key_not_held(), now, Some(T0), DAY);
        let SetAside::Wait {
            error,
            next_attempt_at,
        } = waits
        else {
            panic!("{waits:?}")
        };
        assert_eq!(next_attempt_at, now + KEY_WAIT);
        assert!(error.contains("key `new`"), "{error}");
        // Moments before the retry age, the last look is at that age.
        let moments_before = T0 + DAY - Duration::from_secs(10);
        let last = set_aside(&key_not_held(), moments_before, Some(T0), DAY);
        assert!(
            matches!(&last, SetAside::Wait { next_attempt_at, .. } if *next_attempt_at == T0 + DAY),
            "{last:?}"
        );
        let late = set_aside(&key_not_held(), T0 + DAY, Some(T0), DAY);
        assert!(
            matches!(&late, SetAside::Fail { error } if error.contains("gave up")),
            "{late:?}"
        );
    }

    #[test]
    fn damage_fails_at_once() {
        let damaged: anyhow::Error = OpenError::Damaged(SealError("cut short".into())).into();
        let fate = set_aside(&damaged, T0, Some(T0), DAY);
        assert!(
            matches!(&fate, SetAside::Fail { error } if error.contains("cannot be read")),
            "{fate:?}"
        );
    }
}
