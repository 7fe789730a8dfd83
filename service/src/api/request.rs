//! The body of `POST /v1/messages` and `POST /v1/render`, and its validation.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::email::{
    InvalidField, MAX_RECIPIENTS, MAX_TO, Mailbox, NUL_REFUSED, check_body_text, check_header_text,
};

/// Most tags one message may carry.
const MAX_TAGS: usize = 10;
/// Most metadata entries one message may carry.
const MAX_METADATA: usize = 20;
/// Longest idempotency key, tag or metadata entry, in bytes.
const MAX_SHORT_TEXT: usize = 255;

/// A request to queue (or render) one email.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct MessageRequest {
    /// The tenant; must match the token's unless the caller is admin.
    pub tenant: Option<String>,
    /// Primary recipients, 1 to 50.
    #[serde(default)]
    pub to: Vec<Mailbox>,
    /// Carbon-copy recipients (at most 50 in `to`, `cc` and `bcc` together).
    #[serde(default)]
    pub cc: Vec<Mailbox>,
    /// Blind carbon-copy recipients.
    #[serde(default)]
    pub bcc: Vec<Mailbox>,
    /// The sender; else the tenant's, else `MAILBRIDGE_FROM`.
    pub from: Option<Mailbox>,
    /// The reply-to mailbox.
    pub reply_to: Option<Mailbox>,
    /// The SMTP envelope sender (Keycloak's `envelopeFrom`).
    pub envelope_from: Option<String>,
    /// A rendered subject.
    pub subject: Option<String>,
    /// A rendered plain-text body.
    pub text: Option<String>,
    /// A rendered HTML body.
    pub html: Option<String>,
    /// The name of a template to render.
    pub template: Option<String>,
    /// The recipient's language (`de`, `de-AT`, …).
    pub locale: Option<String>,
    /// The template's data.
    #[serde(default)]
    pub data: serde_json::Value,
    /// The caller's idempotency key (the `Idempotency-Key` header may give it instead).
    pub idempotency_key: Option<String>,
    /// Tags passed to providers.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Metadata passed to providers.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl MessageRequest {
    /// Checks every field that ends up in a header or a lookup.
    pub fn validate(&self) -> Result<(), InvalidField> {
        if self.to.is_empty() {
            return Err(InvalidField::new("to", "at least one recipient is needed"));
        }
        if self.to.len() > MAX_TO {
            return Err(InvalidField::new(
                "to",
                format!("at most {MAX_TO} recipients"),
            ));
        }
        if self.to.len() + self.cc.len() + self.bcc.len() > MAX_RECIPIENTS {
            return Err(InvalidField::new(
                "cc",
                format!("at most {MAX_RECIPIENTS} recipients in to, cc and bcc together"),
            ));
        }
        for (field, list) in [("to", &self.to), ("cc", &self.cc), ("bcc", &self.bcc)] {
            for (i, mailbox) in list.iter().enumerate() {
                mailbox.validate(&format!("{field}[{i}]"))?;
            }
        }
        if let Some(from) = &self.from {
            from.validate("from")?;
        }
        if let Some(reply_to) = &self.reply_to {
            reply_to.validate("reply_to")?;
        }
        if let Some(envelope_from) = &self.envelope_from {
            Mailbox::new(envelope_from.clone()).validate("envelope_from")?;
        }
        if let Some(subject) = &self.subject {
            check_header_text("subject", subject)?;
        }
        if let Some(text) = &self.text {
            check_body_text("text", text)?;
        }
        if let Some(html) = &self.html {
            check_body_text("html", html)?;
        }
        // Template data ends up in the bodies.
        check_data("data", &self.data)?;
        if let Some(tenant) = &self.tenant {
            check_tenant_name(tenant)?;
        }
        if let Some(template) = &self.template {
            check_name("template", template, 64, |c| {
                c.is_ascii_alphanumeric() || c == '-' || c == '_'
            })?;
        }
        if let Some(locale) = &self.locale {
            check_name("locale", locale, 35, |c| {
                c.is_ascii_alphanumeric() || c == '-' || c == '_'
            })?;
        }
        if let Some(key) = &self.idempotency_key {
            check_idempotency_key(key)?;
        }
        self.validate_tags_and_metadata()
    }

    fn validate_tags_and_metadata(&self) -> Result<(), InvalidField> {
        if self.tags.len() > MAX_TAGS {
            return Err(InvalidField::new(
                "tags",
                format!("at most {MAX_TAGS} tags"),
            ));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            check_short(&format!("tags[{i}]"), tag)?;
        }
        if self.metadata.len() > MAX_METADATA {
            return Err(InvalidField::new(
                "metadata",
                format!("at most {MAX_METADATA} entries"),
            ));
        }
        for (key, value) in &self.metadata {
            let field = || format!("metadata.{}", super::error::excerpt(key));
            check_short(&field(), key)?;
            check_short(&field(), value)?;
        }
        Ok(())
    }

    /// Whether the request carries its own rendered content.
    pub fn has_content(&self) -> bool {
        mailbridge_render::sendable_as_is(
            self.subject.as_deref(),
            self.text.as_deref(),
            self.html.as_deref(),
        )
    }
}

/// Refuses NUL anywhere in template data, keys included.
fn check_data(field: &str, value: &serde_json::Value) -> Result<(), InvalidField> {
    match nul_at(value) {
        None => Ok(()),
        Some(path) => Err(InvalidField::new(format!("{field}{path}"), NUL_REFUSED)),
    }
}

/// Where the first string or key of `value` holding a NUL is, as a path
/// below it (`.user.firstName`, `[2]`); built only when there is one, so
/// checking a request's data allocates nothing.
fn nul_at(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => s.contains('\0').then(String::new),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| Some(format!("[{i}]{}", nul_at(item)?))),
        serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
            let here = || format!(".{}", super::error::excerpt(key));
            if key.contains('\0') {
                return Some(here());
            }
            Some(format!("{}{}", here(), nul_at(item)?))
        }),
        _ => None,
    }
}

/// Tenant names: a Keycloak realm name without control characters or `/`.
pub fn check_tenant_name(tenant: &str) -> Result<(), InvalidField> {
    check_name("tenant", tenant, 255, |c| {
        !c.is_control() && c != '/' && c != '\\'
    })
}

/// An idempotency key: printable, at most 255 bytes.
pub fn check_idempotency_key(key: &str) -> Result<(), InvalidField> {
    check_name("idempotency_key", key, MAX_SHORT_TEXT, |c| !c.is_control())
}

fn check_short(field: &str, value: &str) -> Result<(), InvalidField> {
    check_header_text(field, value)?;
    if value.len() > MAX_SHORT_TEXT {
        return Err(InvalidField::new(
            field,
            format!("longer than {MAX_SHORT_TEXT} bytes"),
        ));
    }
    Ok(())
}

fn check_name(
    field: &str,
    value: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), InvalidField> {
    if value.is_empty() || value.len() > max {
        return Err(InvalidField::new(
            field,
            format!("must be 1 to {max} bytes"),
        ));
    }
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(InvalidField::new(
            field,
            format!("character {bad:?} is not allowed"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> MessageRequest {
        MessageRequest {
            to: vec![Mailbox::new("ada@example.com")],
            subject: Some("Hi".into()),
            text: Some("Hello".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_nul_in_the_data_is_named_by_its_path() {
        let at = |data: serde_json::Value| check_data("data", &data).map_err(|e| e.field);
        assert_eq!(at(serde_json::json!({"a": [1, "x", {"b": ["y"]}]})), Ok(()));
        assert_eq!(
            at(serde_json::json!({"a": [1, "x", {"b": ["y", "z\u{0}"]}]})),
            Err("data.a[2].b[1]".to_owned())
        );
        assert_eq!(
            at(serde_json::json!({"ok": "1", "k\u{0}": "v"})),
            Err("data.k\\0".to_owned())
        );
        assert_eq!(at(serde_json::json!(["\u{0}"])), Err("data[0]".to_owned()));
        let refused = check_data("data", &serde_json::json!({"u": "\u{0}"})).unwrap_err();
        assert_eq!(refused.reason, "must not contain NUL");
    }

    #[test]
    fn fifty_recipients_in_all_and_no_more() {
        let many = |n: usize, tag: &str| -> Vec<Mailbox> {
            (0..n)
                .map(|i| Mailbox::new(format!("{tag}{i}@example.com")))
                .collect()
        };
        let mut r = request();
        r.to = many(20, "t");
        r.cc = many(20, "c");
        r.bcc = many(10, "b");
        r.validate().unwrap();
        r.bcc = many(11, "b");
        assert_eq!(r.validate().unwrap_err().field, "cc");
        let mut r = request();
        r.to = many(40, "t");
        r.cc = many(11, "c");
        assert_eq!(r.validate().unwrap_err().field, "cc");
    }

    #[test]
    fn accepts_a_plain_request() {
        request().validate().unwrap();
        assert!(request().has_content());
    }

    #[test]
    fn refuses_what_would_break_headers_or_lookups() {
        let mut r = request();
        r.subject = Some("Hi\r\nBcc: x@y.example".into());
        assert_eq!(r.validate().unwrap_err().field, "subject");
        let mut r = request();
        r.template = Some("../etc/passwd".into());
        assert_eq!(r.validate().unwrap_err().field, "template");
        let mut r = request();
        r.to = (0..51)
            .map(|i| Mailbox::new(format!("u{i}@example.com")))
            .collect();
        assert_eq!(r.validate().unwrap_err().field, "to");
        let mut r = request();
        r.to.clear();
        assert_eq!(r.validate().unwrap_err().field, "to");
        let mut r = request();
        r.metadata.insert("k".into(), "v\n".into());
        assert!(r.validate().is_err());
        let mut r = request();
        r.text = Some("a\0b".into());
        assert_eq!(r.validate().unwrap_err().field, "text");
        let mut r = request();
        r.data = serde_json::json!({"user": {"names": ["ok", "a\u{0}b"]}});
        assert_eq!(r.validate().unwrap_err().field, "data.user.names[1]");
        let mut r = request();
        r.tenant = Some("a/b".into());
        assert_eq!(r.validate().unwrap_err().field, "tenant");
    }
}
