//! SendGrid v3 Mail Send against a mock built from its API reference.

use crate::provider_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use provider_support::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "SG.test-key.secret-part";
const DSN: &str = "sendgrid+api://SG.test-key.secret-part@default";

#[tokio::test]
async fn sends_every_field_and_returns_x_message_id() {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "sg-abc123"))
        .expect(1)
        .mount(&server)
        .await;
    let msg = message();
    let delivery = transport(DSN, &server).send(&msg).await.unwrap();
    assert_eq!(delivery.provider_message_id.as_deref(), Some("sg-abc123"));

    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
    let body: Value = request.body_json().unwrap();
    assert_eq!(
        body["personalizations"],
        json!([{
            "to": [
                {"email": "ada@example.com", "name": "Ada Lovelace"},
                {"email": "grace@example.com", "name": "Hopper, Grace"}
            ],
            "cc": [{"email": "audit@acme.example"}],
            "bcc": [{"email": "archive@acme.example", "name": "Archive"}]
        }])
    );
    assert_eq!(
        body["from"],
        json!({"email": "no-reply@acme.example", "name": "ACME"})
    );
    assert_eq!(
        body["reply_to"],
        json!({"email": "support@acme.example", "name": "ACME Support"})
    );
    assert_eq!(body["subject"], "Reset your password");
    assert_eq!(
        body["content"],
        json!([
            {"type": "text/plain", "value": msg.text.as_deref().unwrap()},
            {"type": "text/html", "value": msg.html.as_deref().unwrap()}
        ])
    );
    assert_eq!(
        body["headers"],
        json!({"Message-ID": format!("<{}>", msg.message_id)})
    );
    assert_eq!(body["categories"], json!(["keycloak", "password-reset"]));
    assert_eq!(
        body["custom_args"],
        json!({"realm": "acme", "mailbridge-id": msg.id.to_string(), "mailbridge-tenant": "acme"})
    );
}

#[tokio::test]
async fn an_address_repeated_in_cc_is_sent_once() {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    let mut msg = message();
    msg.cc.push(named("ADA@example.com", "Ada again"));
    msg.bcc.push(msg.to[1].clone());
    transport(DSN, &server).send(&msg).await.unwrap();
    let body: Value = only_request(&server).await.body_json().unwrap();
    assert_eq!(
        body["personalizations"][0]["cc"],
        json!([{"email": "audit@acme.example"}])
    );
    assert_eq!(
        body["personalizations"][0]["bcc"],
        json!([{"email": "archive@acme.example", "name": "Archive"}])
    );
}

#[tokio::test]
async fn eu_region_is_chosen_and_typos_are_refused() {
    let dsn = mailbridge::transport::Dsn::parse("sendgrid+api://k@default?region=mars").unwrap();
    assert!(mailbridge::transport::from_dsn(&dsn).is_err());
    let dsn = mailbridge::transport::Dsn::parse("sendgrid+api://k@default?regoin=eu").unwrap();
    let err = mailbridge::transport::from_dsn(&dsn).unwrap_err();
    assert!(err.to_string().contains("regoin"), "{err}");
    let dsn = mailbridge::transport::Dsn::parse(&format!("{DSN}?region=eu")).unwrap();
    let shown = format!("{:?}", mailbridge::transport::from_dsn(&dsn).unwrap());
    assert!(
        shown.contains("https://api.eu.sendgrid.com/v3/mail/send"),
        "{shown}"
    );
    assert!(!shown.contains(KEY), "{shown}");
}

#[tokio::test]
async fn rate_limit_with_retry_after_seconds_is_transient() {
    let answer = ResponseTemplate::new(429)
        .insert_header("Retry-After", "17")
        .set_body_json(json!({"errors": [{"field": null, "message": "too many requests"}]}));
    let retry_after = expect_transient(send_with_answer(DSN, answer).await);
    assert_eq!(retry_after, Some(Duration::from_secs(17)));
}

#[tokio::test]
async fn rate_limit_with_retry_after_date_is_transient() {
    let answer = ResponseTemplate::new(429).insert_header("Retry-After", http_date_in(120));
    assert_about(expect_transient(send_with_answer(DSN, answer).await), 120);
}

#[tokio::test]
async fn rate_limit_reset_header_gives_retry_after() {
    // SendGrid sends the end of the window as Unix time.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let answer = ResponseTemplate::new(429)
        .insert_header("X-RateLimit-Limit", "600")
        .insert_header("X-RateLimit-Remaining", "0")
        .insert_header("X-RateLimit-Reset", (now + 90).to_string())
        .set_body_json(json!({"errors": [{"field": null, "message": "too many requests"}]}));
    assert_about(expect_transient(send_with_answer(DSN, answer).await), 90);
}

#[tokio::test]
async fn server_error_is_transient() {
    let answer = ResponseTemplate::new(500).set_body_json(
        json!({"errors": [{"field": null, "message": "An internal server error occurred."}]}),
    );
    assert_eq!(expect_transient(send_with_answer(DSN, answer).await), None);
}

#[tokio::test]
async fn bad_request_is_permanent_with_sendgrid_text() {
    let answer = ResponseTemplate::new(400).set_body_json(json!({"errors": [{
        "message": "The from address does not match a verified Sender Identity.",
        "field": "from",
        "help": "http://sendgrid.com/docs/for-developers/sending-email/sender-identity/"
    }]}));
    let message = expect_permanent(send_with_answer(DSN, answer).await);
    assert!(
        message.contains("does not match a verified Sender Identity"),
        "{message}"
    );
    assert!(message.contains("400"), "{message}");
}

#[tokio::test]
async fn refused_key_is_permanent_and_never_echoed() {
    // Even an answer that quotes the key must not carry it into our records.
    let answer = ResponseTemplate::new(401).set_body_json(json!({"errors": [{
        "field": null,
        "message": format!("The provided authorization grant is invalid, expired, or revoked ({KEY})")
    }]}));
    let message = expect_refused_credentials(send_with_answer(DSN, answer).await);
    assert!(
        message.contains("authorization grant is invalid"),
        "{message}"
    );
    assert!(
        !message.contains(KEY) && !message.contains("secret-part"),
        "{message}"
    );
}

#[tokio::test]
async fn unreachable_provider_is_transient() {
    // Bind a port, then free it: nothing listens there any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dsn = mailbridge::transport::Dsn::parse(&format!("{DSN}?endpoint=http://127.0.0.1:{port}"))
        .unwrap();
    let transport = mailbridge::transport::from_dsn(&dsn).unwrap();
    let err = transport.send(&message()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(
        err.detail().starts_with("sendgrid: cannot connect"),
        "{err:?}"
    );
    assert!(!err.detail().contains(KEY), "{err:?}");
}

/// A provider on 127.0.0.1 that reads one request, writes `answer` and closes.
async fn answering(answer: &'static str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 8192];
        // The whole request: its head, then as many body bytes as announced.
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    break;
                }
            }
            if n == 0 {
                return;
            }
        }
        conn.write_all(answer.as_bytes()).await.unwrap();
        // Closed with the body cut short.
    });
    format!("{DSN}?endpoint=http://{addr}")
}

#[tokio::test]
async fn an_accepted_message_whose_answer_is_cut_short_is_sent_not_sent_again() {
    let dsn = answering(
        "HTTP/1.1 202 Accepted\r\nX-Message-Id: sg-cut\r\nContent-Length: 100\r\n\r\n{\"",
    )
    .await;
    let dsn = mailbridge::transport::Dsn::parse(&dsn).unwrap();
    let transport = mailbridge::transport::from_dsn(&dsn).unwrap();
    let delivery = transport.send(&message()).await.expect("taken as sent");
    assert_eq!(delivery.provider_message_id.as_deref(), Some("sg-cut"));
}

#[tokio::test]
async fn a_refusal_whose_answer_is_cut_short_is_still_transient() {
    let dsn = answering("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100\r\n\r\n{\"").await;
    let dsn = mailbridge::transport::Dsn::parse(&dsn).unwrap();
    let transport = mailbridge::transport::from_dsn(&dsn).unwrap();
    let err = transport.send(&message()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}
