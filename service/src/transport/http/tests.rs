use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};

use super::answer::MAX_ERROR_TEXT;
use super::*;
use crate::transport::TransportError;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn retry_after_seconds_and_date() {
    let now = at(1_700_000_000);
    let h = headers(&[("retry-after", "120")]);
    assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(120)));
    let date = httpdate::fmt_http_date(at(1_700_000_090));
    let h = headers(&[("retry-after", &date)]);
    assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(90)));
    let past = httpdate::fmt_http_date(at(1_600_000_000));
    let h = headers(&[("retry-after", &past)]);
    assert_eq!(parse_retry_after(&h, now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after(&headers(&[("retry-after", "soon")]), now),
        None
    );
    assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
}

#[test]
fn ratelimit_reset_epoch_or_delay() {
    let now = at(1_700_000_000);
    let h = headers(&[("x-ratelimit-reset", "1700000045")]);
    assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(45)));
    let h = headers(&[("x-ratelimit-reset", "30")]);
    assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(30)));
    let h = headers(&[("ratelimit-reset", "7")]);
    assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(7)));
    // Retry-After wins over the rate-limit headers.
    let h = headers(&[("retry-after", "5"), ("x-ratelimit-reset", "1700000045")]);
    assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(5)));
    let h = headers(&[("retry-after", "99999999")]);
    assert_eq!(
        parse_retry_after(&h, now),
        Some(Duration::from_secs(86_400))
    );
}

#[test]
fn statuses_are_classified() {
    let now = at(1_700_000_000);
    let h = headers(&[("retry-after", "3")]);
    for code in [408, 429, 500, 502, 503, 504] {
        let err = error_for("p", StatusCode::from_u16(code).unwrap(), &h, b"", now);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)), "{code}");
        assert_eq!(err.code(), Some(code));
    }
    for code in [300, 400, 401, 403, 404, 409, 413, 422, 501] {
        let err = error_for("p", StatusCode::from_u16(code).unwrap(), &h, b"", now);
        assert!(matches!(err, TransportError::Permanent { .. }), "{code}");
        assert_eq!(err.code(), Some(code));
    }
}

#[test]
fn error_text_prefers_messages() {
    let sendgrid = br#"{"errors":[{"message":"The from address does not match a verified Sender Identity.","field":"from.email","help":null}]}"#;
    assert_eq!(
        error_text(sendgrid),
        "The from address does not match a verified Sender Identity."
    );
    let postmark = br#"{"ErrorCode":300,"Message":"Invalid 'From' address."}"#;
    assert_eq!(error_text(postmark), "Invalid 'From' address.");
    assert_eq!(error_text(b"Forbidden\n"), "Forbidden");
    assert_eq!(error_text(br#"{"ok":false}"#), r#"{"ok":false}"#);
    let long = "é".repeat(400);
    let cut = error_text(long.as_bytes());
    assert!(cut.len() <= MAX_ERROR_TEXT + "…".len() && cut.ends_with('…'));
}

#[test]
fn secrets_are_scrubbed() {
    let err = TransportError::permanent("p: HTTP 401: key SG.abc is invalid");
    let err = without_secret(err, "SG.abc");
    assert_eq!(err.detail(), "p: HTTP 401: key <redacted> is invalid");
}

#[test]
fn mailboxes_are_quoted_when_needed() {
    let mb = |name: Option<&str>| Mailbox {
        email: "ada@example.com".into(),
        name: name.map(str::to_owned),
    };
    assert_eq!(format_mailbox(&mb(None)), "ada@example.com");
    assert_eq!(
        format_mailbox(&mb(Some("Ada Lovelace"))),
        "Ada Lovelace <ada@example.com>"
    );
    assert_eq!(
        format_mailbox(&mb(Some("Jörg Müller"))),
        "Jörg Müller <ada@example.com>"
    );
    assert_eq!(
        format_mailbox(&mb(Some("Lovelace, Ada"))),
        "\"Lovelace, Ada\" <ada@example.com>"
    );
    assert_eq!(
        format_mailbox(&mb(Some(r#"Ada "The Countess" L."#))),
        r#""Ada \"The Countess\" L." <ada@example.com>"#
    );
}

#[test]
fn our_metadata_comes_first_and_cannot_be_overridden() {
    let message: OutgoingMessage = serde_json::from_value(serde_json::json!({
        "id": "0192f1c4-7a3e-7cc1-9d2b-5c1e2f3a4b5c",
        "tenant": "acme",
        "message_id": "x@acme.example",
        "from": {"email": "no-reply@acme.example"},
        "to": [{"email": "ada@example.com"}],
        "subject": "s",
        "metadata": {"mailbridge-id": "forged", "realm": "acme"}
    }))
    .unwrap();
    let pairs = metadata(&message);
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("mailbridge-id", "0192f1c4-7a3e-7cc1-9d2b-5c1e2f3a4b5c"),
            ("mailbridge-tenant", "acme"),
            ("realm", "acme")
        ]
    );
}

#[test]
fn endpoints_default_or_option() {
    let dsn = Dsn::parse("resend+api://k@default").unwrap();
    let url = endpoint(&dsn, "https://api.resend.com").unwrap();
    assert_eq!(
        join(&url, &["emails"]).as_str(),
        "https://api.resend.com/emails"
    );
    let dsn = Dsn::parse("resend+api://k@default?endpoint=http://127.0.0.1:9/proxy/").unwrap();
    let url = endpoint(&dsn, "https://api.resend.com").unwrap();
    assert_eq!(
        join(&url, &["v3", "a b.example", "messages"]).as_str(),
        "http://127.0.0.1:9/proxy/v3/a%20b.example/messages"
    );
    let dsn = Dsn::parse("resend+api://k@default?endpoint=ftp://x").unwrap();
    assert!(endpoint(&dsn, "https://api.resend.com").is_err());
}

#[test]
fn the_message_id_header_is_ascii() {
    use crate::email::{Mailbox, OutgoingMessage};
    let mut msg = OutgoingMessage::plain(
        "acme",
        Mailbox::new("no-reply@acme.example"),
        Mailbox::new("ada@example.com"),
        "Hi",
        "Hello",
    );
    msg.message_id = "abc@münchen.example".into();
    assert_eq!(message_id_header(&msg), "<abc@xn--mnchen-3ya.example>");
    msg.message_id = "abc@acme.example".into();
    assert_eq!(message_id_header(&msg), "<abc@acme.example>");
}

#[test]
fn an_endpoint_that_is_refused_is_not_repeated_with_its_credentials() {
    for endpoint in [
        "ftp%3A%2F%2Fu%3As3cret%40proxy.example%2F%3Fkey%3Dk3y",
        "http%3A%2F%2Fu%3As3cret%40%5Bbad%2F%3Fkey%3Dk3y",
        "u%3As3cret%40proxy.example%3Fkey%3Dk3y",
    ] {
        let dsn = Dsn::parse(&format!(
            "sendgrid+api://SG.key@default?endpoint={endpoint}"
        ))
        .unwrap();
        let err = super::endpoint(&dsn, "https://api.sendgrid.com")
            .unwrap_err()
            .to_string();
        assert!(err.contains("endpoint"), "{err}");
        assert!(!err.contains("s3cret") && !err.contains("k3y"), "{err}");
    }
}
