//! Webhooks out: a local receiver that fails first and checks every
//! signature gets `message.sent`, `message.failed`, `message.bounced` and
//! `message.suppressed`, each signed as Standard Webhooks, retried from the
//! queue (beyond the message retry limit) until it is taken.

use crate::common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::server::TestServer;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Postmark's send API (a 422 for `bad@example.com`) and the application's
/// webhook endpoint, which refuses the first three calls of `message.sent`.
async fn peers() -> MockServer {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/email"))
        .and(body_partial_json(json!({"To": "bad@example.com"})))
        .respond_with(
            ResponseTemplate::new(422)
                .set_body_json(json!({"ErrorCode": 300, "Message": "Invalid 'To' address"})),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/email"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"MessageID": "pm-msg", "ErrorCode": 0})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .and(body_partial_json(json!({"type": "message.sent"})))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    server
}

async fn start(peers: &MockServer) -> (TestServer, tempfile::TempDir) {
    let encode = |t: &str| {
        percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let config = format!(
        r#"
[transports]
pm = "postmark+api://pm-token@default?endpoint={uri}&webhook_key=hooks%3Apm-pass"
[tenants.acme]
transport = "pm"
webhook_url = "{url}/hooks"
webhook_secret = "${{ACME_WEBHOOK_SECRET}}"
"#,
        uri = encode(&peers.uri()),
        url = peers.uri(),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailbridge.toml");
    std::fs::write(&file, config).unwrap();
    let server = TestServer::start(&[
        ("MAILBRIDGE_CONFIG", file.to_str().unwrap()),
        ("ACME_WEBHOOK_SECRET", SECRET),
        // Emails give up after 2 attempts; webhooks keep trying for 24 hours.
        ("MAILBRIDGE_RETRY_MAX_ATTEMPTS", "2"),
    ])
    .await;
    (server, dir)
}

/// Checks a delivery's Standard Webhooks signature; answers its body.
fn verified(request: &Request) -> Value {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let key = STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let expected = format!(
        "v1,{}",
        STANDARD.encode(aws_lc_rs::hmac::sign(&key, &signed))
    );
    assert!(
        header("webhook-signature")
            .split(' ')
            .any(|s| s == expected),
        "bad signature"
    );
    let age = time::OffsetDateTime::now_utc().unix_timestamp() - timestamp.parse::<i64>().unwrap();
    assert!(
        (0..300).contains(&age),
        "timestamp of the attempt, not of the event"
    );
    serde_json::from_slice(&request.body).unwrap()
}

/// Every call of the receiver, signature checked: (webhook-id, body), in order.
async fn calls(peers: &MockServer) -> Vec<(String, Value)> {
    peers
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/hooks")
        .map(|r| {
            (
                r.headers["webhook-id"].to_str().unwrap().to_owned(),
                verified(r),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_application_hears_of_every_outcome_signed_and_retried() {
    let peers = peers().await;
    let (server, _dir) = start(&peers).await;
    let body = |to: &str| json!({"to": [{"email": to}], "subject": "Reset", "text": "Hi"});
    let (_, _, sent) = server
        .post("/v1/messages", Some("acme"), &body("ada@example.com"))
        .await;
    let sent = sent["id"].as_str().unwrap().to_owned();
    let (_, _, failed) = server
        .post("/v1/messages", Some("acme"), &body("bad@example.com"))
        .await;
    let failed = failed["id"].as_str().unwrap().to_owned();
    server
        .wait_status(&sent, "sent", Duration::from_secs(10))
        .await;
    server
        .wait_status(&failed, "failed", Duration::from_secs(10))
        .await;

    let bounce = json!({"RecordType": "Bounce", "ID": 7, "Type": "HardBounce", "MessageID": "pm-msg",
        "Email": "ada@example.com", "BouncedAt": "2026-12-04T22:00:00Z", "Details": "550 5.1.1 unknown user",
        "Metadata": {"mailbridge-id": sent}});
    let answer = common::postmark::post_event(&server, &bounce).await;
    assert_eq!(answer.status(), 200);
    let (_, _, suppressed) = server
        .post("/v1/messages", Some("acme"), &body("ada@example.com"))
        .await;
    assert_eq!(suppressed["status"], "suppressed");
    let suppressed = suppressed["id"].as_str().unwrap().to_owned();

    // Webhook rows are in the queue, like messages: wait for all four to be taken.
    server
        .wait_sent_through("acme", "webhook", 4, Duration::from_secs(20))
        .await;
    let calls = calls(&peers).await;
    let of = |kind: &str| {
        let (id, body) = calls
            .iter()
            .find(|(_, b)| b["type"] == kind)
            .unwrap()
            .clone();
        let tries = calls.iter().filter(|(i, b)| *i == id && *b == body).count();
        (id, body, tries)
    };

    let (_, body, _) = of("message.sent");
    assert_eq!(body["data"]["message_id"], sent.as_str());
    assert_eq!(body["data"]["tenant"], "acme");
    assert_eq!(body["data"]["provider_message_id"], "pm-msg");
    let (_, body, _) = of("message.failed");
    assert_eq!(body["data"]["message_id"], failed.as_str());
    assert!(
        body["data"]["error"].as_str().unwrap().contains("422"),
        "{body}"
    );
    let (_, body, _) = of("message.bounced");
    assert_eq!(body["data"]["message_id"], sent.as_str());
    assert_eq!(
        (
            body["data"]["bounce"].clone(),
            body["data"]["recipient"].clone()
        ),
        (json!("hard"), json!("ada@example.com"))
    );
    let (_, body, _) = of("message.suppressed");
    assert_eq!(body["data"]["message_id"], suppressed.as_str());
    assert_eq!(
        body["data"]["suppressed_recipients"],
        json!(["ada@example.com"])
    );

    // `message.sent` was refused three times (more than an email's 2
    // attempts) and went through on the fourth, under one webhook-id.
    let (id, _, tries) = of("message.sent");
    assert_eq!(tries, 4);
    assert!(id.starts_with("msg_"));
    assert_eq!(of("message.failed").2, 1);
    assert_eq!(calls.len(), 7, "one call each, three more for message.sent");

    // Each delivery is a row of its own, named by its event type.
    let row = uuid::Uuid::parse_str(id.trim_start_matches("msg_")).unwrap();
    let (status, record) = server
        .get(&format!("/v1/messages/{row}"), &server.token(None, true))
        .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(
        (
            record["transport"].clone(),
            record["kind"].clone(),
            record["attempts"].clone()
        ),
        (json!("webhook"), json!("message.sent"), json!(4)),
        "{record}"
    );
}

#[tokio::test]
async fn a_tenant_without_a_webhook_url_queues_none() {
    let server = TestServer::start(&[]).await;
    let body = json!({"to": [{"email": "ada@example.com"}], "subject": "Reset", "text": "Hi"});
    let (_, _, sent) = server.post("/v1/messages", None, &body).await;
    server
        .wait_status(
            sent["id"].as_str().unwrap(),
            "sent",
            Duration::from_secs(10),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, page) = server.get("/v1/messages", &server.token(None, true)).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1, "{page}");
}

/// A tenant's receiver that is down leaves its `message.sent` webhooks
/// retrying for a day; they are notices, not email, and never count
/// against the tenant's `MAILBRIDGE_MAX_PENDING` (else its new email
/// would get 429 while nothing of it waits).
#[tokio::test]
async fn a_tenants_failing_webhooks_never_hold_back_its_email() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&receiver)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailbridge.toml");
    let config = format!(
        "[tenants.acme]\nwebhook_url = \"{}/hooks\"\nwebhook_secret = \"{SECRET}\"\n",
        receiver.uri()
    );
    std::fs::write(&file, config).unwrap();
    let server = TestServer::start(&[
        ("MAILBRIDGE_CONFIG", file.to_str().unwrap()),
        ("MAILBRIDGE_MAX_PENDING", "2"),
    ])
    .await;
    let body = json!({"to": [{"email": "ada@example.com"}], "subject": "Reset", "text": "Hi"});
    for _ in 0..2 {
        let (status, _, sent) = server.post("/v1/messages", Some("acme"), &body).await;
        assert_eq!(status, 202, "{sent}");
        let id = sent["id"].as_str().unwrap();
        server
            .wait_status(id, "sent", Duration::from_secs(10))
            .await;
    }
    // Both webhooks were refused at least once: two rows retrying.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while calls_to_hooks(&receiver).await < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no webhook tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The pending count is reused for a second: past it, it is counted again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, _, answer) = server.post("/v1/messages", Some("acme"), &body).await;
    assert_eq!(status, 202, "{answer}");
    server.stop().await;
}

async fn calls_to_hooks(receiver: &MockServer) -> usize {
    let requests = receiver.received_requests().await.unwrap();
    requests.iter().filter(|r| r.url.path() == "/hooks").count()
}
