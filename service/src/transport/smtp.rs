//! `smtp://` and `smtps://`: delivery over SMTP with pooled connections,
//! STARTTLS or implicit TLS, AUTH PLAIN/LOGIN or XOAUTH2.
//!
//! The parts: `settings` reads the DSN, `connect` opens one connection
//! (TCP_NODELAY, TLS, EHLO, AUTH), `pool` keeps idle ones, `conversation`
//! is the `debug=true` log, `classify` sorts failures. This file runs one
//! attempt: an idle connection if there is one, else a new one.
//!
//! With XOAUTH2 a connection is authenticated once, when opened, so it is
//! reused only while its token is the current one. A refused token is
//! dropped, a new one fetched and the message tried once more.

mod classify;
mod connect;
mod conversation;
mod dkim;
mod pool;
mod settings;
mod transaction;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use lettre::transport::smtp::commands::Noop;
use lettre::transport::smtp::response::Response;
use tokio::sync::Semaphore;

use super::{Delivery, Dsn, DsnError, Transport, TransportError};
use crate::email::OutgoingMessage;
use crate::oauth::AccessToken;
use classify::{accepted_id, classify, is_token_refusal, token_error};
use connect::{Connection, Failure};
use conversation::Conversation;
use pool::Pool;
use settings::Settings;
use transaction::{Forms, transaction};

/// Delivers over SMTP. Cheap to share: one per configured DSN.
pub struct SmtpTransport {
    settings: Settings,
    server: Arc<str>,
    pool: Arc<Pool>,
    /// Numbers connections in the conversation log.
    opened: AtomicU64,
    /// Bounds the connections open at once.
    slots: Semaphore,
}

/// What one attempt does on its connection.
#[derive(Clone, Copy)]
enum Job<'a> {
    Send(&'a Forms),
    Check,
}

impl SmtpTransport {
    /// From `smtp://[user:pass@]host[:port][?options]` or `smtps://…`
    /// (see `docs/smtp.md`). Reads `ca_file` and `google_key_file` now.
    pub fn from_dsn(dsn: &Dsn) -> Result<Self, DsnError> {
        let settings = settings::from_dsn(dsn)?;
        Ok(Self {
            server: settings.server.as_str().into(),
            slots: Semaphore::new(settings.max_connections as usize),
            pool: Arc::new(Pool::new(settings.idle_timeout)),
            settings,
            opened: AtomicU64::new(0),
        })
    }

    /// Runs `job` on a connection; with XOAUTH2, once more with a new token
    /// when the server refuses the first.
    async fn run(&self, job: Job<'_>) -> Result<Response, TransportError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| TransportError::transient("SMTP transport is shutting down"))?;
        let Some((_, tokens)) = &self.settings.xoauth2 else {
            return self.attempt(None, job).await.map_err(|f| self.fail(f));
        };
        let token = tokens.token().await.map_err(|e| token_error(&e))?;
        match self.attempt(Some(&token), job).await {
            Err(Failure::Smtp(e) | Failure::Login(e, _)) if is_token_refusal(&e) => {
                tracing::info!(server = %self.server, "server refused the OAuth2 access token; fetching a new one");
                tokens.invalidate(&token);
                let token = tokens.token().await.map_err(|e| token_error(&e))?;
                self.attempt(Some(&token), job)
                    .await
                    .map_err(|f| self.fail(f))
            }
            other => other.map_err(|f| self.fail(f)),
        }
    }

    /// One attempt bounded by the timeout. A connection left mid-conversation
    /// (timeout, or the caller gave up) is dropped with the future, never reused.
    async fn attempt(
        &self,
        token: Option<&AccessToken>,
        job: Job<'_>,
    ) -> Result<Response, Failure> {
        tokio::time::timeout(self.settings.timeout, self.attempt_on(token, job))
            .await
            .unwrap_or(Err(Failure::TimedOut))
    }

    /// `job` on an idle connection, else (or if that one turns out closed)
    /// on a new one.
    async fn attempt_on(
        &self,
        token: Option<&AccessToken>,
        job: Job<'_>,
    ) -> Result<Response, Failure> {
        if let Some(mut idle) = self.pool.take(token) {
            match self.finish(&mut idle, job).await {
                Err(Failure::Stale(e)) => {
                    idle.log.note(format!(
                        "the idle connection was closed ({e}); opening a new one"
                    ));
                }
                other => return self.keep(idle, other),
            }
        }
        let number = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        let log = Conversation::new(self.server.clone(), number, self.settings.debug);
        let mut fresh = connect::open(&self.settings, log, token).await?;
        let result = match self.finish(&mut fresh, job).await {
            Err(Failure::Stale(e)) => Err(Failure::Smtp(e)),
            other => other,
        };
        self.keep(fresh, result)
    }

    /// Runs `job` on `connection`.
    async fn finish(&self, connection: &mut Connection, job: Job<'_>) -> Result<Response, Failure> {
        match job {
            Job::Send(forms) => transaction(connection, forms).await,
            Job::Check => {
                connection.log.sent("NOOP");
                let reply = connection.smtp.command(Noop).await;
                connection.log.answer(&reply);
                reply.map_err(stale_or_smtp)
            }
        }
    }

    /// Pools `connection` after a success; closes it after a failure.
    fn keep(
        &self,
        connection: Connection,
        result: Result<Response, Failure>,
    ) -> Result<Response, Failure> {
        if result.is_ok() {
            self.pool.put(connection);
        } else {
            pool::close(connection);
        }
        result
    }

    fn fail(&self, failure: Failure) -> TransportError {
        let error = match failure {
            Failure::Smtp(e) | Failure::Stale(e) => classify(&self.server, &e),
            Failure::Login(e, login) => {
                classify(&self.server, &e).map_message(|text| login.blank(&text))
            }
            Failure::Connect(message) => TransportError::transient(message),
            Failure::Refused(message) => TransportError::permanent(message),
            Failure::TimedOut => {
                // The timed-out connection went with its future; the server
                // may be hanging, so its idle connections are not reused either.
                self.pool.clear();
                TransportError::transient(format!(
                    "{} did not finish within {}",
                    self.server,
                    humantime::format_duration(self.settings.timeout)
                ))
            }
        };
        tracing::debug!(server = %self.server, %error, "SMTP attempt failed");
        error
    }
}

/// The first command on a connection: failing without a reply, or with
/// `421`, means the server closed it (possibly while it idled).
fn stale_or_smtp(error: lettre::transport::smtp::Error) -> Failure {
    if server_gone(&error) {
        Failure::Stale(error)
    } else {
        Failure::Smtp(error)
    }
}

/// Whether `error` says the server is gone from the connection: no reply
/// at all (not a fault of ours), or `421` (closing).
fn server_gone(error: &lettre::transport::smtp::Error) -> bool {
    let closed = error.status().is_none() && !error.is_client();
    closed || classify::reply_code(error) == Some(421)
}

#[async_trait]
impl Transport for SmtpTransport {
    async fn send(&self, message: &OutgoingMessage) -> Result<Delivery, TransportError> {
        let tagged;
        let message = match &self.settings.verp {
            Some((local, domain)) => {
                tagged = OutgoingMessage {
                    envelope_from: Some(crate::events::dsn_report::verp_address(
                        local, message.id, domain,
                    )),
                    ..message.clone()
                };
                &tagged
            }
            None => message,
        };
        let forms = Forms::of(message, self.settings.dkim.as_deref())?;
        let response = self.run(Job::Send(&forms)).await?;
        Ok(Delivery {
            provider_message_id: accepted_id(&response),
        })
    }

    async fn check(&self) -> Result<(), TransportError> {
        self.run(Job::Check).await.map(|_| ())
    }

    fn token_fetches(&self) -> Option<u64> {
        self.settings
            .xoauth2
            .as_ref()
            .map(|(_, tokens)| tokens.fetches())
    }

    fn token_freshness(&self) -> Option<crate::oauth::TokenFreshness> {
        self.settings
            .xoauth2
            .as_ref()
            .map(|(_, tokens)| tokens.freshness())
    }
}

impl fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The builder holds the password: name only what is safe to show.
        f.debug_struct("SmtpTransport")
            .field("server", &self.server)
            .field("debug", &self.settings.debug)
            .field(
                "xoauth2",
                &self
                    .settings
                    .xoauth2
                    .as_ref()
                    .map(|(user, src)| (user, src)),
            )
            .finish_non_exhaustive()
    }
}
