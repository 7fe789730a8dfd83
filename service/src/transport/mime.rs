//! An [`OutgoingMessage`] as an RFC 5322 message with its SMTP envelope, for
//! every transport that sends whole messages (SMTP, files, SES raw).

use lettre::Address;
use lettre::address::Envelope;
use lettre::message::{Mailbox as LettreMailbox, MultiPart, SinglePart};

use super::TransportError;
use crate::email::{Mailbox, OutgoingMessage, check_header_text};

/// Builds the message: From, Reply-To, To, Cc (Bcc only in the envelope),
/// Subject, our Message-ID, and a text/html alternative or a single part.
/// The envelope sender is `envelope_from` when set, else the From address.
pub fn build_mime(msg: &OutgoingMessage) -> Result<lettre::Message, TransportError> {
    let mut builder = lettre::Message::builder()
        .from(mailbox("from", &msg.from)?)
        .subject(header_text("subject", &msg.subject)?)
        .message_id(Some(format!("<{}>", message_id(&msg.message_id)?)))
        .envelope(envelope(msg)?);
    if let Some(reply_to) = &msg.reply_to {
        builder = builder.reply_to(mailbox("reply_to", reply_to)?);
    }
    for to in &msg.to {
        builder = builder.to(mailbox("to", to)?);
    }
    for cc in &msg.cc {
        builder = builder.cc(mailbox("cc", cc)?);
    }
    let built = match (&msg.text, &msg.html) {
        (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        )),
        (None, Some(html)) => builder.singlepart(SinglePart::html(html.clone())),
        (text, None) => builder.singlepart(SinglePart::plain(text.clone().unwrap_or_default())),
    };
    built.map_err(|e| TransportError::permanent(format!("cannot build the message: {e}")))
}

/// The message as it would travel over SMTP (CRLF line ends, encoded bodies).
pub fn to_eml(msg: &OutgoingMessage) -> Result<Vec<u8>, TransportError> {
    Ok(build_mime(msg)?.formatted())
}

/// MAIL FROM and RCPT TO: every to, cc and bcc address.
fn envelope(msg: &OutgoingMessage) -> Result<Envelope, TransportError> {
    let sender = match &msg.envelope_from {
        Some(addr) => address("envelope_from", addr)?,
        None => address("from", &msg.from.email)?,
    };
    let recipients = msg
        .recipients()
        .map(|m| address("recipient", &m.email))
        .collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(sender), recipients)
        .map_err(|e| TransportError::permanent(format!("invalid envelope: {e}")))
}

fn mailbox(field: &str, m: &Mailbox) -> Result<LettreMailbox, TransportError> {
    let name = m
        .name
        .as_deref()
        .map(|n| header_text(field, n))
        .transpose()?;
    Ok(LettreMailbox::new(name, address(field, &m.email)?))
}

fn address(field: &str, text: &str) -> Result<Address, TransportError> {
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

/// The Message-ID is written as given (not encoded), so it must be a plain
/// `left@right` token.
fn message_id(id: &str) -> Result<&str, TransportError> {
    let plain = id.contains('@')
        && id
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '\\' | ','));
    if plain {
        Ok(id)
    } else {
        Err(TransportError::permanent(format!(
            "message_id `{}` is not of the form left@right",
            id.escape_debug()
        )))
    }
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
        let msg = build_mime(&sample()).unwrap();
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
    fn html_only_is_a_single_part() {
        let mut m = sample();
        m.text = None;
        let text = String::from_utf8(to_eml(&m).unwrap()).unwrap();
        assert!(text.contains("Content-Type: text/html"), "{text}");
        assert!(!text.contains("multipart"), "{text}");
    }

    #[test]
    fn bad_input_is_permanent() {
        let mut m = sample();
        m.to[0].email = "not an address".into();
        assert!(!build_mime(&m).unwrap_err().is_transient());
        let mut m = sample();
        m.subject = "x\r\nBcc: evil@example.com".into();
        assert!(!build_mime(&m).unwrap_err().is_transient());
        let mut m = sample();
        m.message_id = "a@b>\r\nX: y".into();
        assert!(!build_mime(&m).unwrap_err().is_transient());
    }
}
