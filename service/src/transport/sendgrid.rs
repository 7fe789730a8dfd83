//! SendGrid v3 Mail Send: `sendgrid+api://KEY@default[?region=eu]`.
//!
//! `POST {base}/v3/mail/send` with `Authorization: Bearer KEY`; SendGrid
//! answers `202 Accepted` with an empty body and its id in `X-Message-Id`.
//! Errors come as `{"errors":[{"message","field","help"}]}`; a 429 carries
//! `X-RateLimit-Reset` (Unix time), which [`http::error_for`] turns into
//! `retry_after`.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::http::{self, Secret};
use super::{Dsn, DsnError, TransportError};
use crate::email::{Mailbox, OutgoingMessage};

const GLOBAL: &str = "https://api.sendgrid.com";
/// For EU regional subusers; their keys work only there.
const EU: &str = "https://api.eu.sendgrid.com";
/// SendGrid takes at most 10 categories of at most 255 characters each.
const MAX_CATEGORIES: usize = 10;
const MAX_CATEGORY_LEN: usize = 255;

/// Delivers through SendGrid's v3 Mail Send API.
#[derive(Clone)]
pub struct SendGrid {
    url: url::Url,
    key: Secret,
}

impl std::fmt::Debug for SendGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendGrid")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl SendGrid {
    /// Builds the transport from `sendgrid+api://KEY@default[?region=global|eu][&endpoint=URL]`.
    pub fn from_dsn(dsn: &Dsn) -> Result<Self, DsnError> {
        http::check_dsn(dsn, &["region"])?;
        let default = match dsn.option("region").unwrap_or("global") {
            "global" | "us" => GLOBAL,
            "eu" => EU,
            other => {
                return Err(DsnError::invalid(
                    &dsn.scheme,
                    format!("region `{other}` is neither `global` nor `eu`"),
                ));
            }
        };
        let base = http::endpoint(dsn, default)?;
        Ok(Self {
            url: http::join(&base, &["v3", "mail", "send"]),
            key: Secret::new(dsn.require_user("API key")?),
        })
    }
}

impl http::Provider for SendGrid {
    const NAME: &'static str = "sendgrid";

    fn request(
        &self,
        client: &reqwest::Client,
        message: &OutgoingMessage,
    ) -> Result<reqwest::RequestBuilder, TransportError> {
        Ok(client
            .post(self.url.clone())
            .bearer_auth(self.key.expose())
            .json(&request_body(message)))
    }

    fn message_id(&self, answer: &http::Answer) -> Option<String> {
        let id = answer.headers.get("x-message-id")?.to_str().ok()?;
        Some(id.to_owned())
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.key.expose()]
    }
}

/// The Mail Send request body of `message`.
fn request_body(message: &OutgoingMessage) -> Value {
    // SendGrid refuses an address that appears twice among to, cc and bcc.
    let mut seen = HashSet::new();
    let mut personalization = json!({ "to": unique(&message.to, &mut seen) });
    for (field, list) in [("cc", &message.cc), ("bcc", &message.bcc)] {
        let list = unique(list, &mut seen);
        if !list.is_empty() {
            personalization[field] = Value::Array(list);
        }
    }
    // SendGrid wants text/plain before text/html.
    let content: Vec<Value> = [("text/plain", &message.text), ("text/html", &message.html)]
        .into_iter()
        .filter_map(|(kind, body)| body.as_ref().map(|b| json!({"type": kind, "value": b})))
        .collect();
    let custom_args: BTreeMap<String, String> = http::metadata(message).into_iter().collect();
    let mut body = json!({
        "personalizations": [personalization],
        "from": address(&message.from),
        "subject": message.subject,
        "content": content,
        "headers": { "Message-ID": http::message_id_header(message) },
        "custom_args": custom_args,
    });
    if let Some(reply_to) = &message.reply_to {
        body["reply_to"] = address(reply_to);
    }
    let categories = categories(&message.tags);
    if !categories.is_empty() {
        body["categories"] = json!(categories);
    }
    body
}

/// `{"email", "name"}` of a mailbox.
fn address(mailbox: &Mailbox) -> Value {
    match &mailbox.name {
        Some(name) => json!({"email": mailbox.email, "name": name}),
        None => json!({"email": mailbox.email}),
    }
}

/// The mailboxes of `list` whose address was not seen before (case-insensitive).
fn unique(list: &[Mailbox], seen: &mut HashSet<String>) -> Vec<Value> {
    list.iter()
        .filter(|m| seen.insert(m.email.to_lowercase()))
        .map(address)
        .collect()
}

/// Tags as categories, within SendGrid's limits (longer ones are left out).
fn categories(tags: &[String]) -> Vec<&str> {
    tags.iter()
        .map(String::as_str)
        .filter(|t| !t.is_empty() && t.chars().count() <= MAX_CATEGORY_LEN)
        .take(MAX_CATEGORIES)
        .collect()
}
