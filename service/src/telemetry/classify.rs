//! Classes of delivery results for metric labels: a fixed, small set.

use crate::transport::{Delivery, TransportError};

/// The class of a peer's answer to one attempt: `2xx`, `4xx`, `5xx` (the
/// first digit of the SMTP or HTTP reply code the transport recorded),
/// `network` (no answer: refused, reset, timed out), `auth` (credentials
/// refused without a reply code, e.g. by a token endpoint) or `local` (the
/// message could not be built or sent at all).
pub fn reply_class(result: &Result<Delivery, TransportError>) -> &'static str {
    let error = match result {
        Ok(_) => return "2xx",
        Err(error) => error,
    };
    match error.code() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn class(error: TransportError) -> &'static str {
        reply_class(&Err(error))
    }

    #[test]
    fn reads_smtp_and_http_reply_codes() {
        assert_eq!(reply_class(&Ok(Delivery::default())), "2xx");
        let greylisted = TransportError::transient("mx.example:25 answered 451 4.7.1 greylisted");
        assert_eq!(class(greylisted.with_code(451)), "4xx");
        let unknown = TransportError::permanent("mx.example:25 answered 550 5.1.1 no such user");
        assert_eq!(class(unknown.with_code(550)), "5xx");
        let refused = TransportError::auth("smtp.office365.com:587 answered 535 5.7.3 rejected");
        assert_eq!(class(refused.with_code(535)), "5xx");
        let slow_down = TransportError::transient("sendgrid: HTTP 429 Too Many Requests");
        assert_eq!(class(slow_down.with_code(429)), "4xx");
        let invalid = TransportError::permanent("postmark: HTTP 422 Unprocessable Entity");
        assert_eq!(class(invalid.with_code(422)), "4xx");
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
            class(TransportError::auth("no OAuth2 access token: refused")),
            "auth"
        );
        assert_eq!(
            class(TransportError::permanent("cannot build the message: x")),
            "local"
        );
        // The code is a field: text that looks like a reply is not read as one.
        assert_eq!(
            class(TransportError::transient(
                "relay said: answered 550 earlier"
            )),
            "network"
        );
    }

    #[test]
    fn retry_classes() {
        assert_eq!(retry_class(&TransportError::transient("x")), "transient");
        assert_eq!(retry_class(&TransportError::auth("x")), "auth");
    }
}
