//! Mailjet Send API v3.1: `mailjet+api://KEY:SECRET@default`.
//!
//! `POST {base}/v3.1/send` with basic auth `KEY:SECRET` and
//! `{"Messages": [ … ]}`. Mailjet answers per message: each element of the
//! answer's `Messages` has its own `Status` (`success` or `error`) and, on
//! error, `Errors[]` with their own `StatusCode`, `ErrorCode` and
//! `ErrorMessage`. The HTTP status alone is not enough: it is 400 when any
//! message failed, and a proxy or a later version may answer 200 with an error
//! inside, so we judge our message by its own `Status`. Errors that concern
//! the whole request (a bad key) come as one `{"ErrorMessage", "StatusCode"}`.

use std::time::SystemTime;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{self, Secret};
use super::{Delivery, Dsn, DsnError, TransportError};
use crate::email::{Mailbox, OutgoingMessage};

const PROVIDER: &str = "mailjet";
const DEFAULT: &str = "https://api.mailjet.com";

/// Delivers through Mailjet's Send API v3.1.
#[derive(Clone)]
pub struct Mailjet {
    url: url::Url,
    key: Secret,
    secret: Secret,
}

impl std::fmt::Debug for Mailjet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailjet")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Mailjet {
    /// Builds the transport from `mailjet+api://KEY:SECRET@default[?endpoint=URL]`.
    pub fn from_dsn(dsn: &Dsn) -> Result<Self, DsnError> {
        http::check_dsn(dsn, &[])?;
        let base = http::endpoint(dsn, DEFAULT)?;
        Ok(Self {
            url: http::join(&base, &["v3.1", "send"]),
            key: Secret::new(dsn.require_user("API key")?),
            secret: Secret::new(dsn.require_password("API secret")?),
        })
    }
}

impl http::Provider for Mailjet {
    const NAME: &'static str = PROVIDER;

    fn request(
        &self,
        client: &reqwest::Client,
        message: &OutgoingMessage,
    ) -> Result<reqwest::RequestBuilder, TransportError> {
        Ok(client
            .post(self.url.clone())
            .basic_auth(self.key.expose(), Some(self.secret.expose()))
            .json(&request_body(message)))
    }

    fn judge(&self, answer: &http::Answer) -> Result<Delivery, TransportError> {
        judge(answer.status, &answer.headers, &answer.body)
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.secret.expose(), self.key.expose()]
    }
}

/// The Send API v3.1 request body of `message`.
fn request_body(message: &OutgoingMessage) -> Value {
    let mut entry = json!({
        "From": address(&message.from),
        "To": message.to.iter().map(address).collect::<Vec<_>>(),
        "Subject": message.subject,
        // Comes back in Mailjet's events, so they can be matched to our record.
        "CustomID": message.id.to_string(),
        "Headers": { "Message-ID": http::message_id_header(message) },
    });
    for (field, list) in [("Cc", &message.cc), ("Bcc", &message.bcc)] {
        if !list.is_empty() {
            entry[field] = list.iter().map(address).collect();
        }
    }
    if let Some(reply_to) = &message.reply_to {
        entry["ReplyTo"] = address(reply_to);
    }
    if let Some(text) = &message.text {
        entry["TextPart"] = json!(text);
    }
    if let Some(html) = &message.html {
        entry["HTMLPart"] = json!(html);
    }
    // EventPayload is one opaque string, returned in every event.
    let metadata: serde_json::Map<String, Value> = http::metadata(message)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let payload = json!({"tags": message.tags, "metadata": metadata});
    entry["EventPayload"] = json!(payload.to_string());
    json!({ "Messages": [entry] })
}

/// `{"Email", "Name"}` of a mailbox.
fn address(mailbox: &Mailbox) -> Value {
    match &mailbox.name {
        Some(name) => json!({"Email": mailbox.email, "Name": name}),
        None => json!({"Email": mailbox.email}),
    }
}

/// Mailjet's answer to a send.
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(rename = "Messages", default)]
    messages: Vec<MessageResult>,
}

/// The result of one message.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MessageResult {
    #[serde(default)]
    status: String,
    #[serde(default)]
    errors: Vec<MessageError>,
    #[serde(default)]
    to: Vec<Receipt>,
}

/// One error of one message.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MessageError {
    status_code: Option<u16>,
    error_code: Option<String>,
    error_message: Option<String>,
}

/// One recipient's receipt; `MessageID` is a (large) number.
#[derive(Debug, Deserialize)]
struct Receipt {
    #[serde(rename = "MessageID")]
    message_id: Option<Value>,
}

/// Success, or the failure our message's own `Status` and errors stand for.
fn judge(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, TransportError> {
    let first = serde_json::from_slice::<Answer>(body)
        .ok()
        .and_then(|a| a.messages.into_iter().next());
    match first {
        Some(result) if result.status == "error" => Err(message_error(status, headers, &result)),
        _ if !status.is_success() => Err(http::error_for(
            PROVIDER,
            status,
            headers,
            body,
            SystemTime::now(),
        )),
        result => Ok(Delivery {
            provider_message_id: result.and_then(receipt_id),
        }),
    }
}

/// The failure of a message whose `Status` is `error`: transient when the HTTP
/// status or any of its errors' `StatusCode` is.
fn message_error(
    status: StatusCode,
    headers: &HeaderMap,
    result: &MessageResult,
) -> TransportError {
    let transient = http::is_transient_status(status)
        || result.errors.iter().any(|e| {
            e.status_code
                .and_then(|c| StatusCode::from_u16(c).ok())
                .is_some_and(http::is_transient_status)
        });
    let details: Vec<String> = result
        .errors
        .iter()
        .map(|e| {
            let code = e.error_code.as_deref().unwrap_or_default();
            let text = e.error_message.as_deref().unwrap_or("no message");
            format!("{code} {text}").trim().to_owned()
        })
        .collect();
    let detail = http::error_text(details.join("; ").as_bytes());
    let message = format!("{PROVIDER}: HTTP {status}: message refused: {detail}");
    let error = if transient {
        TransportError::transient_after(
            message,
            http::parse_retry_after(headers, SystemTime::now()),
        )
    } else {
        TransportError::permanent(message)
    };
    error.with_code(status.as_u16())
}

/// Mailjet's id of the message for its first recipient.
fn receipt_id(result: MessageResult) -> Option<String> {
    match result.to.into_iter().next()?.message_id? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s),
        _ => None,
    }
}
