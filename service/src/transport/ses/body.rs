//! The JSON body of SES v2 `SendEmail` for one message.
//!
//! The content goes as `Raw`: the very MIME message every other transport
//! sends (one builder, so our Reply-To, Subject encoding and parts are the
//! same everywhere), with the recipients in `Destination` because Bcc is never
//! written into headers. SES replaces the `Message-ID` header with its own, so
//! our message id also travels as the tag `mailbridge-id`, next to the tenant.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use crate::email::OutgoingMessage;
use crate::transport::mime::ascii_address;

/// Most tags SES takes on one message.
const MAX_TAGS: usize = 50;
/// Longest tag name or value SES takes.
const MAX_TAG_LEN: usize = 256;

/// The request body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SendEmail<'a> {
    from_email_address: Cow<'a, str>,
    destination: Destination<'a>,
    content: Content,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    email_tags: Vec<Tag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    configuration_set_name: Option<&'a str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Destination<'a> {
    to_addresses: Vec<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cc_addresses: Vec<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bcc_addresses: Vec<Cow<'a, str>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Content {
    raw: Raw,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Raw {
    data: String,
}

/// One `EmailTags` entry.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Tag {
    name: String,
    value: String,
}

impl<'a> SendEmail<'a> {
    /// The body for `msg`, whose MIME form is `eml`.
    pub(super) fn new(
        msg: &'a OutgoingMessage,
        eml: &[u8],
        configuration_set: Option<&'a str>,
    ) -> Self {
        // SES takes no SMTPUTF8: IDN domains go in their ASCII form.
        let emails =
            |list: &'a [crate::email::Mailbox]| list.iter().map(|m| ascii_address(&m.email));
        Self {
            from_email_address: ascii_address(&msg.from.email),
            destination: Destination {
                to_addresses: emails(&msg.to).collect(),
                cc_addresses: emails(&msg.cc).collect(),
                bcc_addresses: emails(&msg.bcc).collect(),
            },
            content: Content {
                raw: Raw {
                    data: STANDARD.encode(eml),
                },
            },
            email_tags: tags(msg),
            configuration_set_name: configuration_set,
        }
    }
}

/// Our id and tenant first, then the message's tags (value `true`) and
/// metadata, each cleaned to what SES allows; empty or repeated names are left out.
pub(super) fn tags(msg: &OutgoingMessage) -> Vec<Tag> {
    let ours = [
        ("mailbridge-id", msg.id.to_string()),
        ("mailbridge-tenant", msg.tenant.clone()),
    ];
    let tags = msg.tags.iter().map(|t| (t.as_str(), "true".to_owned()));
    let metadata = msg.metadata.iter().map(|(k, v)| (k.as_str(), v.clone()));
    let mut out: Vec<Tag> = Vec::new();
    for (name, value) in ours.into_iter().chain(tags).chain(metadata) {
        let (name, value) = (clean(name), clean(&value));
        if name.is_empty() || value.is_empty() || out.iter().any(|t| t.name == name) {
            continue;
        }
        out.push(Tag { name, value });
        if out.len() == MAX_TAGS {
            break;
        }
    }
    out
}

/// Keeps ASCII letters, digits, `_` and `-`; anything else becomes `_`.
fn clean(text: &str) -> String {
    text.chars()
        .take(MAX_TAG_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, value: &str) -> Tag {
        Tag {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn tags_are_cleaned_to_what_ses_allows() {
        let msg: OutgoingMessage = serde_json::from_value(serde_json::json!({
            "id": "0190a3c4-0000-7000-8000-000000000001", "tenant": "acme.example",
            "message_id": "x@acme.example", "from": {"email": "a@acme.example"},
            "to": [{"email": "b@example.com"}], "subject": "s",
            "tags": ["keycloak", "password reset", "mailbridge-id"],
            "metadata": {"realm": "acme", "kc.event": "LOGIN ERROR", "empty": ""}
        }))
        .unwrap();
        assert_eq!(
            tags(&msg),
            [
                tag("mailbridge-id", "0190a3c4-0000-7000-8000-000000000001"),
                tag("mailbridge-tenant", "acme_example"),
                tag("keycloak", "true"),
                tag("password_reset", "true"),
                tag("kc_event", "LOGIN_ERROR"),
                tag("realm", "acme"),
            ]
        );
    }
}
