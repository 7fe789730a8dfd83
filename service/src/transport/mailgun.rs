//! Mailgun Messages API: `mailgun+api://KEY:DOMAIN@default[?region=us|eu]`.
//!
//! `POST {base}/v3/{domain}/messages` as `multipart/form-data` with basic auth
//! `api:KEY`. Repeated `to`/`cc`/`bcc` fields, headers as `h:Name`, options as
//! `o:name` (at most 3 `o:tag`, ASCII, 128 characters), variables as `v:name`.
//! Mailgun answers `{"id": "<…>", "message": "Queued. Thank you."}`; errors
//! come as `{"message": "…"}` (a bad key gets a plain-text `Forbidden`).
//! Variables travel in the delivered mail's `X-Mailgun-Variables` header, so
//! recipients can see them.

use reqwest::multipart::Form;

use super::http::{self, Secret};
use super::{Dsn, DsnError, TransportError};
use crate::email::OutgoingMessage;

const US: &str = "https://api.mailgun.net";
const EU: &str = "https://api.eu.mailgun.net";
const MAX_TAGS: usize = 3;
const MAX_TAG_LEN: usize = 128;

/// Delivers through Mailgun's Messages API.
#[derive(Clone)]
pub struct Mailgun {
    url: url::Url,
    key: Secret,
}

impl std::fmt::Debug for Mailgun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailgun")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Mailgun {
    /// Builds the transport from `mailgun+api://KEY:DOMAIN@default[?region=us|eu][&endpoint=URL]`.
    pub fn from_dsn(dsn: &Dsn) -> Result<Self, DsnError> {
        http::check_dsn(dsn, &["region"])?;
        let default = match dsn.option("region").unwrap_or("us") {
            "us" => US,
            "eu" => EU,
            other => {
                return Err(DsnError::invalid(
                    &dsn.scheme,
                    format!("region `{other}` is neither `us` nor `eu`"),
                ));
            }
        };
        let domain = dsn.require_password("sending domain")?;
        let base = http::endpoint(dsn, default)?;
        Ok(Self {
            url: http::join(&base, &["v3", domain, "messages"]),
            key: Secret::new(dsn.require_user("API key")?),
        })
    }
}

impl http::Provider for Mailgun {
    const NAME: &'static str = "mailgun";

    fn request(
        &self,
        client: &reqwest::Client,
        message: &OutgoingMessage,
    ) -> Result<reqwest::RequestBuilder, TransportError> {
        Ok(client
            .post(self.url.clone())
            .basic_auth("api", Some(self.key.expose()))
            .multipart(form(message)))
    }

    fn message_id(&self, answer: &http::Answer) -> Option<String> {
        queued_id(&answer.body)
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.key.expose()]
    }
}

/// The form fields of `message`.
fn form(message: &OutgoingMessage) -> Form {
    let mut form = Form::new()
        .text("from", http::format_mailbox(&message.from))
        .text("subject", message.subject.clone())
        .text("h:Message-Id", http::message_id_header(message));
    for (field, list) in [
        ("to", &message.to),
        ("cc", &message.cc),
        ("bcc", &message.bcc),
    ] {
        for mailbox in list {
            form = form.text(field, http::format_mailbox(mailbox));
        }
    }
    if let Some(text) = &message.text {
        form = form.text("text", text.clone());
    }
    if let Some(html) = &message.html {
        form = form.text("html", html.clone());
    }
    if let Some(reply_to) = &message.reply_to {
        form = form.text("h:Reply-To", http::format_mailbox(reply_to));
    }
    let tags = message
        .tags
        .iter()
        .filter(|t| !t.is_empty() && t.is_ascii() && t.len() <= MAX_TAG_LEN)
        .take(MAX_TAGS);
    for tag in tags {
        form = form.text("o:tag", tag.clone());
    }
    for (key, value) in http::metadata(message) {
        form = form.text(format!("v:{key}"), value);
    }
    form
}

/// Mailgun's id of a queued message, without its angle brackets.
fn queued_id(body: &[u8]) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = answer.get("id")?.as_str()?;
    Some(id.trim_start_matches('<').trim_end_matches('>').to_owned())
}
