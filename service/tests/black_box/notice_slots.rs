//! Notices (webhooks out, feedback into Keycloak) ride the queue beside
//! messages but never hold them up: a tenant's receiver that accepts and
//! never answers keeps only the notices' own slots busy, and of those only
//! its share, so other tenants' notices go on; and notices spend nothing of
//! a tenant's sending rate.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::server::TestServer;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Deliveries in flight at once in these tests.
const CONCURRENCY: usize = 4;

/// A webhook receiver that accepts every connection and never answers nor
/// closes it (each attempt waits for the HTTP client's whole timeout);
/// answers its address and how many connections it accepted.
async fn silent_receiver() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (addr, accepted)
}

/// A server with `config` as its settings file and a worker of
/// [`CONCURRENCY`] slots.
async fn start(config: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailbridge.toml");
    std::fs::write(&file, config).unwrap();
    let env = [("MAILBRIDGE_CONFIG", file.to_str().unwrap())];
    let server = TestServer::start_with(&env, |parts| {
        parts.worker = parts.worker.clone().with_concurrency(CONCURRENCY);
    })
    .await;
    (server, dir)
}

fn email(to: &str) -> serde_json::Value {
    json!({"to": [{"email": to}], "subject": "Reset", "text": "Hi"})
}

/// Polls `done` every 50 ms until it holds (or panics after `timeout`).
async fn until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_receiver_that_never_answers_holds_up_no_email() {
    let (hung, accepted) = silent_receiver().await;
    let (server, _dir) = start(&format!(
        r#"
[tenants.slow]
webhook_url = "http://{hung}/hooks"
webhook_secret = "{SECRET}"
[tenants.acme]
"#
    ))
    .await;

    // Twice as many of `slow`'s messages as there are slots: each one sent
    // queues a `message.sent` webhook, which hangs for 30 s once taken.
    let mut slow = Vec::new();
    for n in 0..2 * CONCURRENCY {
        let (status, _, sent) = server
            .post(
                "/v1/messages",
                Some("slow"),
                &email(&format!("u{n}@example.com")),
            )
            .await;
        assert_eq!(status, 202, "{sent}");
        slow.push(sent["id"].as_str().unwrap().to_owned());
    }
    until("a webhook attempt", Duration::from_secs(10), || {
        accepted.load(Ordering::SeqCst) > 0
    })
    .await;
    // Time for the worker to take every webhook it would take.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Another tenant's email goes at once, not after a hung webhook's 30 s.
    let (status, _, other) = server
        .post("/v1/messages", Some("acme"), &email("ada@example.com"))
        .await;
    assert_eq!(status, 202, "{other}");
    let id = other["id"].as_str().unwrap();
    server
        .wait_status(id, "sent", Duration::from_secs(10))
        .await;

    // Nor is `slow`'s own email held up by its webhooks.
    for id in &slow {
        server
            .wait_status(id, "sent", Duration::from_secs(10))
            .await;
    }

    // Notices had a quarter of the slots: one attempt hangs, the others wait.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_holds_up_no_other_tenants_webhooks() {
    let (hung, accepted) = silent_receiver().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailbridge.toml");
    let config = format!(
        r#"
[tenants.slow]
webhook_url = "http://{hung}/hooks"
webhook_secret = "{SECRET}"
[tenants.acme]
webhook_url = "{url}/hooks"
webhook_secret = "{SECRET}"
"#,
        url = receiver.uri()
    );
    std::fs::write(&file, config).unwrap();
    // The worker's own slots: 32 for notices.
    let env = [("MAILBRIDGE_CONFIG", file.to_str().unwrap())];
    let server = TestServer::start_with(&env, |_| {}).await;

    // Three times as many `message.sent` webhooks of `slow` as there are
    // notice slots, all due before `acme`'s; each hangs for 30 s once taken.
    for n in 0..96 {
        let to = format!("u{n}@example.com");
        let (status, _, sent) = server.post("/v1/messages", Some("slow"), &email(&to)).await;
        assert_eq!(status, 202, "{sent}");
    }
    let cap = mailbridge::queue::lane::NOTICES_PER_DESTINATION as usize;
    until("`slow`'s webhooks taken", Duration::from_secs(10), || {
        accepted.load(Ordering::SeqCst) >= cap
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // `acme`'s webhook goes at once, not after `slow`'s backlog.
    let (status, _, sent) = server
        .post("/v1/messages", Some("acme"), &email("ada@example.com"))
        .await;
    assert_eq!(status, 202, "{sent}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "acme's webhook waited behind `slow`'s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // `slow`'s receiver was given its share of the slots, no more.
    assert_eq!(accepted.load(Ordering::SeqCst), cap);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_spend_none_of_a_tenants_sending_rate() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let (server, _dir) = start(&format!(
        r#"
[tenants.acme]
rate = "2/minute"
webhook_url = "{url}/hooks"
webhook_secret = "{SECRET}"
"#,
        url = receiver.uri()
    ))
    .await;

    // The burst of two emails goes at once, and so does each one's
    // `message.sent`: the webhooks take none of the two.
    let mut ids = Vec::new();
    for to in ["ada@example.com", "bob@example.com"] {
        let (status, _, sent) = server.post("/v1/messages", Some("acme"), &email(to)).await;
        assert_eq!(status, 202, "{sent}");
        ids.push(sent["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        server
            .wait_status(id, "sent", Duration::from_secs(10))
            .await;
    }
    server
        .wait_sent_through("acme", "webhook", 2, Duration::from_secs(10))
        .await;

    // The rate still holds the tenant's email: a third one is held back
    // (put back without counting an attempt) for its turn, 30 s on.
    let (_, _, third) = server
        .post("/v1/messages", Some("acme"), &email("carl@example.com"))
        .await;
    let id = third["id"].as_str().unwrap();
    let record = server
        .wait_status(id, "retrying", Duration::from_secs(10))
        .await;
    assert_eq!(record["attempts"], 0, "{record}");
}
