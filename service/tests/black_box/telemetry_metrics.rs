//! `GET /metrics` of a real server after traffic: the counters of what it
//! accepted and delivered, and the queue gauges read from the store.

use crate::common;

use std::time::Duration;

use common::server::TestServer;
use serde_json::json;

/// The value of the sample `line_start` (metric name and labels) in `text`.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
}

async fn scrape(server: &TestServer) -> String {
    let resp = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(resp.status(), 200);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    resp.text().await.expect("text")
}

#[tokio::test]
async fn counts_accepted_and_sent_messages_and_shows_the_queue() {
    // Tenant `beta` sends through a port where nothing listens: refused, retried.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailbridge.toml");
    std::fs::write(
        &config,
        "[transports]\nbroken = \"smtp://127.0.0.1:1?tls=none\"\n[tenants.beta]\ntransport = \"broken\"\n",
    )
    .unwrap();
    let server = TestServer::start(&[
        ("MAILBRIDGE_CONFIG", config.to_str().unwrap()),
        ("MAILBRIDGE_RETRY_BASE", "1h"),
        ("MAILBRIDGE_RETRY_MAX_INTERVAL", "1h"),
        // The second attempt, if jitter brings it on soon, fails instead of retrying again.
        ("MAILBRIDGE_RETRY_MAX_ATTEMPTS", "2"),
    ])
    .await;
    let text = scrape(&server).await;
    assert_eq!(
        sample(&text, r#"mailbridge_queue_depth{status="queued"}"#),
        Some(0.0),
        "{text}"
    );

    let mut ids = Vec::new();
    for n in 0..2 {
        let body = json!({"to": [{"email": format!("u{n}@example.com")}], "subject": "Hi", "text": "Body"});
        let (status, _, answer) = server.post("/v1/messages", Some("acme"), &body).await;
        assert_eq!(status, 202, "{answer}");
        ids.push(answer["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        server
            .wait_status(id, "sent", Duration::from_secs(10))
            .await;
    }
    let body = json!({"to": [{"email": "b@example.com"}], "subject": "Hi", "text": "Body"});
    let (status, _, answer) = server.post("/v1/messages", Some("beta"), &body).await;
    assert_eq!(status, 202, "{answer}");
    wait_attempted(&server, answer["id"].as_str().unwrap()).await;

    // The queue figures are read at most once a second.
    tokio::time::sleep(mailbridge::telemetry::metrics::QUEUE_READ_EVERY).await;
    let text = scrape(&server).await;
    assert_eq!(
        sample(
            &text,
            r#"mailbridge_messages_accepted_total{tenant="acme"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"mailbridge_messages_sent_total{tenant="acme",transport="default"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"mailbridge_transport_replies_total{class="2xx",transport="default"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"mailbridge_delivery_duration_seconds_count{transport="default"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"mailbridge_messages_retried_total{class="transient",tenant="beta",transport="broken"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"mailbridge_transport_replies_total{class="network",transport="broken"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let waiting = sample(&text, r#"mailbridge_queue_depth{status="retrying"}"#).unwrap_or_default()
        + sample(&text, r#"mailbridge_queue_depth{status="failed"}"#).unwrap_or_default();
    assert_eq!(waiting, 1.0, "{text}");
    assert_eq!(
        sample(&text, r#"mailbridge_queue_depth{status="queued"}"#),
        Some(0.0),
        "{text}"
    );
    assert!(
        sample(&text, "mailbridge_queue_oldest_age_seconds").is_some(),
        "{text}"
    );
    server.stop().await;
}

/// Waits until message `id` had its first attempt (it is `retrying` or `failed`).
async fn wait_attempted(server: &TestServer, id: &str) {
    let admin = server.token(None, true);
    for _ in 0..200 {
        let (_, record) = server.get(&format!("/v1/messages/{id}"), &admin).await;
        if record["status"] == "retrying" || record["status"] == "failed" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {id} was never attempted");
}
