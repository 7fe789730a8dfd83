//! SMTP failures sorted into transient, auth and permanent, with the
//! server's own reply kept as the message.

use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::response::Response;

use crate::oauth::OAuthError;
use crate::transport::TransportError;

/// Replies that refuse the credentials: 530 authentication required,
/// 534 mechanism too weak, 535 credentials invalid, 538 encryption required,
/// 454 temporary authentication failure (Microsoft 365 `4.7.0`).
const AUTH_CODES: &[u16] = &[454, 530, 534, 535, 538];
/// What lettre says when a server answers XOAUTH2 with a `334` challenge —
/// Gmail's way of refusing a token before its `535`.
const XOAUTH2_CHALLENGE: &str = "does not expect a challenge";

/// The class of `error` from the SMTP conversation with `server`.
pub(super) fn classify(server: &str, error: &SmtpError) -> TransportError {
    let Some(code) = reply_code(error) else {
        return without_reply(server, error);
    };
    let text = reply_text(error);
    let message = format!("{server} answered {code} {text}");
    let class = if AUTH_CODES.contains(&code) {
        TransportError::auth(message)
    } else if error.is_permanent() {
        TransportError::permanent(message)
    } else if is_the_servers_own(code, &text) {
        TransportError::transient(message).of_the_server()
    } else {
        // 4xx, and anything odd: a later attempt may pass.
        TransportError::transient(message)
    };
    class.with_code(code)
}

/// Whether a 4xx reply says the server itself is in trouble, whatever the
/// message: its enhanced code says the mail system (`4.3.x`: full, not
/// accepting) or congestion (`4.4.5`); without one, `451` (local error in
/// processing), `452` (insufficient storage), `455`. A `451 4.7.1`
/// (greylisting, policy) or `452 4.5.3` (too many recipients) is about the
/// message.
fn is_the_servers_own(code: u16, text: &str) -> bool {
    let enhanced = text
        .split_whitespace()
        .next()
        .filter(|w| is_enhanced_code(w));
    match enhanced {
        Some(status) => status.starts_with("4.3.") || status == "4.4.5",
        None => matches!(code, 451 | 452 | 455),
    }
}

/// Whether the server refused an XOAUTH2 access token (so a fresh one may pass).
pub(super) fn is_token_refusal(error: &SmtpError) -> bool {
    matches!(reply_code(error), Some(535 | 454))
        || (error.is_client() && error.to_string().contains(XOAUTH2_CHALLENGE))
}

/// A failure of the token endpoint, as a delivery failure.
pub(super) fn token_error(error: &OAuthError) -> TransportError {
    let message = format!("no OAuth2 access token: {error}");
    if error.is_transient() {
        TransportError::transient(message)
    } else {
        // The configured client or key is refused. Classed as an auth failure
        // (retried later), not permanent: once an operator fixes the secret,
        // the waiting mail goes out instead of having been dead-lettered.
        TransportError::auth(message)
    }
}

/// The queue id a server states on accepting a message (`250 2.0.0 Ok:
/// queued as 4Xyz`), else the rest of its reply (`OK <id@host>`, Gmail's
/// `OK 1700000000 a1b2 - gsmtp`), if it says anything but OK.
pub(super) fn accepted_id(response: &Response) -> Option<String> {
    let text = response.message().collect::<Vec<_>>().join(" ");
    if let Some((_, id)) = text.split_once("queued as ") {
        return id.split_whitespace().next().map(str::to_owned);
    }
    let rest = text
        .split_whitespace()
        .skip_while(|w| is_enhanced_code(w) || w.eq_ignore_ascii_case("ok") || *w == ":")
        .collect::<Vec<_>>()
        .join(" ");
    (!rest.is_empty()).then(|| rest.chars().take(200).collect())
}

fn is_enhanced_code(word: &str) -> bool {
    word.split('.').count() == 3 && word.split('.').all(|p| p.parse::<u16>().is_ok())
}

/// The reply's code as lettre read it off the wire.
pub(super) fn reply_code(error: &SmtpError) -> Option<u16> {
    error.status().map(u16::from)
}

/// The reply lines lettre keeps as the error's source.
fn reply_text(error: &SmtpError) -> String {
    std::error::Error::source(error)
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Network, TLS, timeout and protocol failures: none of them says anything
/// about this message, so all may pass later.
fn without_reply(server: &str, error: &SmtpError) -> TransportError {
    let text = chain(error);
    if error.is_client() && text.contains(XOAUTH2_CHALLENGE) {
        return TransportError::auth(format!(
            "{server} refused the OAuth2 access token (XOAUTH2 challenge)"
        ));
    }
    if error.is_client() && text.contains("No compatible authentication mechanism") {
        return TransportError::auth(format!(
            "{server} offers none of the configured AUTH mechanisms"
        ));
    }
    let what = if error.is_timeout() {
        "timed out"
    } else {
        "failed"
    };
    TransportError::transient(format!("connection to {server} {what}: {text}"))
}

/// The error and its causes, e.g. `Connection error: Connection refused (os error 111)`.
fn chain(error: &SmtpError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error).and_then(std::error::Error::source);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use lettre::transport::smtp::response::{Category, Code, Detail, Severity};

    use super::*;

    fn ok(lines: &[&str]) -> Response {
        let code = Code::new(
            Severity::PositiveCompletion,
            Category::MailSystem,
            Detail::Zero,
        );
        Response::new(code, lines.iter().map(|l| l.to_string()).collect())
    }

    #[test]
    fn a_full_or_failing_server_is_told_from_an_answer_about_the_message() {
        for (code, text) in [
            (452, "4.3.1 Insufficient system storage"),
            (451, "4.3.0 Local error in processing"),
            (451, "Requested action aborted: local error in processing"),
            (452, "Insufficient system storage"),
            (451, "4.4.5 System congestion"),
        ] {
            assert!(is_the_servers_own(code, text), "{code} {text}");
        }
        for (code, text) in [
            (451, "4.7.1 Greylisted, please try again later"),
            (450, "4.2.0 Recipient address rejected: Greylisted"),
            (452, "4.5.3 Too many recipients"),
            (450, "Mailbox unavailable"),
            (451, "4.1.8 Sender address rejected: Domain not found"),
        ] {
            assert!(!is_the_servers_own(code, text), "{code} {text}");
        }
        let full = TransportError::transient("452 4.3.1 full")
            .of_the_server()
            .with_code(452);
        assert!(!full.is_about_the_message());
        let greylisted = TransportError::transient("451 4.7.1").with_code(451);
        assert!(greylisted.is_about_the_message());
    }

    #[test]
    fn reads_queue_ids() {
        assert_eq!(
            accepted_id(&ok(&["2.0.0 Ok: queued as 4Xyz12"])).as_deref(),
            Some("4Xyz12")
        );
        assert_eq!(
            accepted_id(&ok(&["2.0.0 OK <a1@b.prod.outlook.com> [Hostname=X]"])).as_deref(),
            Some("<a1@b.prod.outlook.com> [Hostname=X]")
        );
        assert_eq!(accepted_id(&ok(&["OK"])), None);
    }
}
