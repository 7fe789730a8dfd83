//! Microsoft Graph `sendMail`
//! (`microsoftgraph+api://CLIENT_ID:SECRET@default?tenant=T&user=MAILBOX`).
//!
//! The application authenticates with the client-credentials grant (scope
//! `https://graph.microsoft.com/.default`, the application permission
//! `Mail.Send`) and sends as MAILBOX. The token is cached and refreshed by
//! [`ClientCredentials`]; a refused token (401/403) is dropped and the
//! message sent once more with a fresh one, which also picks up a permission
//! granted since the token was issued.
//! Options: `tenant`, `user`, `endpoint` (default `https://graph.microsoft.com`),
//! `token_url` (default Entra's v2.0 endpoint of `tenant`), `scope`,
//! `internet_message_id=false` (let Exchange choose the Message-ID).

mod body;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::{Delivery, Dsn, DsnError, Transport, TransportError};
use crate::email::OutgoingMessage;
use crate::oauth::{AccessToken, ClientCredentials, OAuthError, TokenSource};

/// The scope of an application's Graph permissions.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Longest part of an error message kept.
const MAX_MESSAGE: usize = 300;
/// What may not stand unencoded in one path segment.
const SEGMENT: &AsciiSet = &CONTROLS.add(b' ').add(b'/').add(b'?').add(b'#').add(b'%');

/// Delivers through Microsoft Graph as one mailbox.
#[derive(Debug)]
pub struct GraphTransport {
    http: reqwest::Client,
    url: String,
    tokens: Arc<dyn TokenSource>,
    internet_message_id: bool,
}

impl GraphTransport {
    /// Builds the transport from its DSN.
    pub fn from_dsn(dsn: &Dsn, http: reqwest::Client) -> Result<Self, DsnError> {
        let client_id = dsn.require_user("application (client) id")?;
        let secret = dsn.require_password("client secret")?;
        let mailbox = dsn.require("user")?;
        let token_url = match dsn.option("token_url") {
            Some(url) => url.to_owned(),
            None => {
                let tenant = dsn.require("tenant")?;
                format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
            }
        };
        let scope = dsn.option("scope").unwrap_or(GRAPH_SCOPE).to_owned();
        let tokens = ClientCredentials::new(
            http.clone(),
            token_url,
            client_id.to_owned(),
            secret.to_owned(),
            scope,
        );
        let internet_message_id = match dsn.option("internet_message_id") {
            None | Some("true") => true,
            Some("false") => false,
            Some(_) => {
                return Err(DsnError::invalid(
                    &dsn.scheme,
                    "internet_message_id is true or false",
                ));
            }
        };
        let base = dsn
            .option("endpoint")
            .unwrap_or("https://graph.microsoft.com");
        Ok(Self::new(
            http,
            base,
            mailbox,
            Arc::new(tokens),
            internet_message_id,
        ))
    }

    /// A transport sending as `mailbox` through the Graph at `base`, with tokens from `tokens`.
    pub fn new(
        http: reqwest::Client,
        base: &str,
        mailbox: &str,
        tokens: Arc<dyn TokenSource>,
        internet_message_id: bool,
    ) -> Self {
        let user = utf8_percent_encode(mailbox, SEGMENT);
        Self {
            http,
            url: format!("{}/v1.0/users/{user}/sendMail", base.trim_end_matches('/')),
            tokens,
            internet_message_id,
        }
    }

    async fn token(&self) -> Result<AccessToken, TransportError> {
        self.tokens.token().await.map_err(|e| token_error(&e))
    }

    async fn post(&self, token: &AccessToken, body: &[u8]) -> Result<(), TransportError> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(token.secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| TransportError::transient(format!("Microsoft Graph unreachable: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let headers = response.headers().clone();
        let answer = response.bytes().await.unwrap_or_default();
        Err(classify(status, &headers, &answer))
    }
}

#[async_trait]
impl Transport for GraphTransport {
    async fn send(&self, message: &OutgoingMessage) -> Result<Delivery, TransportError> {
        let body = serde_json::to_vec(&body::SendMail::new(message, self.internet_message_id))
            .map_err(|e| {
                TransportError::permanent(format!("cannot encode the Graph request: {e}"))
            })?;
        let token = self.token().await?;
        match self.post(&token, &body).await {
            Err(TransportError::Auth { message }) => {
                tracing::info!(error = %message, "Microsoft Graph refused the access token, fetching a new one");
                self.tokens.invalidate(&token);
                let token = self.token().await?;
                self.post(&token, &body).await?;
            }
            other => other?,
        }
        // Graph answers 202 without an id of the message.
        Ok(Delivery::default())
    }

    async fn check(&self) -> Result<(), TransportError> {
        self.token().await.map(|_| ())
    }
}

/// A token endpoint failure: a refused client is an auth failure (the secret
/// expired or was revoked, which an operator fixes without losing mail).
fn token_error(e: &OAuthError) -> TransportError {
    let message = format!("no Microsoft Graph access token: {e}");
    match e {
        OAuthError::Unavailable { .. } => TransportError::transient(message),
        OAuthError::Refused { .. } => TransportError::Auth { message },
        OAuthError::Config(_) => TransportError::Permanent { message },
    }
}

/// Classifies a failed answer: 401/403 auth, 429/5xx and throttling codes
/// transient (with `Retry-After`), the rest permanent.
fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> TransportError {
    let (code, text) = graph_error(body);
    let message = format!(
        "Microsoft Graph answered HTTP {}: {code}: {text}",
        status.as_u16()
    );
    let throttled = ["Throttl", "Quota", "ExceededMessageLimit", "Concurrency"]
        .iter()
        .any(|c| code.contains(c));
    match status.as_u16() {
        401 | 403 => TransportError::Auth { message },
        429 | 500..=599 => TransportError::Transient {
            message,
            retry_after: retry_after(headers),
        },
        _ if throttled => TransportError::Transient {
            message,
            retry_after: retry_after(headers),
        },
        _ => TransportError::Permanent { message },
    }
}

/// `{"error": {"code", "message"}}`, or the start of the body.
fn graph_error(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |name: &str| v["error"][name].as_str().map(str::to_owned);
    let code = field("code").unwrap_or_else(|| "error".to_owned());
    let text = field("message").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (code, text.chars().take(MAX_MESSAGE).collect())
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}
