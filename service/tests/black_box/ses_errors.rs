//! SES's own error answers (JSON with `x-amzn-ErrorType`, as the SES v2
//! reference shows them; moto answers these in XML) and an unreachable endpoint.

use std::time::Duration;

use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::transport::{Dsn, TransportError, from_dsn};
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn message() -> OutgoingMessage {
    OutgoingMessage::plain(
        "acme",
        Mailbox::new("no-reply@acme.example"),
        Mailbox::new("ada@example.com"),
        "Hello",
        "Hi",
    )
}

async fn send_to(endpoint: &str) -> TransportError {
    let dsn = Dsn::parse(&format!(
        "ses+api://AKIDEXAMPLE:secret@default?region=eu-west-1&endpoint={endpoint}"
    ))
    .unwrap();
    from_dsn(&dsn).unwrap().send(&message()).await.unwrap_err()
}

async fn ses_answering(status: u16, error_type: &str, retry_after: Option<&str>) -> MockServer {
    let server = MockServer::builder().start().await;
    let mut answer = ResponseTemplate::new(status)
        .insert_header(
            "x-amzn-ErrorType",
            format!("{error_type}:http://internal.amazon.com/coral/com.amazonaws.sesv2/"),
        )
        .set_body_json(serde_json::json!({"message": "explained"}));
    if let Some(secs) = retry_after {
        answer = answer.insert_header("Retry-After", secs);
    }
    Mock::given(method("POST"))
        .and(path("/v2/email/outbound-emails"))
        .and(header_exists("authorization"))
        .and(header_exists("x-amz-date"))
        .respond_with(answer)
        .expect(1)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn throttling_is_transient_with_the_hint() {
    let server = ses_answering(429, "TooManyRequestsException", Some("12")).await;
    let err = send_to(&server.uri()).await;
    assert_eq!(err.retry_after(), Some(Duration::from_secs(12)), "{err}");
    assert!(
        err.detail().contains("TooManyRequestsException: explained"),
        "{err}"
    );
}

#[tokio::test]
async fn a_daily_quota_reached_is_transient() {
    let server = ses_answering(400, "LimitExceededException", None).await;
    assert!(send_to(&server.uri()).await.is_transient());
}

#[tokio::test]
async fn a_rejected_message_is_permanent() {
    for code in [
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "AccountSuspendedException",
    ] {
        let server = ses_answering(400, code, None).await;
        let err = send_to(&server.uri()).await;
        assert!(
            matches!(err, TransportError::Permanent { .. }),
            "{code}: {err}"
        );
    }
}

#[tokio::test]
async fn a_from_the_policy_does_not_allow_fails_the_message_not_the_transport() {
    use mailbridge::queue::worker::outage::Verdict;
    // An IAM policy that lets these credentials send only as some identities
    // (a `Resource` or a `ses:FromAddress` condition) refuses another `From`
    // with AccessDeniedException: the credentials are fine, the message's
    // sender is not allowed. Holding the transport would stop every tenant.
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/v2/email/outbound-emails"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header(
                    "x-amzn-ErrorType",
                    "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/",
                )
                .set_body_json(serde_json::json!({"message":
                    "User: arn:aws:iam::123456789012:user/mailbridge is not authorized to perform: ses:SendEmail on resource: arn:aws:ses:eu-west-1:123456789012:identity/other.example"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = send_to(&server.uri()).await;
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
    assert!(err.detail().contains("AccessDeniedException"), "{err}");
    assert_eq!(err.code(), Some(403));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = send_to(&format!("http://{addr}")).await;
    assert!(matches!(err, TransportError::Transient { .. }), "{err}");
}
