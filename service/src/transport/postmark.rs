//! Postmark Email API: `postmark+api://TOKEN@default[?stream=outbound]`.
//!
//! `POST {base}/email` with `X-Postmark-Server-Token: TOKEN`. Addresses are
//! strings (`Name <addr>`, lists comma-joined, max 50 recipients); one `Tag`;
//! `Metadata` as a flat string map. The answer is always
//! `{"To", "SubmittedAt", "MessageID", "ErrorCode", "Message"}`: `ErrorCode` 0
//! means accepted. Rejections come as `422` with an API error code
//! (300 invalid request, 406 inactive recipient, …); we also check the code on
//! a `200`, in case a proxy or a future version answers that way.

use std::collections::BTreeMap;
use std::time::SystemTime;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{self, Secret};
use super::{Delivery, Dsn, DsnError, TransportError};
use crate::email::{Mailbox, OutgoingMessage};

const PROVIDER: &str = "postmark";
const DEFAULT: &str = "https://api.postmarkapp.com";
/// The default transactional stream of every Postmark server.
const DEFAULT_STREAM: &str = "outbound";
/// API error codes that clear up by themselves: maintenance, rate limit.
const TRANSIENT_CODES: [i64; 2] = [100, 429];

/// Delivers through Postmark's Email API.
#[derive(Clone)]
pub struct Postmark {
    url: url::Url,
    token: Secret,
    stream: String,
}

impl std::fmt::Debug for Postmark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postmark")
            .field("url", &self.url.as_str())
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl Postmark {
    /// Builds the transport from `postmark+api://TOKEN@default[?stream=NAME][&endpoint=URL]`.
    pub fn from_dsn(dsn: &Dsn) -> Result<Self, DsnError> {
        http::check_dsn(dsn, &["stream"])?;
        let base = http::endpoint(dsn, DEFAULT)?;
        Ok(Self {
            url: http::join(&base, &["email"]),
            token: Secret::new(dsn.require_user("server token")?),
            stream: dsn.option("stream").unwrap_or(DEFAULT_STREAM).to_owned(),
        })
    }

    /// The request body of `message`.
    fn request_body(&self, message: &OutgoingMessage) -> Value {
        let metadata: BTreeMap<String, String> = http::metadata(message).into_iter().collect();
        let mut body = json!({
            "From": http::format_mailbox(&message.from),
            "To": joined(&message.to),
            "Subject": message.subject,
            "Headers": [{"Name": "Message-ID", "Value": http::message_id_header(message)}],
            "Metadata": metadata,
            "MessageStream": self.stream,
        });
        let optional = [
            ("Cc", (!message.cc.is_empty()).then(|| joined(&message.cc))),
            (
                "Bcc",
                (!message.bcc.is_empty()).then(|| joined(&message.bcc)),
            ),
            (
                "ReplyTo",
                message.reply_to.as_ref().map(http::format_mailbox),
            ),
            ("TextBody", message.text.clone()),
            ("HtmlBody", message.html.clone()),
            ("Tag", message.tags.first().cloned()),
        ];
        for (field, value) in optional {
            if let Some(value) = value {
                body[field] = Value::String(value);
            }
        }
        body
    }
}

impl http::Provider for Postmark {
    const NAME: &'static str = PROVIDER;

    fn request(
        &self,
        client: &reqwest::Client,
        message: &OutgoingMessage,
    ) -> Result<reqwest::RequestBuilder, TransportError> {
        Ok(client
            .post(self.url.clone())
            .header("X-Postmark-Server-Token", self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&self.request_body(message)))
    }

    fn judge(&self, answer: &http::Answer) -> Result<Delivery, TransportError> {
        judge(answer.status, &answer.headers, &answer.body)
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.token.expose()]
    }
}

/// Postmark's answer to a send.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(rename = "MessageID")]
    message_id: Option<String>,
    error_code: Option<i64>,
    message: Option<String>,
}

/// Success, or the failure the status and the API error code stand for.
fn judge(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, TransportError> {
    let answer: Option<Answer> = serde_json::from_slice(body).ok();
    let code = answer.as_ref().and_then(|a| a.error_code).unwrap_or(0);
    match answer {
        Some(answer) if code != 0 && (status.is_success() || status.is_client_error()) => {
            Err(api_error(status, headers, code, answer.message.as_deref()))
        }
        _ if !status.is_success() => Err(http::error_for(
            PROVIDER,
            status,
            headers,
            body,
            SystemTime::now(),
        )),
        answer => Ok(Delivery {
            provider_message_id: answer.and_then(|a| a.message_id),
        }),
    }
}

/// The failure of API error `code`: transient for maintenance and rate
/// limits, and whenever the HTTP status itself is transient.
fn api_error(
    status: StatusCode,
    headers: &HeaderMap,
    code: i64,
    text: Option<&str>,
) -> TransportError {
    let detail = http::error_text(text.unwrap_or_default().as_bytes());
    let message = format!("{PROVIDER}: HTTP {status}: ErrorCode {code}: {detail}");
    if TRANSIENT_CODES.contains(&code) {
        let retry_after = http::parse_retry_after(headers, SystemTime::now());
        TransportError::transient_after(message, retry_after).with_code(status.as_u16())
    } else {
        http::status_error(status, headers, message, SystemTime::now())
    }
}

/// Mailboxes as one comma-separated string; names with commas are quoted.
fn joined(list: &[Mailbox]) -> String {
    list.iter()
        .map(http::format_mailbox)
        .collect::<Vec<_>>()
        .join(", ")
}
