//! Delivery of a rendered [`OutgoingMessage`]: one [`Transport`] trait, one file
//! per way of delivering, each configured by a DSN (see [`dsn`]).
//!
//! Every transport classifies its own errors where they arise into
//! [`TransportError`]: transient (retry later), auth (refresh credentials and
//! retry once) or permanent (dead-letter).

pub mod dsn;
pub mod failover;
pub mod file;
pub mod graph;
pub mod handover;
pub mod http;
pub mod mailgun;
pub mod mailjet;
pub mod memory;
pub mod mime;
pub mod postmark;
pub mod ratelimit;
pub mod resend;
pub mod sendgrid;
pub mod ses;
pub mod smtp;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::email::OutgoingMessage;
pub use dsn::{Dsn, DsnError};

/// What a successful delivery tells us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The provider's own id of the message (SendGrid's `X-Message-Id`, SES's
    /// `MessageId`, the SMTP server's queue id when it says one, …).
    pub provider_message_id: Option<String>,
}

/// Why a delivery attempt failed, decided where the failure arises.
///
/// Each variant carries the peer's reply code as a field (`code`): the SMTP
/// reply (`550`) or the HTTP status (`429`), set where the reply is read;
/// `None` when no peer answered (network, timeout, a message that could not
/// be built). Nothing parses it back out of the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Try again later: network error, timeout, SMTP 4xx, HTTP 429/5xx.
    #[error("transient failure: {message}")]
    Transient {
        /// What went wrong, e.g. the SMTP reply; never a secret.
        message: String,
        /// The provider's hint of when to try again.
        retry_after: Option<Duration>,
        /// The peer's reply code, if it answered.
        code: Option<u16>,
        /// The peer said the trouble is its own, whatever the message (an
        /// SMTP server's full disk or local error: `452 4.3.1`, `451`
        /// without a more precise code), though its code alone could be
        /// about the message.
        server: bool,
    },
    /// Credentials were refused: refresh them and retry once, then transient.
    #[error("authentication failed: {message}")]
    Auth {
        /// What went wrong; never a secret.
        message: String,
        /// The peer's reply code, if it answered.
        code: Option<u16>,
    },
    /// Will never succeed as it is: SMTP 5xx, HTTP 400/401/403/404/413/422.
    #[error("permanent failure: {message}")]
    Permanent {
        /// What went wrong, e.g. the SMTP reply; never a secret.
        message: String,
        /// The peer refused this transport's key or account (HTTP 401/403),
        /// not the message: another transport of a failover group may still
        /// deliver it.
        credentials: bool,
        /// The peer's reply code, if it answered.
        code: Option<u16>,
    },
}

impl TransportError {
    /// Whether this is the peer's answer about the message itself (a refusal
    /// of it, a 4xx about a recipient) rather than about the transport: no
    /// answer, an overloaded peer (421, 429, 5xx), refused credentials.
    pub fn is_about_the_message(&self) -> bool {
        match self {
            Self::Transient { server: true, .. } => false,
            Self::Transient {
                code: Some(code), ..
            } => !matches!(code, 421 | 429 | 500..=599),
            Self::Transient { code: None, .. } | Self::Auth { .. } => false,
            Self::Permanent { credentials, .. } => !credentials,
        }
    }

    /// A transient failure without a hint.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::transient_after(message, None)
    }

    /// A transient failure with the provider's hint of when to try again.
    pub fn transient_after(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after,
            code: None,
            server: false,
        }
    }

    /// The same transient failure, which the peer said is its own trouble
    /// (see `server` of [`TransportError::Transient`]).
    pub fn of_the_server(mut self) -> Self {
        if let Self::Transient { server, .. } = &mut self {
            *server = true;
        }
        self
    }

    /// Refused credentials: refresh them and retry once.
    pub fn auth(message: impl Into<String>) -> Self {
        Self::Auth {
            message: message.into(),
            code: None,
        }
    }

    /// A permanent failure caused by the message.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
            credentials: false,
            code: None,
        }
    }

    /// A permanent refusal of the transport's own key or account.
    pub fn refused_credentials(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
            credentials: true,
            code: None,
        }
    }

    /// The same failure, answered by the peer with reply code `reply`.
    pub fn with_code(mut self, reply: u16) -> Self {
        match &mut self {
            Self::Transient { code, .. }
            | Self::Auth { code, .. }
            | Self::Permanent { code, .. } => {
                *code = Some(reply);
            }
        }
        self
    }

    /// The peer's reply code (SMTP reply or HTTP status), if it answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Transient { code, .. }
            | Self::Auth { code, .. }
            | Self::Permanent { code, .. } => *code,
        }
    }

    /// The same failure with its message rewritten by `f`.
    pub fn map_message(mut self, f: impl FnOnce(String) -> String) -> Self {
        match &mut self {
            Self::Transient { message, .. }
            | Self::Auth { message, .. }
            | Self::Permanent { message, .. } => *message = f(std::mem::take(message)),
        }
        self
    }

    /// Whether another attempt later may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Permanent { .. })
    }

    /// The provider's hint of when to try again, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The message without the class prefix.
    pub fn detail(&self) -> &str {
        match self {
            Self::Transient { message, .. }
            | Self::Auth { message, .. }
            | Self::Permanent { message, .. } => message,
        }
    }
}

/// A way of delivering messages.
#[async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Delivers one message, or says why not.
    async fn send(&self, message: &OutgoingMessage) -> Result<Delivery, TransportError>;

    /// Tries to reach the peer without sending (used by `mailbridge check --connect`).
    async fn check(&self) -> Result<(), TransportError> {
        Ok(())
    }

    /// How many OAuth2 access tokens this transport has fetched so far, or
    /// `None` if it does not use OAuth2.
    fn token_fetches(&self) -> Option<u64> {
        None
    }

    /// Its OAuth2 token's freshness (fetched, expires, latest failure), or
    /// `None` if it does not use OAuth2. Never the token.
    fn token_freshness(&self) -> Option<crate::oauth::TokenFreshness> {
        None
    }
}

/// A shared transport.
pub type SharedTransport = Arc<dyn Transport>;

/// Builds the transport a DSN describes.
pub fn from_dsn(dsn: &Dsn) -> Result<SharedTransport, DsnError> {
    match dsn.scheme.as_str() {
        "smtp" | "smtps" => Ok(Arc::new(smtp::SmtpTransport::from_dsn(dsn)?)),
        "memory" => Ok(Arc::new(memory::MemoryTransport::new())),
        "file" => Ok(Arc::new(file::FileTransport::from_dsn(dsn)?)),
        "sendgrid+api" => api(sendgrid::SendGrid::from_dsn(dsn)?),
        "mailgun+api" => api(mailgun::Mailgun::from_dsn(dsn)?),
        "postmark+api" => api(postmark::Postmark::from_dsn(dsn)?),
        "mailjet+api" => api(mailjet::Mailjet::from_dsn(dsn)?),
        "resend+api" => api(resend::Resend::from_dsn(dsn)?),
        "ses+api" => Ok(Arc::new(ses::SesTransport::from_dsn(dsn)?)),
        "microsoftgraph+api" => Ok(Arc::new(graph::GraphTransport::from_dsn(dsn)?)),
        "failover" | "roundrobin" => failover::from_dsn(dsn),
        other => Err(DsnError::UnknownScheme(other.to_owned())),
    }
}

/// A provider's API as a shared transport.
fn api<P: http::Provider + 'static>(provider: P) -> Result<SharedTransport, DsnError> {
    Ok(Arc::new(http::Api::new(provider)?))
}

/// The configured transports by name (`default` and those of `[transports]`).
#[derive(Debug, Clone, Default)]
pub struct Transports {
    by_name: BTreeMap<String, SharedTransport>,
}

impl Transports {
    /// Adds or replaces the transport called `name`.
    pub fn insert(&mut self, name: impl Into<String>, transport: SharedTransport) {
        self.by_name.insert(name.into(), transport);
    }

    /// The transport called `name`.
    pub fn get(&self, name: &str) -> Option<SharedTransport> {
        self.by_name.get(name).cloned()
    }

    /// The names of every transport.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Every transport with its name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SharedTransport)> {
        self.by_name.iter().map(|(name, t)| (name.as_str(), t))
    }
}
