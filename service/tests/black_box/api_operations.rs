//! What an operator reads: `/metrics` after real traffic, and `/openapi.json`
//! describing every route the server answers.

use crate::common;

use std::time::Duration;

use common::server::TestServer;
use serde_json::json;

#[tokio::test]
async fn metrics_count_accepted_and_sent_messages() {
    let server = TestServer::start(&[]).await;
    let body = json!({"to": [{"email": "ada@example.com"}], "subject": "Hi", "text": "Hello"});
    let (_, _, accepted) = server.post("/v1/messages", Some("acme"), &body).await;
    server
        .wait_status(
            accepted["id"].as_str().unwrap(),
            "sent",
            Duration::from_secs(10),
        )
        .await;
    let resp = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    for line in [
        "mailbridge_messages_accepted_total{tenant=\"acme\"} 1",
        "mailbridge_messages_sent_total{tenant=\"acme\",transport=\"default\"} 1",
        "mailbridge_queue_depth{status=\"failed\"} 0",
        "mailbridge_queue_depth{status=\"queued\"} 0",
        "mailbridge_delivery_duration_seconds_count{transport=\"default\"} 1",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert!(!text.contains("ada@example.com"), "no addresses in metrics");
    server.stop().await;
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let server = TestServer::start(&[]).await;
    let doc: serde_json::Value = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = [
        ("post", "/v1/messages"),
        ("get", "/v1/messages"),
        ("get", "/v1/messages/{id}"),
        ("delete", "/v1/messages/{id}"),
        ("post", "/v1/messages/{id}/retry"),
        ("post", "/v1/render"),
        ("post", "/v1/events/{transport}"),
        ("get", "/v1/suppressions"),
        ("put", "/v1/suppressions/{tenant}/{email}"),
        ("delete", "/v1/suppressions/{tenant}/{email}"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        routes.len(),
        "every documented operation is a route"
    );
    let admin = server.token(None, true);
    for (method, path) in routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
        // And the server really answers it (anything but "no such endpoint"/"method not allowed").
        let url = server.url(&path.replace("{id}", "0190b8a0-0000-7000-8000-000000000000"));
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let resp = server
            .http
            .request(method.clone(), &url)
            .bearer_auth(&admin)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_ne!(resp.status(), 405, "{method} {path}");
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains("no such endpoint"),
            "{method} {path}: {text}"
        );
    }
    server.stop().await;
}
