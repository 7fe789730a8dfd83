//! Resend Emails API: `resend+api://KEY@default`.
//!
//! `POST {base}/emails` with `Authorization: Bearer KEY` and
//! `Idempotency-Key: <our message id>`: Resend remembers the key for 24 hours
//! and answers a repeated request with the first one's result instead of
//! sending again, so our retries cannot duplicate a message. It answers
//! `{"id": "…"}`; errors come as `{"statusCode", "name", "message"}`. A 409
//! `concurrent_idempotent_requests` (the first attempt is still in progress) is
//! worth retrying; a 409 `invalid_idempotent_request` is not.
//! Tag names and values may hold only ASCII letters, digits, `_` and `-`
//! (at most 256 characters), so ours are sanitized.

use std::collections::HashSet;
use std::time::SystemTime;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{self, Secret};
use super::{Delivery, Dsn, DsnError, TransportError};
use crate::email::{Mailbox, OutgoingMessage};

const PROVIDER: &str = "resend";
const DEFAULT: &str = "https://api.resend.com";
const MAX_TAG_LEN: usize = 256;

/// Delivers through Resend's Emails API.
#[derive(Clone)]
pub struct Resend {
    url: url::Url,
    key: Secret,
}

impl std::fmt::Debug for Resend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resend")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Resend {
    /// Builds the transport from `resend+api://KEY@default[?endpoint=URL]`.
    pub fn from_dsn(dsn: &Dsn) -> Result<Self, DsnError> {
        http::check_dsn(dsn, &[])?;
        let base = http::endpoint(dsn, DEFAULT)?;
        Ok(Self {
            url: http::join(&base, &["emails"]),
            key: Secret::new(dsn.require_user("API key")?),
        })
    }
}

impl http::Provider for Resend {
    const NAME: &'static str = PROVIDER;

    fn request(
        &self,
        client: &reqwest::Client,
        message: &OutgoingMessage,
    ) -> Result<reqwest::RequestBuilder, TransportError> {
        Ok(client
            .post(self.url.clone())
            .bearer_auth(self.key.expose())
            .header("Idempotency-Key", message.id.to_string())
            .json(&request_body(message)))
    }

    fn judge(&self, answer: &http::Answer) -> Result<Delivery, TransportError> {
        judge(answer.status, &answer.headers, &answer.body)
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.key.expose()]
    }
}

/// The request body of `message`.
fn request_body(message: &OutgoingMessage) -> Value {
    let mut body = json!({
        "from": http::format_mailbox(&message.from),
        "to": formatted(&message.to),
        "subject": message.subject,
        "headers": { "Message-ID": http::message_id_header(message) },
        "tags": tags(message),
    });
    for (field, list) in [("cc", &message.cc), ("bcc", &message.bcc)] {
        if !list.is_empty() {
            body[field] = json!(formatted(list));
        }
    }
    if let Some(reply_to) = &message.reply_to {
        body["reply_to"] = json!(http::format_mailbox(reply_to));
    }
    // Without `text` Resend derives one from the HTML, which is what we want.
    if let Some(text) = &message.text {
        body["text"] = json!(text);
    }
    if let Some(html) = &message.html {
        body["html"] = json!(html);
    }
    body
}

/// Our id, the tenant, the metadata and the tags as Resend tags: `{name, value}` pairs with
/// unique names; a bare tag becomes `{name: tag, value: "true"}`.
fn tags(message: &OutgoingMessage) -> Vec<Value> {
    let bare = message.tags.iter().map(|t| (t.clone(), "true".to_owned()));
    let mut names = HashSet::new();
    http::metadata(message)
        .into_iter()
        .chain(bare)
        .map(|(name, value)| (sanitize(&name), sanitize(&value)))
        .filter(|(name, value)| !name.is_empty() && !value.is_empty())
        .filter(|(name, _)| names.insert(name.clone()))
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect()
}

/// `text` with every character Resend refuses in tags replaced by `_`.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TAG_LEN)
        .collect()
}

/// Mailboxes as `Name <addr>` strings.
fn formatted(list: &[Mailbox]) -> Vec<String> {
    list.iter().map(http::format_mailbox).collect()
}

/// Resend's answer: `id` on success, `name` and `message` on error.
#[derive(Debug, Default, Deserialize)]
struct Answer {
    id: Option<String>,
    name: Option<String>,
}

/// Success, or the failure the status (and for 409 the error name) stand for.
fn judge(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, TransportError> {
    let answer: Answer = serde_json::from_slice(body).unwrap_or_default();
    if status.is_success() {
        return Ok(Delivery {
            provider_message_id: answer.id,
        });
    }
    let err = http::error_for(PROVIDER, status, headers, body, SystemTime::now());
    if status == StatusCode::CONFLICT
        && answer.name.as_deref() == Some("concurrent_idempotent_requests")
    {
        // The first attempt is still running: ask again later, it will answer.
        let retry_after = http::parse_retry_after(headers, SystemTime::now());
        return Err(
            TransportError::transient_after(err.detail(), retry_after).with_code(status.as_u16())
        );
    }
    Err(err)
}
