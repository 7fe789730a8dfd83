//! Domain types of a message: addresses, content, the message as it is queued
//! and delivered. No I/O here.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Most recipients one message may have in `to`.
pub const MAX_TO: usize = 50;
/// Most recipients one message may have in `to`, `cc` and `bcc` together:
/// the most SES, Postmark, Mailjet and Resend take in one message (a larger
/// one would be refused by them for good, after it was accepted).
pub const MAX_RECIPIENTS: usize = 50;
/// Longest display name or subject we accept, in bytes.
pub const MAX_HEADER_TEXT: usize = 998;

/// A validation failure of one field, with the field's JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    /// JSON path of the offending field, e.g. `to[2].email`.
    pub field: String,
    /// Why it was refused, fit to show to the caller.
    pub reason: String,
}

impl InvalidField {
    /// A failure of `field` for `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// An email address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mailbox {
    /// The address, `local@domain`.
    pub email: String,
    /// The display name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Mailbox {
    /// A mailbox without display name.
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            name: None,
        }
    }

    /// Checks the address and display name; `field` names it in the error.
    pub fn validate(&self, field: &str) -> Result<(), InvalidField> {
        // The field's name is only written out for an error.
        fn at<'a>(field: &'a str, part: &'a str) -> impl FnOnce(InvalidField) -> InvalidField + 'a {
            move |e| InvalidField::new(format!("{field}.{part}"), e.reason)
        }
        check_header_text("", &self.email).map_err(at(field, "email"))?;
        self.email.parse::<lettre::Address>().map_err(|e| {
            InvalidField::new(
                format!("{field}.email"),
                format!("not a valid address ({e})"),
            )
        })?;
        check_ascii_domain("", &self.email).map_err(at(field, "email"))?;
        // A quoted local part may hold what separates addresses (`"a,b"@x`):
        // providers that take recipients as one comma-joined string (Postmark,
        // Mailgun) may read a second recipient there, past every check.
        if self.email.starts_with('"') {
            return Err(InvalidField::new(
                format!("{field}.email"),
                "a quoted local part (\"…\"@domain) is not accepted",
            ));
        }
        if let Some(name) = &self.name {
            check_header_text("", name).map_err(at(field, "name"))?;
        }
        Ok(())
    }

    /// Parses `Name <addr>` or a bare `addr` (the form used in config files).
    pub fn parse(text: &str) -> Result<Self, InvalidField> {
        let text = text.trim();
        let mailbox = match (text.rfind('<'), text.ends_with('>')) {
            (Some(open), true) => {
                let name = text[..open].trim().trim_matches('"').trim();
                Mailbox {
                    email: text[open + 1..text.len() - 1].trim().to_owned(),
                    name: (!name.is_empty()).then(|| name.to_owned()),
                }
            }
            _ => Mailbox::new(text),
        };
        mailbox.validate("address")?;
        Ok(mailbox)
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} <{}>", self.email),
            None => f.write_str(&self.email),
        }
    }
}

/// An IDN domain must have a valid ASCII (punycode) form: that is what DNS
/// and servers without SMTPUTF8 see. lettre checks the Unicode form only, and
/// a label within 63 characters can grow past 63 octets once encoded.
fn check_ascii_domain(field: &str, email: &str) -> Result<(), InvalidField> {
    let Some((_, domain)) = email.rsplit_once('@') else {
        return Ok(());
    };
    if domain.is_ascii() {
        return Ok(());
    }
    let valid = idna::domain_to_ascii(domain).is_ok_and(|ascii| {
        format!("postmaster@{ascii}")
            .parse::<lettre::Address>()
            .is_ok()
    });
    if valid {
        Ok(())
    } else {
        Err(InvalidField::new(
            field,
            "the domain has no valid ASCII (punycode) form",
        ))
    }
}

/// Refuses text that would break out of a header: CR, LF, NUL, or too long.
pub fn check_header_text(field: &str, value: &str) -> Result<(), InvalidField> {
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(InvalidField::new(field, "must not contain CR, LF or NUL"));
    }
    if value.len() > MAX_HEADER_TEXT {
        return Err(InvalidField::new(
            field,
            format!("longer than {MAX_HEADER_TEXT} bytes"),
        ));
    }
    Ok(())
}

/// Why a body text (or request data) holding NUL is refused.
pub const NUL_REFUSED: &str = "must not contain NUL";

/// Refuses body text holding NUL: no transfer encoding of text may carry
/// it, and servers disagree on what it means.
pub fn check_body_text(field: &str, value: &str) -> Result<(), InvalidField> {
    if value.contains('\0') {
        return Err(InvalidField::new(field, NUL_REFUSED));
    }
    Ok(())
}

/// `text` with every line ending (CRLF, a bare CR, a bare LF) as CRLF. On the
/// wire a bare CR or LF is what SMTP smuggling hides `<CR>.<CR>` behind.
pub fn crlf_line_endings(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + text.len() / 32 + 2);
    // Line ends are ASCII, so every cut falls between whole characters.
    let mut start = 0;
    for at in memchr::memchr2_iter(b'\r', b'\n', bytes) {
        if at < start {
            continue; // the LF of a CRLF already written
        }
        out.push_str(&text[start..at]);
        out.push_str("\r\n");
        let crlf = bytes[at] == b'\r' && bytes.get(at + 1) == Some(&b'\n');
        start = at + if crlf { 2 } else { 1 };
    }
    out.push_str(&text[start..]);
    out
}

/// A fully rendered message, ready for any transport. This is what the queue
/// stores and what every transport receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// Our id of the message (the queue row's id).
    pub id: uuid::Uuid,
    /// The tenant (by default a Keycloak realm) it is sent for.
    pub tenant: String,
    /// The `Message-ID` header value without angle brackets, chosen at accept
    /// time and reused on every attempt.
    pub message_id: String,
    /// The `From` header.
    pub from: Mailbox,
    /// The SMTP envelope sender (`MAIL FROM`), when it differs from `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_from: Option<String>,
    /// The `Reply-To` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Mailbox>,
    /// Primary recipients (at least one).
    pub to: Vec<Mailbox>,
    /// Carbon-copy recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<Mailbox>,
    /// Blind carbon-copy recipients (never written into headers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bcc: Vec<Mailbox>,
    /// The subject line.
    pub subject: String,
    /// The plain-text body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The HTML body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Free-form tags passed to providers that take them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Free-form key/value metadata passed to providers that take it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl OutgoingMessage {
    /// A plain-text message from `from` to `to` with a fresh id and a
    /// `Message-ID` in the sender's domain; no copies, tags or metadata.
    pub fn plain(tenant: &str, from: Mailbox, to: Mailbox, subject: &str, text: &str) -> Self {
        let id = uuid::Uuid::now_v7();
        Self {
            id,
            tenant: tenant.to_owned(),
            message_id: make_message_id(id, &from),
            from,
            envelope_from: None,
            reply_to: None,
            to: vec![to],
            cc: Vec::new(),
            bcc: Vec::new(),
            subject: subject.to_owned(),
            text: Some(text.to_owned()),
            html: None,
            tags: Vec::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// Every envelope recipient: to, cc and bcc.
    pub fn recipients(&self) -> impl Iterator<Item = &Mailbox> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }

    /// The message with its bodies as every transport sends them: CRLF line
    /// ends only; refused if a body holds NUL. Borrowed when already so.
    pub fn with_wire_bodies(&self) -> Result<Cow<'_, Self>, InvalidField> {
        let bodies = [
            ("text", self.text.as_deref()),
            ("html", self.html.as_deref()),
        ];
        let mut bare = false;
        for (field, body) in bodies {
            if let Some(body) = body {
                check_body_text(field, body)?;
                bare |= has_bare_line_end(body);
            }
        }
        if !bare {
            return Ok(Cow::Borrowed(self));
        }
        let mut message = self.clone();
        message.text = self.text.as_deref().map(crlf_line_endings);
        message.html = self.html.as_deref().map(crlf_line_endings);
        Ok(Cow::Owned(message))
    }
}

/// Whether `text` has a CR or LF that is not part of a CRLF pair.
fn has_bare_line_end(text: &str) -> bool {
    let bytes = text.as_bytes();
    memchr::memchr2_iter(b'\r', b'\n', bytes).any(|i| match bytes[i] {
        b'\r' => bytes.get(i + 1) != Some(&b'\n'),
        _ => i == 0 || bytes[i - 1] != b'\r',
    })
}

/// Makes a `Message-ID` value (without brackets) for message `id` sent from
/// `from`: in the sender's domain, in its ASCII form (a `Message-ID` is
/// ASCII: an IDN goes as punycode).
pub fn make_message_id(id: uuid::Uuid, from: &Mailbox) -> String {
    let domain = from.email.rsplit_once('@').map_or("", |(_, d)| d);
    let made = format!("{}@{domain}", id.simple());
    match wire_message_id(&made) {
        Some(wire) => wire.into_owned(),
        None => format!("{}@mailbridge.invalid", id.simple()),
    }
}

/// A `Message-ID` value as it goes on the wire: a plain `left@right` token
/// of printable ASCII (no brackets, quotes, backslashes or commas), the
/// right side of an IDN in its ASCII form; `None` when it cannot be one.
/// Messages stored with a domain in Unicode are sent this way too.
pub fn wire_message_id(id: &str) -> Option<Cow<'_, str>> {
    let (left, right) = id.rsplit_once('@')?;
    if left.is_empty() || right.is_empty() {
        return None;
    }
    // A domain without an ASCII form stays as it is, and is refused below.
    let id = ascii_address(id);
    let plain = id
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '\\' | ','));
    plain.then_some(id)
}

/// `local@domain` with an IDN domain in its ASCII (punycode) form. Unchanged
/// when the domain is ASCII already, or the local part is not (only SMTPUTF8
/// can carry that address, in any form).
pub fn ascii_address(email: &str) -> Cow<'_, str> {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Cow::Borrowed(email);
    };
    if domain.is_ascii() || !local.is_ascii() {
        return Cow::Borrowed(email);
    }
    match idna::domain_to_ascii(domain) {
        Ok(ascii) => Cow::Owned(format!("{local}@{ascii}")),
        Err(_) => Cow::Borrowed(email),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_ascii_whatever_the_sender_s_domain() {
        let id = uuid::Uuid::now_v7();
        let simple = id.simple();
        let of = |email: &str| make_message_id(id, &Mailbox::new(email));
        assert_eq!(
            of("no-reply@acme.example"),
            format!("{simple}@acme.example")
        );
        assert_eq!(
            of("no-reply@münchen.example"),
            format!("{simple}@xn--mnchen-3ya.example")
        );
        // A sender the fuzzer found (valid atext, no IDNA form): a domain
        // of our own rather than a message no server takes.
        let odd = of("no-reply@ac}eҘxampnal");
        assert!(wire_message_id(&odd).is_some_and(|w| w == odd), "{odd}");
        assert!(odd.starts_with(&simple.to_string()), "{odd}");
    }

    #[test]
    fn a_quoted_local_part_is_refused() {
        for quoted in [r#""a,evil@x.example"@example.com"#, r#""ada"@example.com"#] {
            let err = Mailbox::new(quoted).validate("to[0]").unwrap_err();
            assert!(err.reason.contains("quoted"), "{quoted}: {}", err.reason);
        }
        assert!(
            Mailbox::new("ada.o'neil+x@example.com")
                .validate("to[0]")
                .is_ok()
        );
    }

    #[test]
    fn parses_display_form() {
        let m = Mailbox::parse("ACME <no-reply@acme.example>").unwrap();
        assert_eq!(m.email, "no-reply@acme.example");
        assert_eq!(m.name.as_deref(), Some("ACME"));
        assert_eq!(Mailbox::parse("a@b.example").unwrap().name, None);
    }

    #[test]
    fn every_line_ending_becomes_crlf() {
        assert_eq!(
            crlf_line_endings("a\rb\nc\r\nd\r\re\n\n"),
            "a\r\nb\r\nc\r\nd\r\n\r\ne\r\n\r\n"
        );
        assert_eq!(crlf_line_endings("über\r.\r"), "über\r\n.\r\n");
        assert!(has_bare_line_end("a\rb") && has_bare_line_end("\n") && has_bare_line_end("a\r"));
        assert!(!has_bare_line_end("a\r\nb\r\n") && !has_bare_line_end(""));
        assert!(check_body_text("text", "a\0b").is_err());
        assert!(check_body_text("text", "a\r\nb").is_ok());
    }

    /// Every string of up to six of `a`, `ü`, CR, LF: the byte-wise
    /// conversion agrees with converting character by character.
    #[test]
    fn line_endings_agree_with_a_character_by_character_conversion() {
        fn by_chars(text: &str) -> String {
            let mut out = String::new();
            let mut chars = text.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\r' => {
                        chars.next_if_eq(&'\n');
                        out.push_str("\r\n");
                    }
                    '\n' => out.push_str("\r\n"),
                    c => out.push(c),
                }
            }
            out
        }
        let alphabet = ['a', 'ü', '\r', '\n'];
        let mut texts = vec![String::new()];
        for _ in 0..6 {
            let longer: Vec<String> = (texts.iter())
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            for text in &longer {
                let converted = crlf_line_endings(text);
                assert_eq!(converted, by_chars(text), "{text:?}");
                assert!(!has_bare_line_end(&converted), "{text:?}");
                assert_eq!(has_bare_line_end(text), converted != *text, "{text:?}");
            }
            texts = longer;
        }
    }

    #[test]
    fn an_idn_domain_needs_a_valid_ascii_form() {
        // Found by fuzz/message_request: accepted, then refused by every
        // server without SMTPUTF8 (its punycode label is over 63 octets).
        let long = format!("a@mün{}chen.de", "x".repeat(55));
        assert!(long.parse::<lettre::Address>().is_ok());
        let error = Mailbox::new(long).validate("to[0]").unwrap_err();
        assert_eq!(error.field, "to[0].email");
        Mailbox::new("a@münchen.de").validate("to[0]").unwrap();
        Mailbox::new("ü@example.com").validate("to[0]").unwrap();
    }

    #[test]
    fn refuses_header_injection() {
        let m = Mailbox {
            email: "a@b.example".into(),
            name: Some("x\r\nBcc: evil@example.com".into()),
        };
        assert!(m.validate("to[0]").is_err());
        assert!(
            Mailbox::new("a@b.example\nBcc: x@y")
                .validate("to[0]")
                .is_err()
        );
        assert!(Mailbox::new("not-an-address").validate("to[0]").is_err());
    }
}
