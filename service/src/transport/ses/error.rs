//! SES answers that are not a success, classified.
//!
//! SES v2 names its error in the `x-amzn-ErrorType` header and in the JSON
//! body (`__type` or `code`, and `message`); the signature layer in front of it
//! and emulators answer in XML (`<Code>`, `<Message>`). All three are read.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::transport::{TransportError, http};

/// Longest part of an error message kept.
const MAX_MESSAGE: usize = 300;

/// Throttling and sending limits: wait and try again.
const TRANSIENT: &[&str] = &[
    "TooManyRequestsException",
    "LimitExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    // The account's or configuration set's sending is paused by its owner
    // and resumes when they say so; nothing is wrong with the message.
    "SendingPausedException",
    "InternalFailure",
    "InternalServiceError",
    "ServiceUnavailable",
];

/// The credentials are wrong, unknown or expired: no message can pass.
const AUTH: &[&str] = &[
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
];

/// The credentials are good, but a policy does not let them send this
/// message: an IAM policy whose resource is another identity, or whose
/// conditions (`ses:FromAddress`, `ses:Recipients`, `ses:FeedbackAddress`)
/// the message's `From`, recipients or return path do not meet; another
/// account's sending authorization. About the message, and for good as long
/// as the policy stands: holding the transport for it would stop every
/// tenant's mail because of one tenant's sender.
const DENIED: &[&str] = &["AccessDenied", "AccessDeniedException"];

/// Classifies one failed answer. Unknown codes go by the HTTP status:
/// 408, 429 and 5xx transient, 4xx permanent (`MessageRejected`,
/// `MailFromDomainNotVerifiedException`, `AccountSuspendedException`, …).
pub(super) fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    retry_after: Option<Duration>,
) -> TransportError {
    let (code, text) = parse(headers, body);
    let code = code.unwrap_or_else(|| status.as_u16().to_string());
    let message = format!("SES: HTTP {status}: {code}: {text}");
    let error = if TRANSIENT.contains(&code.as_str()) || http::is_transient_status(status) {
        TransportError::transient_after(message, retry_after)
    } else if DENIED.contains(&code.as_str()) {
        TransportError::permanent(message)
    } else if AUTH.contains(&code.as_str()) {
        TransportError::auth(message)
    } else {
        TransportError::permanent(message)
    };
    error.with_code(status.as_u16())
}

/// The error code and message, from the header, the JSON or the XML body.
fn parse(headers: &HeaderMap, body: &[u8]) -> (Option<String>, String) {
    let text = String::from_utf8_lossy(body);
    let header = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_owned());
    let (json_code, json_message) = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => (
            field(&v, &["__type", "code", "Code"]).map(|c| short_type(&c)),
            field(&v, &["message", "Message"]),
        ),
        Err(_) => (None, None),
    };
    let code = header
        .or(json_code)
        .or_else(|| between(&text, "<Code>", "</Code>"));
    let message = json_message
        .or_else(|| between(&text, "<Message>", "</Message>"))
        .unwrap_or_else(|| text.trim().to_owned());
    (code, truncate(message))
}

fn field(v: &serde_json::Value, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| v.get(n).and_then(|x| x.as_str()))
        .map(str::to_owned)
}

/// `com.amazonaws.sesv2#MessageRejected` → `MessageRejected`.
fn short_type(t: &str) -> String {
    t.rsplit('#').next().unwrap_or(t).to_owned()
}

fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(text[start..start + len].trim().to_owned())
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(error_type: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = error_type {
            h.insert("x-amzn-ErrorType", t.parse().unwrap());
        }
        h
    }

    #[test]
    fn json_errors_are_classified_by_code() {
        let cases = [
            (429, "TooManyRequestsException", true),
            (400, "LimitExceededException", true),
            (400, "SendingPausedException", true),
            (400, "MessageRejected", false),
            (400, "MailFromDomainNotVerifiedException", false),
            (400, "AccountSuspendedException", false),
        ];
        for (status, code, transient) in cases {
            let body = r#"{"message":"because"}"#;
            let err = classify(
                StatusCode::from_u16(status).unwrap(),
                &headers(Some(&format!("{code}:http://internal.amazon.com/"))),
                body.as_bytes(),
                None,
            );
            assert_eq!(err.is_transient(), transient, "{code}: {err}");
            assert!(err.detail().contains(code), "{err}");
            assert!(err.detail().contains("because"), "{err}");
        }
    }

    #[test]
    fn access_denied_fails_the_message_and_holds_no_transport() {
        use crate::queue::worker::outage::Verdict;
        // SES v2's JSON form (an IAM condition on the From refused it) and
        // the XML form of the signature layer (and moto).
        let json = br#"{"message":"User: arn:aws:iam::123456789012:user/mailbridge is not authorized to perform: ses:SendEmail on resource: arn:aws:ses:eu-west-1:123456789012:identity/other.example"}"#;
        let xml = b"<ErrorResponse><Error><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/mailbridge is not authorized to perform: ses:SendEmail</Message></Error></ErrorResponse>";
        for (status, header, body) in [
            (403, Some("AccessDeniedException"), &json[..]),
            (400, Some("AccessDeniedException"), &json[..]),
            (403, None, &xml[..]),
        ] {
            let err = classify(
                StatusCode::from_u16(status).unwrap(),
                &headers(header),
                body,
                None,
            );
            assert!(
                matches!(
                    err,
                    TransportError::Permanent {
                        credentials: false,
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.is_about_the_message(), "{err}");
            assert_eq!(Verdict::of(&Err(err.clone())), Verdict::Up, "{err}");
            assert!(err.detail().contains("not authorized"), "{err}");
        }
        // Credentials that are wrong or expired still refuse every message.
        for code in [
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "SignatureDoesNotMatch",
            "ExpiredToken",
            "ExpiredTokenException",
            "InvalidSignatureException",
            "MissingAuthenticationToken",
        ] {
            let err = classify(
                StatusCode::FORBIDDEN,
                &headers(Some(code)),
                br#"{"message":"no"}"#,
                None,
            );
            assert!(matches!(err, TransportError::Auth { .. }), "{code}: {err}");
            assert_eq!(Verdict::of(&Err(err)), Verdict::Down, "{code}");
        }
    }

    #[test]
    fn xml_and_type_field_forms_are_read() {
        let xml = b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>bad sig</Message></Error></ErrorResponse>";
        let err = classify(StatusCode::FORBIDDEN, &headers(None), xml, None);
        assert!(matches!(err, TransportError::Auth { .. }), "{err}");
        assert!(err.detail().contains("bad sig"));
        let json =
            br#"{"__type":"com.amazonaws.sesv2#TooManyRequestsException","Message":"slow down"}"#;
        let err = classify(StatusCode::BAD_REQUEST, &headers(None), json, None);
        assert!(matches!(err, TransportError::Transient { .. }), "{err}");
        let err = classify(StatusCode::BAD_GATEWAY, &headers(None), b"<html>", None);
        assert!(err.is_transient());
    }
}
