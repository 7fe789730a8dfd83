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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    timeout: Duration,
    xoauth2: Option<(String, Arc<dyn TokenSource>)>,
    pool: Mutex<Option<Pool>>,
    generations: AtomicU64,
    /// Bounds the connections open at once (lettre's pool only bounds idle ones).
    slots: Semaphore,
}

/// The pool in use, the token its connections were opened with, and a
/// number that tells it from the pools before it.
struct Pool {
    token: Option<AccessToken>,
    generation: u64,
    smtp: Smtp,
}

/// Why one attempt failed, before classification.
enum Failure {
    Smtp(SmtpError),
    TimedOut,
}

impl SmtpTransport {
    /// From `smtp://[user:pass@]host[:port][?options]` or `smtps://…`
    /// (see `docs/smtp.md`). Reads `ca_file` and `google_key_file` now.
    pub fn from_dsn(dsn: &Dsn) -> Result<Self, DsnError> {
        let s = settings::from_dsn(dsn)?;
        Ok(Self {
            server: s.server,
            builder: s.builder,
            timeout: s.timeout,
            xoauth2: s.xoauth2,
            pool: Mutex::new(None),
            generations: AtomicU64::new(0),
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
            return self.attempt(None, &op).await.map_err(|f| self.fail(f));
        };
        let token = tokens.token().await.map_err(|e| token_error(&e))?;
        match self.attempt(Some(&token), &op).await {
            Err(Failure::Smtp(e)) if is_token_refusal(&e) => {
                tracing::info!(server = %self.server, "server refused the OAuth2 access token; fetching a new one");
                tokens.invalidate(&token);
                let token = tokens.token().await.map_err(|e| token_error(&e))?;
                self.attempt(Some(&token), &op)
                    .await
                    .map_err(|f| self.fail(f))
            }
            other => other.map_err(|f| self.fail(f)),
        }
    }

    /// One bounded attempt. A connection left mid-conversation (timeout, or
    /// the caller gave up) must never be reused: its pool is then closed.
    async fn attempt<T, F, Fut>(&self, token: Option<&AccessToken>, op: &F) -> Result<T, Failure>
    where
        F: Fn(Smtp) -> Fut,
        Fut: Future<Output = Result<T, SmtpError>>,
    {
        let (generation, smtp) = self.pool(token);
        let mut guard = Unfinished {
            transport: self,
            generation,
            smtp: Some(smtp.clone()),
        };
        let result = tokio::time::timeout(self.timeout, op(smtp)).await;
        let Ok(result) = result else {
            return Err(Failure::TimedOut);
        };
        guard.smtp = None;
        result.map_err(Failure::Smtp)
    }

    /// The pool for `token`, made anew when the token changed.
    fn pool(&self, token: Option<&AccessToken>) -> (u64, Smtp) {
        let mut current = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = current.as_ref()
            && pool.token.as_ref() == token
        {
            return (pool.generation, pool.smtp.clone());
        }
        let mut builder = self.builder.clone();
        if let (Some((user, _)), Some(token)) = (&self.xoauth2, token) {
            builder = builder
                .credentials(Credentials::new(user.clone(), token.secret().to_owned()))
                .authentication(vec![Mechanism::Xoauth2]);
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let smtp = builder.build();
        *current = Some(Pool {
            token: token.cloned(),
            generation,
            smtp: smtp.clone(),
        });
        (generation, smtp)
    }

    /// Closes pool `generation` and, if it is still the current one, lets
    /// the next attempt open a fresh one.
    fn discard(&self, generation: u64, smtp: Smtp) {
        let mut current = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|p| p.generation == generation) {
            *current = None;
        }
        drop(current);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { smtp.shutdown().await });
        }
    }

    fn fail(&self, failure: Failure) -> TransportError {
        let error = match failure {
            Failure::Smtp(e) => classify(&self.server, &e),
            Failure::TimedOut => TransportError::transient(format!(
                "{} did not finish within {}",
                self.server,
                humantime::format_duration(self.timeout)
            )),
        };
        tracing::debug!(server = %self.server, %error, "SMTP attempt failed");
        error
    }
}

/// Closes the pool of an attempt dropped before it finished.
struct Unfinished<'a> {
    transport: &'a SmtpTransport,
    generation: u64,
    smtp: Option<Smtp>,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(smtp) = self.smtp.take() {
            self.transport.discard(self.generation, smtp);
        }
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

    fn token_fetches(&self) -> Option<u64> {
        self.xoauth2.as_ref().map(|(_, tokens)| tokens.fetches())
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
