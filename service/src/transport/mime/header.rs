//! Headers lettre would leave longer than a line may be (998 octets): it
//! folds only at spaces, so one long word in a subject or a display name
//! stays on one line. Such a header is written again with that text as
//! RFC 2047 encoded words, which fold.

use std::fmt::Write as _;

use email_encoding::headers::writer::EmailWriter;
use email_encoding::headers::{quoted_string, rfc2047};
use lettre::message::Mailbox;
use lettre::message::header::{HeaderName, HeaderValue};

/// Longest word written as it is. With a header name, quotes and an address
/// (at most 320 octets) beside it, a line stays well under 998 octets.
const LONG_WORD: usize = 500;

/// Rewrites the subject and the mailbox headers whose text has a long word.
pub(super) fn encode_long_headers(
    message: &mut lettre::Message,
    subject: &str,
    mailboxes: &[(&'static str, &[Mailbox])],
) {
    if has_long_word(subject) {
        let value = encoded("Subject", subject.to_owned(), |w| {
            rfc2047::encode(subject, w)
        });
        message.headers_mut().insert_raw(value);
    }
    for (name, list) in mailboxes {
        let long = list
            .iter()
            .any(|m| m.name.as_deref().is_some_and(has_long_word));
        if long {
            let raw = list.iter().map(ToString::to_string).collect::<Vec<_>>();
            let value = encoded(name, raw.join(", "), |w| write_mailboxes(list, w));
            message.headers_mut().insert_raw(value);
        }
    }
}

/// Whether `text` has a run without spaces longer than [`LONG_WORD`].
fn has_long_word(text: &str) -> bool {
    text.split(' ').any(|word| word.len() > LONG_WORD)
}

/// A header `name` whose value `write` encodes, starting after `name: `.
fn encoded(
    name: &'static str,
    raw: String,
    write: impl FnOnce(&mut EmailWriter<'_>) -> std::fmt::Result,
) -> HeaderValue {
    let mut value = String::new();
    {
        let mut w = EmailWriter::new(&mut value, name.len() + 2, 0, false);
        // Writing into a String cannot fail.
        let _ = write(&mut w);
    }
    HeaderValue::dangerous_new_pre_encoded(HeaderName::new_from_ascii_str(name), raw, value)
}

/// Mailboxes as lettre writes them, except that a name with a long word is
/// written as encoded words.
fn write_mailboxes(list: &[Mailbox], w: &mut EmailWriter<'_>) -> std::fmt::Result {
    for (i, mailbox) in list.iter().enumerate() {
        if i > 0 {
            w.write_char(',')?;
            w.space();
        }
        if let Some(name) = &mailbox.name {
            if has_long_word(name) {
                rfc2047::encode(name, w)?;
            } else {
                quoted_string::encode(name, w)?;
            }
            w.space();
            w.write_char('<')?;
        }
        w.write_str(mailbox.email.as_ref())?;
        if mailbox.name.is_some() {
            w.write_char('>')?;
        }
    }
    Ok(())
}
