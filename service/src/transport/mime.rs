//! An [`OutgoingMessage`] as an RFC 5322 message with its SMTP envelope, for
//! every transport that sends whole messages (SMTP, files, SES raw).
//!
//! What leaves here is safe on the wire: bodies have CRLF line ends only
//! (a bare CR or LF could end DATA early on some servers), NUL is refused,
//! bodies with long lines are quoted-printable or base64 (`body`), and
//! headers lettre would leave over 998 octets are RFC 2047 encoded
//! (`header`).

mod body;
mod header;

use std::borrow::Cow;

use lettre::Address;
use lettre::address::Envelope;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox as LettreMailbox, MessageBuilder, MultiPart};

use super::TransportError;
pub use crate::email::ascii_address;
use crate::email::{Mailbox, OutgoingMessage, check_header_text, wire_message_id};

/// How addresses are written in the envelope and the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressForm {
    /// As the request gave them: UTF-8 where they are (needs SMTPUTF8).
    AsGiven,
    /// IDN domains in their ASCII (punycode) form wherever the local part is
    /// ASCII, for servers without SMTPUTF8.
    Ascii,
}

/// Builds the message: From, Reply-To, To, Cc (Bcc only in the envelope),
/// Subject, our Message-ID, and a text/html alternative or a single part.
/// The envelope sender is `envelope_from` when set, else the From address.
pub fn build_mime(
    msg: &OutgoingMessage,
    form: AddressForm,
) -> Result<lettre::Message, TransportError> {
    let msg = &*wire_bodies(msg)?;
    let heads = Heads::of(msg, form)?;
    let builder = heads.apply(
        lettre::Message::builder()
            .subject(header_text("subject", &msg.subject)?)
            .message_id(Some(format!("<{}>", message_id(&msg.message_id)?)))
            .envelope(envelope(msg, form)?),
    );
    let built = match (&msg.text, &msg.html) {
        (Some(text), Some(html)) => builder.multipart(
            MultiPart::alternative()
                .singlepart(body::part(ContentType::TEXT_PLAIN, text))
                .singlepart(body::part(ContentType::TEXT_HTML, html)),
        ),
        (None, Some(html)) => builder.singlepart(body::part(ContentType::TEXT_HTML, html)),
        (text, None) => builder.singlepart(body::part(
            ContentType::TEXT_PLAIN,
            text.as_deref().unwrap_or_default(),
        )),
    };
    let mut message =
        built.map_err(|e| TransportError::permanent(format!("cannot build the message: {e}")))?;
    header::encode_long_headers(&mut message, &msg.subject, &heads.by_name());
    Ok(message)
}

/// The mailboxes of the address headers.
struct Heads {
    from: [LettreMailbox; 1],
    reply_to: Vec<LettreMailbox>,
    to: Vec<LettreMailbox>,
    cc: Vec<LettreMailbox>,
}

impl Heads {
    fn of(msg: &OutgoingMessage, form: AddressForm) -> Result<Self, TransportError> {
        Ok(Self {
            from: [mailbox("from", &msg.from, form)?],
            reply_to: mailboxes("reply_to", msg.reply_to.as_slice(), form)?,
            to: mailboxes("to", &msg.to, form)?,
            cc: mailboxes("cc", &msg.cc, form)?,
        })
    }

    fn apply(&self, mut builder: MessageBuilder) -> MessageBuilder {
        builder = builder.from(self.from[0].clone());
        for m in &self.reply_to {
            builder = builder.reply_to(m.clone());
        }
        for m in &self.to {
            builder = builder.to(m.clone());
        }
        for m in &self.cc {
            builder = builder.cc(m.clone());
        }
        builder
    }

    fn by_name(&self) -> [(&'static str, &[LettreMailbox]); 4] {
        [
            ("From", &self.from),
            ("Reply-To", &self.reply_to),
            ("To", &self.to),
            ("Cc", &self.cc),
        ]
    }
}

/// The message as it would travel over SMTP (CRLF line ends, encoded bodies).
pub fn to_eml(msg: &OutgoingMessage, form: AddressForm) -> Result<Vec<u8>, TransportError> {
    Ok(build_mime(msg, form)?.formatted())
}

/// MAIL FROM and RCPT TO: every to, cc and bcc address.
fn envelope(msg: &OutgoingMessage, form: AddressForm) -> Result<Envelope, TransportError> {
    let sender = match &msg.envelope_from {
        Some(addr) => address("envelope_from", addr, form)?,
        None => address("from", &msg.from.email, form)?,
    };
    let recipients = msg
        .recipients()
        .map(|m| address("recipient", &m.email, form))
        .collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(sender), recipients)
        .map_err(|e| TransportError::permanent(format!("invalid envelope: {e}")))
}

fn mailbox(field: &str, m: &Mailbox, form: AddressForm) -> Result<LettreMailbox, TransportError> {
    let name = m
        .name
        .as_deref()
        .map(|n| header_text(field, n))
        .transpose()?;
    Ok(LettreMailbox::new(name, address(field, &m.email, form)?))
}

fn mailboxes(
    field: &str,
    list: &[Mailbox],
    form: AddressForm,
) -> Result<Vec<LettreMailbox>, TransportError> {
    list.iter().map(|m| mailbox(field, m, form)).collect()
}

fn address(field: &str, text: &str, form: AddressForm) -> Result<Address, TransportError> {
    let text = match form {
        AddressForm::AsGiven => Cow::Borrowed(text),
        AddressForm::Ascii => ascii_address(text),
    };
    text.parse().map_err(|e| {
        TransportError::permanent(format!("{field}: `{text}` is not a valid address ({e})"))
    })
}

/// Header text is validated when a message is accepted; checked again here
/// because a transport must never write a header a CR/LF could split.
fn header_text(field: &str, text: &str) -> Result<String, TransportError> {
    check_header_text(field, text).map_err(|e| TransportError::permanent(e.to_string()))?;
    Ok(text.to_owned())
}

/// `msg` with CRLF line ends only. NUL is refused when a message is
/// accepted; refused again here for messages stored before that rule.
pub fn wire_bodies(msg: &OutgoingMessage) -> Result<Cow<'_, OutgoingMessage>, TransportError> {
    msg.with_wire_bodies()
        .map_err(|e| TransportError::permanent(e.to_string()))
}

/// The Message-ID is written as given (not encoded), so it must be a plain
/// `left@right` token (see [`wire_message_id`]).
fn message_id(id: &str) -> Result<Cow<'_, str>, TransportError> {
    wire_message_id(id).ok_or_else(|| {
        TransportError::permanent(format!(
            "message_id `{}` is not of the form left@right",
            id.escape_debug()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> OutgoingMessage {
        OutgoingMessage {
            id: uuid::Uuid::nil(),
            tenant: "acme".into(),
            message_id: "abc@acme.example".into(),
            from: Mailbox {
                email: "no-reply@acme.example".into(),
                name: Some("ACME Ümlaut".into()),
            },
            envelope_from: Some("bounces@acme.example".into()),
            reply_to: Some(Mailbox::new("support@acme.example")),
            to: vec![Mailbox::new("ada@example.com")],
            cc: vec![Mailbox::new("cc@example.com")],
            bcc: vec![Mailbox::new("hidden@example.com")],
            subject: "Reset your password".into(),
            text: Some("Hello".into()),
            html: Some("<p>Hello</p>".into()),
            tags: vec![],
            metadata: Default::default(),
        }
    }

    #[test]
    fn headers_and_envelope() {
        let msg = build_mime(&sample(), AddressForm::AsGiven).unwrap();
        let text = String::from_utf8(msg.formatted()).unwrap();
        assert!(
            text.contains("Message-ID: <abc@acme.example>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Reply-To: support@acme.example\r\n"),
            "{text}"
        );
        assert!(text.contains("Cc: cc@example.com\r\n"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(!text.contains("hidden@example.com"), "{text}");
        let envelope = msg.envelope();
        assert_eq!(
            envelope.from().map(ToString::to_string).as_deref(),
            Some("bounces@acme.example")
        );
        assert_eq!(envelope.to().len(), 3);
    }

    #[test]
    fn a_message_id_stored_in_an_idn_domain_goes_as_punycode() {
        let mut m = sample();
        m.message_id = "abc@münchen.example".into();
        let text = String::from_utf8(to_eml(&m, AddressForm::AsGiven).unwrap()).unwrap();
        assert!(
            text.contains("Message-ID: <abc@xn--mnchen-3ya.example>\r\n"),
            "{text}"
        );
        for bad in [
            "abc",
            "@acme.example",
            "abc@",
            "a<b@acme.example",
            "a b@acme.example",
        ] {
            m.message_id = bad.into();
            assert!(to_eml(&m, AddressForm::AsGiven).is_err(), "{bad}");
        }
    }

    #[test]
    fn html_only_is_a_single_part() {
        let mut m = sample();
        m.text = None;
        let text = String::from_utf8(to_eml(&m, AddressForm::AsGiven).unwrap()).unwrap();
        assert!(text.contains("Content-Type: text/html"), "{text}");
        assert!(!text.contains("multipart"), "{text}");
    }

    #[test]
    fn bad_input_is_permanent() {
        let mut m = sample();
        m.to[0].email = "not an address".into();
        assert!(
            !build_mime(&m, AddressForm::AsGiven)
                .unwrap_err()
                .is_transient()
        );
        let mut m = sample();
        m.subject = "x\r\nBcc: evil@example.com".into();
        assert!(
            !build_mime(&m, AddressForm::AsGiven)
                .unwrap_err()
                .is_transient()
        );
        let mut m = sample();
        m.message_id = "a@b>\r\nX: y".into();
        assert!(
            !build_mime(&m, AddressForm::AsGiven)
                .unwrap_err()
                .is_transient()
        );
    }
}
