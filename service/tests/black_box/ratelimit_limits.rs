//! Rate limits hold back sending: the N+1th message inside a window waits
//! about window/N, and tenant and transport limits hold together.

use std::time::{Duration, Instant};

use mailbridge::transport::ratelimit::{Quota, Rate, RateError, RateLimiter, RateLimits};

fn limiter(rate: &str) -> RateLimiter {
    RateLimiter::new(&Rate::parse(rate).unwrap())
}

#[test]
fn parses_the_documented_forms() {
    for (text, count, secs) in [
        ("30/minute", 30, 60),
        ("100/hour", 100, 3600),
        ("2000/day", 2000, 86_400),
        ("10/second", 10, 1),
        (" 10_000 / day ", 10_000, 86_400),
    ] {
        let rate = Rate::parse(text).unwrap();
        let [quota]: [Quota; 1] = rate.quotas().try_into().unwrap();
        assert_eq!(quota.count.get(), count, "{text}");
        assert_eq!(quota.period, Duration::from_secs(secs), "{text}");
    }
    let both = Rate::parse("30/minute,10000/day").unwrap();
    assert_eq!(both.to_string(), "30/minute, 10000/day");
}

#[test]
fn refuses_anything_else_with_a_clear_error() {
    for bad in [
        "30",
        "0/minute",
        "-1/minute",
        "30/month",
        "x/hour",
        "30/minute,",
        "",
    ] {
        let err = Rate::parse(bad).unwrap_err();
        assert!(err.to_string().contains("N/minute"), "{bad}: {err}");
    }
    let err = RateLimits::new([("m365", "30/fortnight")], []).unwrap_err();
    assert!(matches!(
        err,
        RateError::Of {
            what: "transport",
            ..
        }
    ));
    assert!(err.to_string().contains("m365"), "{err}");
}

#[test]
fn the_n_plus_first_message_waits_window_over_n() {
    let l = limiter("30/minute");
    let t0 = Instant::now();
    for i in 0..30 {
        assert_eq!(l.check_at(t0), Ok(()), "message {i} of the burst");
    }
    assert_eq!(l.check_at(t0), Err(Duration::from_secs(2)));
    // Refused checks spend nothing: still 2 s.
    assert_eq!(l.check_at(t0), Err(Duration::from_secs(2)));
    assert_eq!(
        l.check_at(t0 + Duration::from_millis(500)),
        Err(Duration::from_millis(1500))
    );
    assert_eq!(l.check_at(t0 + Duration::from_secs(2)), Ok(()));
    assert_eq!(
        l.check_at(t0 + Duration::from_secs(2)),
        Err(Duration::from_secs(2))
    );
}

#[test]
fn a_full_window_later_the_whole_burst_is_back() {
    let l = limiter("10/second");
    let t0 = Instant::now();
    for _ in 0..10 {
        l.check_at(t0).unwrap();
    }
    assert!(l.check_at(t0).is_err());
    let later = t0 + Duration::from_secs(1);
    for i in 0..10 {
        assert_eq!(l.check_at(later), Ok(()), "message {i} one second later");
    }
    assert_eq!(l.check_at(later), Err(Duration::from_millis(100)));
}

#[test]
fn the_stricter_of_several_rates_decides() {
    let l = limiter("30/minute, 40/hour");
    let t0 = Instant::now();
    for _ in 0..30 {
        l.check_at(t0).unwrap();
    }
    let t1 = t0 + Duration::from_secs(60);
    for _ in 0..10 {
        l.check_at(t1).unwrap();
    }
    // The minute allows more now, the hour does not: wait for the hour's 90 s slot.
    assert_eq!(l.check_at(t1), Err(Duration::from_secs(30)));
}

#[test]
fn tenant_and_transport_limits_hold_together() {
    let limits = RateLimits::new([("m365", "2/minute")], [("acme", "1/minute")]).unwrap();
    let t0 = Instant::now();
    assert_eq!(limits.check_at("acme", "m365", t0), Ok(()));
    // acme is spent for 60 s; the refusal must not use up m365's second slot.
    assert_eq!(
        limits.check_at("acme", "m365", t0),
        Err(Duration::from_secs(60))
    );
    assert_eq!(limits.check_at("other", "m365", t0), Ok(()));
    assert_eq!(
        limits.check_at("other", "m365", t0),
        Err(Duration::from_secs(30))
    );
    // Without a limit of its own, a tenant on an unlimited transport always passes.
    for _ in 0..1000 {
        assert_eq!(limits.check_at("other", "default", t0), Ok(()));
    }
}

#[test]
fn no_limits_means_no_waiting() {
    let none = RateLimits::default();
    assert!(none.is_empty());
    assert_eq!(none.check("acme", "default"), Ok(()));
}

#[test]
fn the_state_says_how_many_may_pass_the_wait_and_what_was_held_back() {
    let limits = RateLimits::new([("smtp", "3/minute")], [("acme", "10/minute")]).unwrap();
    let t0 = Instant::now();
    let state = limits.transport_state("smtp", t0).unwrap();
    assert_eq!(state.quotas[0].available, 3);
    assert!(state.quotas[0].wait.is_zero());
    for _ in 0..3 {
        limits.check_at("acme", "smtp", t0).unwrap();
    }
    assert!(limits.check_at("acme", "smtp", t0).is_err());
    let state = limits.transport_state("smtp", t0).unwrap();
    assert_eq!(state.quotas[0].available, 0);
    assert_eq!(state.quotas[0].wait, Duration::from_secs(20));
    assert_eq!(state.held_back, 1);
    // The tenant's limit was not reached: the refusal is not counted against it.
    let [(name, tenant)] = <[_; 1]>::try_from(limits.tenant_states(t0)).unwrap();
    assert_eq!(name, "acme");
    assert_eq!((tenant.quotas[0].available, tenant.held_back), (7, 0));
    // One interval later one more may pass.
    let later = limits
        .transport_state("smtp", t0 + Duration::from_secs(20))
        .unwrap();
    assert_eq!(later.quotas[0].available, 1);
    assert!(limits.transport_state("other", t0).is_none());
}
