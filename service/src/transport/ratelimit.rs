//! Rate limits per transport and per tenant: `"30/minute"`, `"100/hour"`,
//! `"2000/day"`, `"10/second"`, or several at once (`"30/minute, 10000/day"`).
//!
//! A limit holds back *sending*, never accepting: the worker asks
//! [`RateLimits::check`] before it delivers a claimed message (never before
//! a notice: webhooks and Keycloak feedback spend no limit), and when a
//! limit is reached it gives the message back as `retrying` with the next
//! attempt at now + the wait, without counting an attempt.
//!
//! Each limit is a GCRA (the algorithm of the `governor` crate): `N/period`
//! lets a burst of N through at once, then one every `period / N`. It is kept
//! here rather than taken from `governor` because a message must pass the
//! tenant's and the transport's limits together: both are checked first and
//! spent only if both allow, so a refused message never uses up the other's
//! allowance.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A rate could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// Not of the form `N/second|minute|hour|day`.
    #[error("`{0}` is not a rate: expected N/second, N/minute, N/hour or N/day, e.g. `30/minute`")]
    Malformed(String),
    /// The rate of a named tenant or transport is wrong.
    #[error("rate of {what} `{name}`: {source}")]
    Of {
        /// `tenant` or `transport`.
        what: &'static str,
        /// Its name.
        name: String,
        /// What is wrong.
        source: Box<RateError>,
    },
}

/// One quota: at most `count` messages per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// How many messages.
    pub count: NonZeroU32,
    /// In how long.
    pub period: Duration,
}

impl Quota {
    /// The steady spacing between two messages once the burst is spent.
    pub fn interval(&self) -> Duration {
        self.period / self.count.get()
    }
}

impl FromStr for Quota {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Self, RateError> {
        let malformed = || RateError::Malformed(text.trim().to_owned());
        let (count, unit) = text.trim().split_once('/').ok_or_else(malformed)?;
        let count = count
            .trim()
            .replace('_', "")
            .parse::<NonZeroU32>()
            .map_err(|_| malformed())?;
        let period = match unit.trim() {
            "second" | "sec" => Duration::from_secs(1),
            "minute" | "min" => Duration::from_secs(60),
            "hour" => Duration::from_secs(3600),
            "day" => Duration::from_secs(86_400),
            _ => return Err(malformed()),
        };
        Ok(Quota { count, period })
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "second",
            60 => "minute",
            3600 => "hour",
            _ => "day",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// A configured rate: one or more quotas that all hold, e.g. `30/minute, 10000/day`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    quotas: Vec<Quota>,
}

impl Rate {
    /// Parses a comma-separated list of quotas.
    pub fn parse(text: &str) -> Result<Self, RateError> {
        let quotas = text
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<Quota>, _>>()?;
        Ok(Self { quotas })
    }

    /// Its quotas.
    pub fn quotas(&self) -> &[Quota] {
        &self.quotas
    }
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Self, RateError> {
        Self::parse(text)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.quotas.iter().map(Quota::to_string).collect();
        f.write_str(&parts.join(", "))
    }
}

/// One quota with its state: the theoretical arrival time of the next message.
#[derive(Debug)]
struct Cell {
    quota: Quota,
    tat: Option<Instant>,
}

impl Cell {
    /// The wait before a message may pass at `now`, zero if it may pass now.
    fn wait(&self, now: Instant) -> Duration {
        let tat = self.tat.map_or(now, |t| t.max(now));
        // Up to `period - interval` ahead of now is the burst allowance.
        let allowed_until = now + (self.quota.period - self.quota.interval());
        tat.saturating_duration_since(allowed_until)
    }

    fn spend(&mut self, now: Instant) {
        let tat = self.tat.map_or(now, |t| t.max(now));
        self.tat = Some(tat + self.quota.interval());
    }

    /// How many messages may pass at once at `now` (of the quota's burst).
    fn available(&self, now: Instant) -> u32 {
        let ahead = self
            .tat
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        let interval = self.quota.interval().as_nanos().max(1);
        // Each message spent moves the arrival time one interval ahead.
        let spent = ahead.as_nanos().div_ceil(interval);
        let count = self.quota.count.get();
        count.saturating_sub(u32::try_from(spent).unwrap_or(count))
    }
}

/// One quota's state, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaState {
    /// The quota (`30/minute`).
    pub quota: Quota,
    /// Messages that may pass at once now.
    pub available: u32,
    /// Until the next message may pass; zero when one may now.
    pub wait: Duration,
}

/// A limiter's state, for operators (per process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitState {
    /// Each quota's state.
    pub quotas: Vec<QuotaState>,
    /// Messages this limit held back since the process started.
    pub held_back: u64,
}

/// The limiter of one tenant or one transport.
#[derive(Debug)]
pub struct RateLimiter {
    cells: Mutex<Vec<Cell>>,
    /// Messages held back (each refusal it took part in).
    held_back: AtomicU64,
}

impl RateLimiter {
    /// A limiter enforcing every quota of `rate`.
    pub fn new(rate: &Rate) -> Self {
        let cells = rate.quotas.iter().map(|&quota| Cell { quota, tat: None });
        Self {
            cells: Mutex::new(cells.collect()),
            held_back: AtomicU64::new(0),
        }
    }

    /// Its state at `now`.
    pub fn state_at(&self, now: Instant) -> LimitState {
        let quotas = self
            .lock()
            .iter()
            .map(|cell| QuotaState {
                quota: cell.quota,
                available: cell.available(now),
                wait: cell.wait(now),
            })
            .collect();
        LimitState {
            quotas,
            held_back: self.held_back.load(Ordering::Relaxed),
        }
    }

    /// Lets one message pass now, or says how long until one may.
    pub fn check(&self) -> Result<(), Duration> {
        self.check_at(Instant::now())
    }

    /// [`check`](Self::check) at a given time (tests inject the clock here).
    pub fn check_at(&self, now: Instant) -> Result<(), Duration> {
        check_all(&mut [self.lock()], now)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Cell>> {
        // The state is a plain time: a panic elsewhere cannot leave it half-written.
        self.cells.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Spends one message from every cell if all allow it, else the longest wait.
fn check_all(cells: &mut [MutexGuard<'_, Vec<Cell>>], now: Instant) -> Result<(), Duration> {
    let wait = cells
        .iter()
        .flat_map(|guard| guard.iter())
        .map(|cell| cell.wait(now))
        .max()
        .unwrap_or_default();
    if !wait.is_zero() {
        return Err(wait);
    }
    for cell in cells.iter_mut().flat_map(|guard| guard.iter_mut()) {
        cell.spend(now);
    }
    Ok(())
}

/// Every configured limit: per transport name and per tenant. A name without
/// a limit is unlimited. Limits are per process.
#[derive(Debug, Default)]
pub struct RateLimits {
    by_transport: HashMap<String, RateLimiter>,
    by_tenant: HashMap<String, RateLimiter>,
}

impl RateLimits {
    /// Builds the limits from `(name, rate)` pairs, e.g. `("acme", "30/minute")`.
    pub fn new<N, R>(
        by_transport: impl IntoIterator<Item = (N, R)>,
        by_tenant: impl IntoIterator<Item = (N, R)>,
    ) -> Result<Self, RateError>
    where
        N: Into<String>,
        R: AsRef<str>,
    {
        Ok(Self {
            by_transport: limiters("transport", by_transport)?,
            by_tenant: limiters("tenant", by_tenant)?,
        })
    }

    /// Whether no limit is configured at all.
    pub fn is_empty(&self) -> bool {
        self.by_transport.is_empty() && self.by_tenant.is_empty()
    }

    /// Lets one message of `tenant` through `transport` pass now, or says how
    /// long to hold it back. Spends from both limits only when both allow.
    pub fn check(&self, tenant: &str, transport: &str) -> Result<(), Duration> {
        self.check_at(tenant, transport, Instant::now())
    }

    /// [`check`](Self::check) at a given time (tests inject the clock here).
    pub fn check_at(&self, tenant: &str, transport: &str, now: Instant) -> Result<(), Duration> {
        // Always transport before tenant, so two workers never lock crosswise.
        let limiters = [self.by_transport.get(transport), self.by_tenant.get(tenant)];
        let limiters: Vec<&RateLimiter> = limiters.into_iter().flatten().collect();
        let mut locked: Vec<_> = limiters.iter().map(|l| l.lock()).collect();
        let checked = check_all(&mut locked, now);
        if checked.is_err() {
            // Counted against the limits that were reached, not the others.
            for (limiter, cells) in limiters.iter().zip(&locked) {
                if cells.iter().any(|c| !c.wait(now).is_zero()) {
                    limiter.held_back.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        checked
    }

    /// The state of `transport`'s limit at `now`, if it has one.
    pub fn transport_state(&self, transport: &str, now: Instant) -> Option<LimitState> {
        self.by_transport.get(transport).map(|l| l.state_at(now))
    }

    /// Every tenant's limit and its state at `now`, by tenant name.
    pub fn tenant_states(&self, now: Instant) -> Vec<(String, LimitState)> {
        let mut states: Vec<_> = (self.by_tenant.iter())
            .map(|(name, l)| (name.clone(), l.state_at(now)))
            .collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        states
    }
}

fn limiters<N, R>(
    what: &'static str,
    pairs: impl IntoIterator<Item = (N, R)>,
) -> Result<HashMap<String, RateLimiter>, RateError>
where
    N: Into<String>,
    R: AsRef<str>,
{
    pairs
        .into_iter()
        .map(|(name, rate)| {
            let name = name.into();
            match Rate::parse(rate.as_ref()) {
                Ok(rate) => Ok((name, RateLimiter::new(&rate))),
                Err(e) => Err(RateError::Of {
                    what,
                    name,
                    source: Box::new(e),
                }),
            }
        })
        .collect()
}
