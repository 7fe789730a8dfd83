//! OAuth2 access tokens for transports that authenticate with them (SMTP
//! XOAUTH2, Microsoft Graph): a client-credentials grant ([`ClientCredentials`])
//! and Google's service-account JWT bearer grant ([`GoogleServiceAccount`]).
//!
//! Every source caches its token, refreshes it shortly before it expires, and
//! lets concurrent callers share one request to the token endpoint. The cache
//! belongs to the source, so transports never wait on each other, and no lock
//! is held while a caller uses the token.

mod cache;
mod client_assertion;
mod client_credentials;
mod google;
mod token_endpoint;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::time::Instant;

pub use client_assertion::ClientAssertion;
pub use client_credentials::ClientCredentials;
pub use google::{GMAIL_SCOPE, GoogleServiceAccount};

/// How long before its expiry a cached token is replaced.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Lifetime assumed when the token endpoint does not say (`expires_in` absent).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Something that hands out OAuth2 access tokens.
#[async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// A valid access token: the cached one, or a freshly fetched one.
    async fn token(&self) -> Result<AccessToken, OAuthError>;

    /// Forgets `token` because a server refused it; the next call fetches anew.
    fn invalidate(&self, token: &AccessToken);

    /// How many tokens this source has fetched from its token endpoint so far.
    fn fetches(&self) -> u64;

    /// When its token was fetched and expires, and its latest failure; never the token.
    fn freshness(&self) -> TokenFreshness {
        TokenFreshness::default()
    }
}

/// What an operator may know of a source's token (per process): when it was
/// fetched and when it expires, and the latest failed fetch. Never the token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFreshness {
    /// When the cached token was fetched.
    pub fetched_at: Option<SystemTime>,
    /// When the cached token expires (as the token endpoint said).
    pub expires_at: Option<SystemTime>,
    /// When the latest fetch failed, and why (the endpoint's answer, no secret).
    pub last_error: Option<(SystemTime, String)>,
    /// Tokens fetched so far.
    pub fetches: u64,
}

/// An access token. `Debug` never shows the secret.
#[derive(Clone)]
pub struct AccessToken {
    secret: Arc<str>,
    refresh_at: Instant,
    /// When it expires, on the wall clock (shown to operators).
    expires_at: SystemTime,
}

impl AccessToken {
    /// A token valid for `lifetime` from now.
    pub fn new(secret: impl Into<Arc<str>>, lifetime: Duration) -> Self {
        // Short-lived tokens are refreshed at half their life instead of a
        // minute before the end, which could be before they were issued.
        let margin = if lifetime > 2 * REFRESH_MARGIN {
            REFRESH_MARGIN
        } else {
            lifetime / 2
        };
        Self {
            secret: secret.into(),
            refresh_at: Instant::now() + lifetime - margin,
            expires_at: SystemTime::now() + lifetime,
        }
    }

    /// When it expires.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The bearer token itself.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Whether the token may still be handed out without refreshing it.
    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.refresh_at
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"<redacted>")
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        self.secret == other.secret
    }
}

/// Why no access token could be obtained. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The token endpoint refused the grant (HTTP 400/401/403: `invalid_client`,
    /// `invalid_scope`, `unauthorized_client`, …); retrying will not help until
    /// the configuration changes.
    #[error("token endpoint {url} refused the request (HTTP {status}): {reason}")]
    Refused {
        /// The token endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The OAuth2 `error` and `error_description`, or the start of the body.
        reason: String,
    },
    /// The token endpoint could not be reached or failed (network error,
    /// timeout, HTTP 429 or 5xx, an answer without a token); may pass.
    #[error("token endpoint {url} unavailable: {reason}")]
    Unavailable {
        /// The token endpoint.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The credentials configured locally are unusable (key file, private key).
    #[error("OAuth2 credentials unusable: {0}")]
    Config(String),
}

impl OAuthError {
    /// Whether trying again later may succeed without a configuration change.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}
