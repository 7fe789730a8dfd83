//! One mail transaction on an open connection: MAIL FROM, RCPT TO for each
//! recipient, DATA and the message, as lettre's `send` does, but step by step
//! so that each step is in the conversation log — and in the form of the
//! message this server can take.

use lettre::address::Envelope;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ServerInfo;
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

use super::connect::{Connection, Failure};
use super::conversation::mask;
use super::dkim::DkimSigner;
use super::stale_or_smtp;
use crate::email::OutgoingMessage;
use crate::transport::TransportError;
use crate::transport::mime::{AddressForm, build_mime};

/// A message ready for the wire, in the forms a server may need.
pub(super) struct Forms {
    /// The addresses as given.
    given: Form,
    /// IDN domains in ASCII (punycode), when `given` has a non-ASCII address:
    /// for servers without SMTPUTF8.
    ascii: Option<Form>,
}

/// One form: envelope and bytes.
struct Form {
    envelope: Envelope,
    bytes: Vec<u8>,
}

impl Form {
    fn build(
        message: &OutgoingMessage,
        form: AddressForm,
        dkim: Option<&DkimSigner>,
    ) -> Result<Self, TransportError> {
        let email = build_mime(message, form)?;
        let mut bytes = email.formatted();
        if let Some(signer) = dkim {
            // Signed last, over the exact bytes that go on the wire.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            bytes = signer
                .sign(&bytes, now)
                .map_err(|e| TransportError::permanent(format!("DKIM signing: {e}")))?;
        }
        Ok(Self {
            envelope: email.envelope().clone(),
            bytes,
        })
    }

    /// Whether MAIL FROM and every RCPT TO are ASCII (no SMTPUTF8 needed).
    fn ascii_envelope(&self) -> bool {
        let mut addresses = self.envelope.from().into_iter().chain(self.envelope.to());
        addresses.all(|a| address(a).is_ascii())
    }
}

impl Forms {
    /// Builds `message` for the wire.
    pub(super) fn of(
        message: &OutgoingMessage,
        dkim: Option<&DkimSigner>,
    ) -> Result<Self, TransportError> {
        let given = Form::build(message, AddressForm::AsGiven, dkim)?;
        let ascii = if given.ascii_envelope() {
            None
        } else {
            Some(Form::build(message, AddressForm::Ascii, dkim)?)
        };
        Ok(Self { given, ascii })
    }

    /// The form the server of `info` can take and whether it goes with
    /// SMTPUTF8, or why it cannot go there at all.
    fn for_server(&self, info: &ServerInfo) -> Result<(&Form, bool), Failure> {
        if self.given.ascii_envelope() {
            return Ok((&self.given, false));
        }
        if info.supports_feature(Extension::SmtpUtfEight) {
            return Ok((&self.given, true));
        }
        match &self.ascii {
            Some(ascii) if ascii.ascii_envelope() => Ok((ascii, false)),
            _ => Err(Failure::Refused(format!(
                "{} does not support SMTPUTF8, needed for an address whose local part is not ASCII",
                info.name()
            ))),
        }
    }
}

/// Sends `forms` on `connection` in the form its server can take.
pub(super) async fn transaction(
    connection: &mut Connection,
    forms: &Forms,
) -> Result<Response, Failure> {
    let Connection { smtp, log, .. } = connection;
    let info = smtp.server_info();
    let (form, smtputf8) = forms.for_server(info)?;
    let mut parameters = Vec::new();
    if smtputf8 {
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !form.bytes.is_ascii() {
        if !info.supports_feature(Extension::EightBitMime) {
            return Err(Failure::Refused(format!(
                "{} does not support 8BITMIME, needed for this message",
                info.name()
            )));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let envelope = &form.envelope;
    if log.enabled() {
        let sender = envelope
            .from()
            .map(|a| mask(address(a)))
            .unwrap_or_default();
        let shown: String = parameters.iter().map(|p| format!(" {p}")).collect();
        log.sent(format!("MAIL FROM:<{sender}>{shown}"));
    }
    let reply = smtp
        .command(Mail::new(envelope.from().cloned(), parameters))
        .await;
    log.answer(&reply);
    reply.map_err(stale_or_smtp)?;
    for recipient in envelope.to() {
        if log.enabled() {
            log.sent(format!("RCPT TO:<{}>", mask(address(recipient))));
        }
        let reply = smtp.command(Rcpt::new(recipient.clone(), Vec::new())).await;
        log.answer(&reply);
        reply.map_err(Failure::Smtp)?;
    }
    log.sent("DATA");
    let reply = smtp.command(Data).await;
    log.answer(&reply);
    reply.map_err(Failure::Smtp)?;
    log.sent(format_args!(
        "<message, {} bytes, not logged>",
        form.bytes.len()
    ));
    let reply = smtp.message(&form.bytes).await;
    log.answer(&reply);
    reply.map_err(Failure::Smtp)
}

fn address(a: &lettre::Address) -> &str {
    a.as_ref()
}
