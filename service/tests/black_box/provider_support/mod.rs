//! Shared parts of the provider API tests: a message with every field set, a
//! transport aimed at an in-process mock of the provider (127.0.0.1 only), and
//! checks of the error classes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::transport::{Delivery, Dsn, SharedTransport, TransportError, from_dsn};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A message with names, cc, bcc, reply-to, both bodies, tags and metadata.
pub fn message() -> OutgoingMessage {
    let id = uuid::Uuid::parse_str("0192f1c4-7a3e-7cc1-9d2b-5c1e2f3a4b5c").unwrap();
    OutgoingMessage {
        id,
        tenant: "acme".into(),
        message_id: format!("{}@acme.example", id.simple()),
        from: named("no-reply@acme.example", "ACME"),
        envelope_from: None,
        reply_to: Some(named("support@acme.example", "ACME Support")),
        to: vec![
            named("ada@example.com", "Ada Lovelace"),
            named("grace@example.com", "Hopper, Grace"),
        ],
        cc: vec![Mailbox::new("audit@acme.example")],
        bcc: vec![named("archive@acme.example", "Archive")],
        subject: "Reset your password".into(),
        text: Some("Click the link to reset your password.".into()),
        html: Some("<p>Click the link to reset your password.</p>".into()),
        tags: vec!["keycloak".into(), "password-reset".into()],
        metadata: BTreeMap::from([("realm".to_owned(), "acme".to_owned())]),
    }
}

/// A mailbox with a display name.
pub fn named(email: &str, name: &str) -> Mailbox {
    Mailbox {
        email: email.into(),
        name: Some(name.into()),
    }
}

/// The transport of `dsn` with its base URL replaced by the mock server's.
pub fn transport(dsn: &str, server: &MockServer) -> SharedTransport {
    let sep = if dsn.contains('?') { '&' } else { '?' };
    let dsn = Dsn::parse(&format!("{dsn}{sep}endpoint={}", server.uri())).unwrap();
    from_dsn(&dsn).unwrap()
}

/// Sends `message()` through `dsn` to a provider that answers with `answer`.
pub async fn send_with_answer(
    dsn: &str,
    answer: ResponseTemplate,
) -> Result<Delivery, TransportError> {
    let server = MockServer::builder().start().await;
    Mock::given(any())
        .respond_with(answer)
        .expect(1)
        .mount(&server)
        .await;
    transport(dsn, &server).send(&message()).await
}

/// The one request the mock server received.
pub async fn only_request(server: &MockServer) -> Request {
    let mut requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "expected exactly one request");
    requests.remove(0)
}

/// A header of a request as text.
pub fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// An HTTP date `secs` seconds from now.
pub fn http_date_in(secs: u64) -> String {
    httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(secs))
}

/// Asserts a transient failure and returns its `retry_after`.
pub fn expect_transient(result: Result<Delivery, TransportError>) -> Option<Duration> {
    match result {
        Err(TransportError::Transient { retry_after, .. }) => retry_after,
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

/// Asserts a permanent failure and returns its message.
pub fn expect_permanent(result: Result<Delivery, TransportError>) -> String {
    match result {
        Err(TransportError::Permanent { message, .. }) => message,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

/// Asserts a permanent refusal of the transport's own key (so that a
/// failover group moves on) and returns its message.
pub fn expect_refused_credentials(result: Result<Delivery, TransportError>) -> String {
    match result {
        Err(TransportError::Permanent {
            message,
            credentials: true,
            ..
        }) => message,
        other => panic!("expected a refusal of the credentials, got {other:?}"),
    }
}

/// Asserts a `Retry-After` given as an HTTP date about `secs` from now: the
/// date has whole seconds, so up to a few seconds may already have passed.
pub fn assert_about(retry_after: Option<Duration>, secs: u64) {
    let got = retry_after
        .expect("a retry_after from the HTTP date")
        .as_secs();
    assert!(
        got <= secs && got + 30 >= secs,
        "retry_after {got}s, expected about {secs}s"
    );
}

/// The fields of a `multipart/form-data` request, in order.
pub fn form_fields(request: &Request) -> Vec<(String, String)> {
    let content_type = header(request, "content-type").unwrap_or_default();
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("a multipart boundary")
        .trim_matches('"');
    let body = String::from_utf8(request.body.clone()).unwrap();
    body.split(&format!("--{boundary}"))
        .filter_map(|part| {
            let (head, value) = part.split_once("\r\n\r\n")?;
            let name = head.split("name=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), value.trim_end_matches("\r\n").to_owned()))
        })
        .collect()
}

/// Every value of field `name`.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}
