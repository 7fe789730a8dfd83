//! What the transports page shows from this process's memory rather than
//! the store: each sending limit's state (how many may pass now, the wait
//! for the next, how many were held back) and each OAuth2 transport's token
//! freshness (fetched, expires, latest failure; never the token). Every
//! replica keeps its own: the page says so.

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use time::OffsetDateTime;

use super::pages::stamp;
use crate::oauth::TokenFreshness;
use crate::queue::worker::Worker;
use crate::transport::ratelimit::LimitState;

/// A sending limit as the page shows it.
#[derive(Debug, Serialize)]
pub struct Limit {
    /// Each quota: `30/minute: 28 of 30 may pass now`, and the wait when none may.
    quotas: Vec<QuotaView>,
    /// Messages held back since this process started.
    held_back: u64,
}

#[derive(Debug, Serialize)]
struct QuotaView {
    quota: String,
    available: u32,
    count: u32,
    /// `None` when a message may pass now.
    wait: Option<String>,
}

impl From<LimitState> for Limit {
    fn from(state: LimitState) -> Limit {
        let quotas = state
            .quotas
            .into_iter()
            .map(|q| QuotaView {
                quota: q.quota.to_string(),
                available: q.available,
                count: q.quota.count.get(),
                wait: (!q.wait.is_zero()).then(|| seconds(q.wait)),
            })
            .collect();
        Limit {
            quotas,
            held_back: state.held_back,
        }
    }
}

/// An OAuth2 token's freshness as the page shows it.
#[derive(Debug, Serialize)]
pub struct Token {
    fetched_at: Option<String>,
    expires_at: Option<String>,
    expired: bool,
    last_error_at: Option<String>,
    last_error: Option<String>,
    fetches: u64,
}

impl From<TokenFreshness> for Token {
    fn from(f: TokenFreshness) -> Token {
        let wall = |t: SystemTime| stamp(OffsetDateTime::from(t));
        Token {
            fetched_at: f.fetched_at.map(wall),
            expired: f.expires_at.is_some_and(|t| t <= SystemTime::now()),
            expires_at: f.expires_at.map(wall),
            last_error_at: f.last_error.as_ref().map(|(at, _)| wall(*at)),
            last_error: f.last_error.map(|(_, e)| e),
            fetches: f.fetches,
        }
    }
}

/// The limit of transport `name`, if it has one.
pub fn transport_limit(worker: &Worker, name: &str) -> Option<Limit> {
    (worker.limits())
        .transport_state(name, Instant::now())
        .map(Limit::from)
}

/// The token freshness of transport `name`, if it uses OAuth2.
pub fn token(worker: &Worker, name: &str) -> Option<Token> {
    worker
        .transport(name)
        .and_then(|t| t.token_freshness())
        .map(Token::from)
}

/// Every tenant's limit, by tenant name; only the tenants `visible` lets through.
pub fn tenant_limits(worker: &Worker, visible: impl Fn(&str) -> bool) -> Vec<(String, Limit)> {
    (worker.limits())
        .tenant_states(Instant::now())
        .into_iter()
        .filter(|(name, _)| visible(name))
        .map(|(name, state)| (name, Limit::from(state)))
        .collect()
}

/// `1.5 s`, `42 s`, rounded up to a tenth of a second.
fn seconds(wait: Duration) -> String {
    let tenths = wait.as_millis().div_ceil(100);
    format!("{}.{} s", tenths / 10, tenths % 10)
}
