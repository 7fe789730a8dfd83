//! One mail transaction on an open connection: MAIL FROM, RCPT TO for each
//! recipient, DATA and the message, as lettre's `send` does, but step by step
//! so that each step is in the conversation log — and in the form of the
//! message this server can take.

use std::fmt;

use lettre::address::Envelope;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ServerInfo;
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

use super::connect::{Connection, Failure};
use super::conversation::{Conversation, mask};
use super::dkim::DkimSigner;
use super::stale_or_smtp;
use crate::email::OutgoingMessage;
use crate::transport::mime::{AddressForm, build_mime};
use crate::transport::{TransportError, handover};

/// A message ready for the wire, in the forms a server may need.
pub(super) struct Forms {
    /// The addresses as given.
    given: Form,
    /// IDN domains in ASCII (punycode), when `given` has a non-ASCII address
    /// (in the envelope or a header): for servers without SMTPUTF8.
    ascii: Option<Form>,
    /// Whether the ASCII form is all ASCII (every local part is).
    ascii_local_parts: bool,
}

/// Every address of `message`: the envelope's and the headers' (`From`,
/// `Reply-To`, `To`, `Cc`), whose UTF-8 needs SMTPUTF8 as much (RFC 6532).
fn addresses(message: &OutgoingMessage) -> impl Iterator<Item = &str> {
    std::iter::once(message.from.email.as_str())
        .chain(message.envelope_from.as_deref())
        .chain(message.reply_to.iter().map(|m| m.email.as_str()))
        .chain(message.recipients().map(|m| m.email.as_str()))
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
}

impl Forms {
    /// Builds `message` for the wire.
    pub(super) fn of(
        message: &OutgoingMessage,
        dkim: Option<&DkimSigner>,
    ) -> Result<Self, TransportError> {
        let given = Form::build(message, AddressForm::AsGiven, dkim)?;
        let ascii = if addresses(message).all(|a| a.is_ascii()) {
            None
        } else {
            Some(Form::build(message, AddressForm::Ascii, dkim)?)
        };
        let ascii_local_parts = addresses(message)
            .all(|a| a.rsplit_once('@').is_none_or(|(local, _)| local.is_ascii()));
        Ok(Self {
            given,
            ascii,
            ascii_local_parts,
        })
    }

    /// The form the server of `info` can take and whether it goes with
    /// SMTPUTF8, or why it cannot go there at all.
    fn for_server(&self, info: &ServerInfo) -> Result<(&Form, bool), Failure> {
        let Some(ascii) = &self.ascii else {
            return Ok((&self.given, false));
        };
        if info.supports_feature(Extension::SmtpUtfEight) {
            return Ok((&self.given, true));
        }
        match self.ascii_local_parts {
            true => Ok((ascii, false)),
            false => Err(Failure::Refused(format!(
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
    let info = connection.smtp.server_info();
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
    let commands = Commands {
        shown: shown(envelope, &parameters, &connection.log),
        mail: Mail::new(envelope.from().cloned(), parameters),
        rcpts: envelope
            .to()
            .iter()
            .map(|r| Rcpt::new(r.clone(), Vec::new()))
            .collect(),
    };
    if connection.pipelining {
        pipelined(connection, &commands).await?;
    } else {
        one_by_one(connection, &commands).await?;
    }
    let Connection { smtp, log, .. } = connection;
    log.sent(format_args!(
        "<message, {} bytes, not logged>",
        form.bytes.len()
    ));
    // From the final dot on the server may have the message: a stop waits
    // for its answer (see `handover`).
    let handed = handover::begin().await;
    // The message is CRLF-clean text (see `build_mime`); bytes that are not
    // UTF-8 would go lettre's way, which stuffs them one by one.
    let reply = match std::str::from_utf8(&form.bytes) {
        Ok(text) => smtp.command(Content(text)).await,
        Err(_) => smtp.message(&form.bytes).await,
    };
    log.answer(&reply);
    if reply.as_ref().is_err_and(|e| e.status().is_some()) {
        handed.refused();
    }
    reply.map_err(Failure::Smtp)
}

/// MAIL FROM, one RCPT TO per recipient, and DATA.
struct Commands {
    /// Their lines in the conversation log, in the same order.
    shown: Vec<String>,
    mail: Mail,
    rcpts: Vec<Rcpt>,
}

/// The commands as one write (RFC 2920: DATA last in the group).
impl fmt::Display for Commands {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.mail.fmt(f)?;
        for rcpt in &self.rcpts {
            rcpt.fmt(f)?;
        }
        Data.fmt(f)
    }
}

/// How the conversation log shows the commands, addresses masked: one
/// line for MAIL, one per RCPT, one for DATA (none when the log is off).
fn shown(envelope: &Envelope, parameters: &[MailParameter], log: &Conversation) -> Vec<String> {
    if !log.enabled() {
        return Vec::new();
    }
    let sender = envelope
        .from()
        .map(|a| mask(address(a)))
        .unwrap_or_default();
    let parameters: String = parameters.iter().map(|p| format!(" {p}")).collect();
    let mut lines = vec![format!("MAIL FROM:<{sender}>{parameters}")];
    for recipient in envelope.to() {
        lines.push(format!("RCPT TO:<{}>", mask(address(recipient))));
    }
    lines.push("DATA".to_owned());
    lines
}

/// Each command waits for its reply before the next goes.
async fn one_by_one(connection: &mut Connection, commands: &Commands) -> Result<(), Failure> {
    let Connection { smtp, log, .. } = connection;
    let mut shown = commands.shown.iter();
    let mut sent = |log: &Conversation| shown.next().map(|line| log.sent(line));
    sent(log);
    let reply = smtp.command(&commands.mail).await;
    log.answer(&reply);
    reply.map_err(stale_or_smtp)?;
    for rcpt in &commands.rcpts {
        sent(log);
        let reply = smtp.command(rcpt).await;
        log.answer(&reply);
        reply.map_err(Failure::Smtp)?;
    }
    sent(log);
    let reply = smtp.command(Data).await;
    log.answer(&reply);
    reply.map_err(Failure::Smtp).map(drop)
}

/// The server offers PIPELINING: the commands go in one write and their
/// replies are read afterwards, every one of them, so the failure reported
/// is the first in the order of the commands. One round trip instead of
/// two plus one per recipient.
async fn pipelined(connection: &mut Connection, commands: &Commands) -> Result<(), Failure> {
    let Connection {
        smtp, log, in_data, ..
    } = connection;
    for line in &commands.shown {
        log.sent(line);
    }
    let mail = smtp.command(commands).await;
    log.answer(&mail);
    let mut replies = Vec::with_capacity(commands.rcpts.len() + 1);
    if !closing(&mail) {
        for _ in 0..=commands.rcpts.len() {
            let reply = smtp.read_response().await;
            log.answer(&reply);
            let stop = closing(&reply);
            replies.push(reply);
            if stop {
                break;
            }
        }
    }
    let data_open =
        replies.len() == commands.rcpts.len() + 1 && replies.last().is_some_and(Result::is_ok);
    let outcome = mail.map_err(stale_or_smtp).and_then(|_| {
        replies
            .into_iter()
            .try_for_each(|r| r.map(drop))
            .map_err(Failure::Smtp)
    });
    if outcome.is_err() && data_open {
        // A recipient was refused but others were taken, so the server
        // waits for the message: leaving now, without the final dot, is
        // the only way to send nothing.
        log.note("a command failed after DATA was accepted: closing without sending the message");
        *in_data = true;
    }
    outcome
}

/// Whether nothing more will come on this connection.
fn closing(reply: &Result<Response, lettre::transport::smtp::Error>) -> bool {
    reply.as_ref().is_err_and(super::server_gone)
}

/// The message after DATA: dot-stuffed (RFC 5321 4.5.2: a line that starts
/// with `.` gets another) and ended with `CRLF.CRLF`, the same bytes as
/// lettre's `message`, written as one string.
struct Content<'a>(&'a str);

impl fmt::Display for Content<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        if text.starts_with('.') {
            f.write_str(".")?;
        }
        let mut from = 0;
        for at in memchr::memmem::find_iter(text.as_bytes(), b"\r\n.") {
            f.write_str(&text[from..at + 3])?;
            f.write_str(".")?;
            from = at + 3;
        }
        f.write_str(&text[from..])?;
        f.write_str("\r\n.\r\n")
    }
}

fn address(a: &lettre::Address) -> &str {
    a.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5321 4.5.2 the slow way: a byte at a time, as a line is read.
    fn stuffed_by_hand(text: &str) -> String {
        let mut out = String::new();
        let mut line_start = true;
        let mut after_cr = false;
        for c in text.chars() {
            if c == '.' && line_start {
                out.push('.');
            }
            out.push(c);
            line_start = after_cr && c == '\n';
            after_cr = c == '\r';
        }
        out + "\r\n.\r\n"
    }

    #[test]
    fn content_is_dot_stuffed_at_every_line_start() {
        let pieces = ["a", ".", "..", "\r", "\n", "\r\n", "ü", " "];
        // Every string of up to five pieces.
        let mut texts = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|t| pieces.iter().map(move |p| format!("{t}{p}")))
                .collect();
            texts.extend(longer);
            texts.sort();
            texts.dedup();
        }
        assert!(texts.len() > 30_000);
        for text in &texts {
            assert_eq!(Content(text).to_string(), stuffed_by_hand(text), "{text:?}");
        }
    }

    #[test]
    fn content_ends_with_the_final_dot_even_when_empty_or_unterminated() {
        assert_eq!(Content("").to_string(), "\r\n.\r\n");
        assert_eq!(Content(".").to_string(), "..\r\n.\r\n");
        assert_eq!(
            Content("a\r\n.\r\n").to_string(),
            "a\r\n..\r\n\r\n.\r\n",
            "a lone dot in the message does not end it"
        );
    }

    #[test]
    fn commands_go_as_one_group_with_data_last() {
        let from: lettre::Address = "n@acme.example".parse().unwrap();
        let to: Vec<lettre::Address> = ["a@example.com", "b@example.com"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let commands = Commands {
            shown: Vec::new(),
            mail: Mail::new(Some(from), Vec::new()),
            rcpts: to.into_iter().map(|a| Rcpt::new(a, Vec::new())).collect(),
        };
        assert_eq!(
            commands.to_string(),
            "MAIL FROM:<n@acme.example>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
        );
    }
}
