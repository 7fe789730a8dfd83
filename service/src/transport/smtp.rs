//! `smtp://` and `smtps://`: delivery over SMTP with pooled connections,
//! STARTTLS or implicit TLS, AUTH PLAIN/LOGIN or XOAUTH2.
//!
//! With XOAUTH2 the pool belongs to one access token: connections are
//! authenticated once, when opened, so a new token gets a new pool and the
//! connections of the old one close. A refused token is dropped, a new one
//! fetched and the message tried once more.

mod classify;
mod settings;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::Semaphore;

use super::{Delivery, Dsn, DsnError, Transport, TransportError, mime};
use crate::email::OutgoingMessage;
use crate::oauth::{AccessToken, TokenSource};
use classify::{accepted_id, classify, is_token_refusal, token_error};

type Smtp = AsyncSmtpTransport<Tokio1Executor>;

/// Delivers over SMTP. Cheap to share: one per configured DSN.
pub struct SmtpTransport {
    server: String,
    builder: AsyncSmtpTransportBuilder,
    xoauth2: Option<(String, Arc<dyn TokenSource>)>,
    /// The pool in use and the token its connections were opened with.
    pool: Mutex<Option<(Option<AccessToken>, Smtp)>>,
    /// Bounds the connections open at once (lettre's pool only bounds idle ones).
    slots: Semaphore,
}

impl SmtpTransport {
    /// From `smtp://[user:pass@]host[:port][?options]` or `smtps://…`
    /// (see `docs/smtp.md`). Reads `ca_file` and `google_key_file` now.
    pub fn from_dsn(dsn: &Dsn) -> Result<Self, DsnError> {
        let s = settings::from_dsn(dsn)?;
        Ok(Self {
            server: s.server,
            builder: s.builder,
            xoauth2: s.xoauth2,
            pool: Mutex::new(None),
            slots: Semaphore::new(s.max_connections as usize),
        })
    }

    /// Runs `op` on a pooled connection; with XOAUTH2, once more with a new
    /// token when the server refuses the first.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, TransportError>
    where
        F: Fn(Smtp) -> Fut,
        Fut: Future<Output = Result<T, SmtpError>>,
    {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| TransportError::transient("SMTP transport is shutting down"))?;
        let Some((_, tokens)) = &self.xoauth2 else {
            return op(self.pool(None)).await.map_err(|e| self.fail(&e));
        };
        let token = tokens.token().await.map_err(|e| token_error(&e))?;
        match op(self.pool(Some(&token))).await {
            Err(e) if is_token_refusal(&e) => {
                tracing::info!(server = %self.server, "server refused the OAuth2 access token; fetching a new one");
                tokens.invalidate(&token);
                let token = tokens.token().await.map_err(|e| token_error(&e))?;
                op(self.pool(Some(&token))).await.map_err(|e| self.fail(&e))
            }
            other => other.map_err(|e| self.fail(&e)),
        }
    }

    /// The pool for `token`, made anew when the token changed.
    fn pool(&self, token: Option<&AccessToken>) -> Smtp {
        let mut current = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((pool_token, smtp)) = current.as_ref()
            && pool_token.as_ref() == token
        {
            return smtp.clone();
        }
        let mut builder = self.builder.clone();
        if let (Some((user, _)), Some(token)) = (&self.xoauth2, token) {
            builder = builder
                .credentials(Credentials::new(user.clone(), token.secret().to_owned()))
                .authentication(vec![Mechanism::Xoauth2]);
        }
        let smtp = builder.build();
        *current = Some((token.cloned(), smtp.clone()));
        smtp
    }

    fn fail(&self, error: &SmtpError) -> TransportError {
        let failure = classify(&self.server, error);
        tracing::debug!(server = %self.server, error = %failure, "SMTP attempt failed");
        failure
    }
}

#[async_trait]
impl Transport for SmtpTransport {
    async fn send(&self, message: &OutgoingMessage) -> Result<Delivery, TransportError> {
        let email = mime::build_mime(message)?;
        let (envelope, bytes) = (email.envelope(), email.formatted());
        let response = self
            .run(|smtp| {
                let bytes = &bytes;
                async move { smtp.send_raw(envelope, bytes).await }
            })
            .await?;
        Ok(Delivery {
            provider_message_id: accepted_id(&response),
        })
    }

    async fn check(&self) -> Result<(), TransportError> {
        let alive = self
            .run(|smtp| async move { smtp.test_connection().await })
            .await?;
        if alive {
            Ok(())
        } else {
            Err(TransportError::transient(format!(
                "{} did not answer NOOP",
                self.server
            )))
        }
    }
}

impl fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The builder holds the password: name only what is safe to show.
        f.debug_struct("SmtpTransport")
            .field("server", &self.server)
            .field(
                "xoauth2",
                &self.xoauth2.as_ref().map(|(user, src)| (user, src)),
            )
            .finish_non_exhaustive()
    }
}
