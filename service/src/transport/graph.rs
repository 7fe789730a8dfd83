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
use std::time::SystemTime;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::{Delivery, Dsn, DsnError, Transport, TransportError, http};
use crate::email::OutgoingMessage;
use crate::oauth::{AccessToken, ClientAssertion, ClientCredentials, OAuthError, TokenSource};

/// The scope of an application's Graph permissions.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Longest part of an error message kept.
const MAX_MESSAGE: usize = 300;

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
    pub fn from_dsn(dsn: &Dsn) -> Result<Self, DsnError> {
        let http = http::client()?;
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
        Ok(Self::new(
            http.clone(),
            &http::endpoint(dsn, "https://graph.microsoft.com")?,
            dsn.require("user")?,
            Arc::new(token_source(dsn, http)?),
            internet_message_id,
        ))
    }

    /// A transport sending as `mailbox` through the Graph at `base`, with tokens from `tokens`.
    pub fn new(
        http: reqwest::Client,
        base: &url::Url,
        mailbox: &str,
        tokens: Arc<dyn TokenSource>,
        internet_message_id: bool,
    ) -> Self {
        Self {
            http,
            url: http::join(base, &["v1.0", "users", mailbox, "sendMail"]).to_string(),
            tokens,
            internet_message_id,
        }
    }

    async fn token(&self) -> Result<AccessToken, TransportError> {
        self.tokens.token().await.map_err(|e| token_error(&e))
    }

    /// `message` sent with `token`.
    async fn post(
        &self,
        token: &AccessToken,
        message: &OutgoingMessage,
    ) -> Result<Delivery, TransportError> {
        http::deliver(&self.http, &SendMail { graph: self, token }, message).await
    }
}

/// One `sendMail` call with one access token.
#[derive(Debug)]
struct SendMail<'a> {
    graph: &'a GraphTransport,
    token: &'a AccessToken,
}

impl http::Provider for SendMail<'_> {
    const NAME: &'static str = "Microsoft Graph";

    fn request(
        &self,
        client: &reqwest::Client,
        message: &OutgoingMessage,
    ) -> Result<reqwest::RequestBuilder, TransportError> {
        let body = serde_json::to_vec(&body::SendMail::new(
            message,
            self.graph.internet_message_id,
        ))
        .map_err(|e| TransportError::permanent(format!("cannot encode the Graph request: {e}")))?;
        Ok(client
            .post(&self.graph.url)
            .bearer_auth(self.token.secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body))
    }

    /// Graph answers 202 without an id of the message.
    fn judge(&self, answer: &http::Answer) -> Result<Delivery, TransportError> {
        if answer.status.is_success() {
            return Ok(Delivery::default());
        }
        Err(classify(answer.status, &answer.headers, &answer.body))
    }
}

#[async_trait]
impl Transport for GraphTransport {
    async fn send(&self, message: &OutgoingMessage) -> Result<Delivery, TransportError> {
        let token = self.token().await?;
        match self.post(&token, message).await {
            Err(TransportError::Auth { message: error, .. }) => {
                tracing::info!(%error, "Microsoft Graph refused the access token, fetching a new one");
                self.tokens.invalidate(&token);
                let token = self.token().await?;
                self.post(&token, message).await
            }
            other => other,
        }
    }

    async fn check(&self) -> Result<(), TransportError> {
        self.token().await.map(|_| ())
    }

    fn token_fetches(&self) -> Option<u64> {
        Some(self.tokens.fetches())
    }

    fn token_freshness(&self) -> Option<crate::oauth::TokenFreshness> {
        Some(self.tokens.freshness())
    }
}

/// The application's client-credentials grant at Entra (or `token_url`).
fn token_source(dsn: &Dsn, http: reqwest::Client) -> Result<ClientCredentials, DsnError> {
    let client_id = dsn.require_user("application (client) id")?;
    let token_url = match dsn.option("token_url") {
        Some(url) => url.to_owned(),
        None => {
            let tenant = dsn.require("tenant")?;
            format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
        }
    };
    let scope = dsn.option("scope").unwrap_or(GRAPH_SCOPE).to_owned();
    if let Some(assertion) = certificate(dsn)? {
        return Ok(ClientCredentials::with_certificate(
            http,
            token_url,
            client_id.to_owned(),
            assertion,
            scope,
        ));
    }
    let secret = dsn.require_password("client secret (or cert_file and key_file)")?;
    Ok(ClientCredentials::new(
        http,
        token_url,
        client_id.to_owned(),
        secret.to_owned(),
        scope,
    ))
}

/// The application's certificate (`cert_file`, `key_file`), read and checked
/// at start, when the DSN gives one instead of a client secret.
pub(crate) fn certificate(dsn: &Dsn) -> Result<Option<ClientAssertion>, DsnError> {
    let scheme = dsn.scheme.as_str();
    match (dsn.option("cert_file"), dsn.option("key_file")) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            if dsn.password.is_some() || dsn.option("client_secret").is_some() {
                return Err(DsnError::invalid(
                    scheme,
                    "give a client secret or cert_file and key_file, not both",
                ));
            }
            ClientAssertion::from_files(std::path::Path::new(cert), std::path::Path::new(key))
                .map(Some)
                .map_err(|e| DsnError::invalid(scheme, e.to_string()))
        }
        _ => Err(DsnError::invalid(
            scheme,
            "a certificate needs both cert_file and key_file",
        )),
    }
}

/// A token endpoint failure: a refused client is an auth failure (the secret
/// expired or was revoked, which an operator fixes without losing mail).
fn token_error(e: &OAuthError) -> TransportError {
    let message = format!("no Microsoft Graph access token: {e}");
    match e {
        OAuthError::Unavailable { .. } => TransportError::transient(message),
        OAuthError::Refused { .. } => TransportError::auth(message),
        OAuthError::Config(_) => TransportError::permanent(message),
    }
}

/// Classifies a failed answer: 401/403 auth (a token issued before the
/// application's permission was granted lacks it: a new one may pass), what
/// [`http::is_transient_status`] says and throttling codes transient (with
/// `Retry-After`), the rest permanent. A 403 that refuses the message's
/// `From` (`ErrorSendAsDenied`: the mailbox may not send as that address) is
/// about the message: permanent, the token kept, the transport not held.
fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> TransportError {
    let (code, text) = graph_error(body);
    let message = format!("Microsoft Graph: HTTP {status}: {code}: {text}");
    let throttled = ["Throttl", "Quota", "ExceededMessageLimit", "Concurrency"]
        .iter()
        .any(|c| code.contains(c));
    let error = if code == "ErrorSendAsDenied" {
        TransportError::permanent(message)
    } else if matches!(status.as_u16(), 401 | 403) {
        TransportError::auth(message)
    } else if http::is_transient_status(status) || throttled {
        TransportError::transient_after(
            message,
            http::parse_retry_after(headers, SystemTime::now()),
        )
    } else {
        TransportError::permanent(message)
    };
    error.with_code(status.as_u16())
}

/// `{"error": {"code", "message"}}`, or the start of the body.
fn graph_error(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |name: &str| v["error"][name].as_str().map(str::to_owned);
    let code = field("code").unwrap_or_else(|| "error".to_owned());
    let text = field("message").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (code, text.chars().take(MAX_MESSAGE).collect())
}
