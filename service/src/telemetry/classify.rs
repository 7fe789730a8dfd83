//! Classes of delivery results for metric labels: a fixed, small set.

use crate::transport::{Delivery, TransportError};

/// The class of a peer's answer to one attempt: `2xx`, `4xx`, `5xx` (the
/// SMTP or HTTP reply's first digit), `network` (no answer: refused, reset,
/// timed out), `auth` (credentials refused without a reply code, e.g. by a
/// token endpoint) or `local` (the message could not be built or sent at all).
pub fn reply_class(result: &Result<Delivery, TransportError>) -> &'static str {
    let error = match result {
        Ok(_) => return "2xx",
        Err(error) => error,
    };
    match reply_code(error.detail()) {
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
        None => match error {
            TransportError::Transient { .. } => "network",
            TransportError::Auth { .. } => "auth",
            TransportError::Permanent { .. } => "local",
        },
    }
}

/// The class of a transient or auth failure for `mailbridge_messages_retried_total`.
pub fn retry_class(error: &TransportError) -> &'static str {
    match error {
        TransportError::Auth { .. } => "auth",
        _ => "transient",
    }
}

/// The reply code transports put in their messages: SMTP's
/// `HOST answered 550 …` and the API transports' `PROVIDER: HTTP 429 …`.
fn reply_code(detail: &str) -> Option<u16> {
    ["answered ", "HTTP "].iter().find_map(|marker| {
        let (_, rest) = detail.split_once(marker)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (digits.len() == 3).then(|| digits.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(error: TransportError) -> &'static str {
        reply_class(&Err(error))
    }

    #[test]
    fn reads_smtp_and_http_reply_codes() {
        assert_eq!(reply_class(&Ok(Delivery::default())), "2xx");
        assert_eq!(
            class(TransportError::transient(
                "mx.example:25 answered 451 4.7.1 greylisted"
            )),
            "4xx"
        );
        assert_eq!(
            class(TransportError::permanent(
                "mx.example:25 answered 550 5.1.1 no such user"
            )),
            "5xx"
        );
        assert_eq!(
            class(TransportError::Auth {
                message: "smtp.office365.com:587 answered 535 5.7.3 rejected".into()
            }),
            "5xx"
        );
        assert_eq!(
            class(TransportError::transient(
                "sendgrid: HTTP 429 Too Many Requests: slow down"
            )),
            "4xx"
        );
        assert_eq!(
            class(TransportError::permanent(
                "postmark: HTTP 422 Unprocessable Entity"
            )),
            "4xx"
        );
    }

    #[test]
    fn without_a_reply_code() {
        assert_eq!(
            class(TransportError::transient(
                "connection to mx.example:25 failed: refused"
            )),
            "network"
        );
        assert_eq!(
            class(TransportError::Auth {
                message: "no OAuth2 access token: refused".into()
            }),
            "auth"
        );
        assert_eq!(
            class(TransportError::permanent("cannot build the message: x")),
            "local"
        );
        // A number that is not a reply code is not mistaken for one.
        assert_eq!(
            class(TransportError::transient("cannot connect: HTTP 1.1 is off")),
            "network"
        );
    }

    #[test]
    fn retry_classes() {
        assert_eq!(retry_class(&TransportError::transient("x")), "transient");
        assert_eq!(
            retry_class(&TransportError::Auth {
                message: "x".into()
            }),
            "auth"
        );
    }
}
