//! Hostile values in every field of a message: each answer is a 2xx or a 4xx
//! problem+json, never a 5xx, and the worker survives whatever was accepted.
//!
//! Bounded: a fixed list of values per field plus a fixed number of seeded
//! random combinations, all to a server on 127.0.0.1.

use crate::common;

use std::time::Duration;

use common::server::{TestServer, split};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

/// A message using every field of the API.
fn full() -> Value {
    json!({
        "tenant": "default",
        "to": [{"email": "ada@example.com", "name": "Ada Lovelace"}],
        "cc": [{"email": "cc@example.com"}],
        "bcc": [{"email": "bcc@example.com"}],
        "from": {"email": "no-reply@example.com", "name": "Example"},
        "reply_to": {"email": "support@example.com"},
        "subject": "Reset your password",
        "text": "Hello",
        "html": "<p>Hello</p>",
        "template": "password-reset",
        "locale": "de",
        "data": {"link": "https://example.com/r", "linkExpiration": 5,
                 "realmName": "demo", "user": {"username": "ada"}},
        "idempotency_key": "kc-1",
        "tags": ["keycloak"],
        "metadata": {"realm": "demo"}
    })
}

/// Values that have broken parsers, templates and mail headers before.
fn hostile() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1e308),
        json!(18_446_744_073_709_551_615u64),
        json!(""),
        json!(" "),
        json!("\r\nBcc: victim@example.com"),
        json!("a\u{0}b"),
        json!("\u{202e}evil\u{feff}"),
        json!("ä😀𝔘"),
        json!("x".repeat(20_000)),
        json!("{{ 7 * 7 }}"),
        json!("{% include '/etc/passwd' %}"),
        json!("{{ range(99999999999) }}"),
        json!("../../../etc/passwd"),
        json!("a@"),
        json!("@b"),
        json!("a@b@c"),
        json!("\"a b\"@example.com"),
        json!("ada@[127.0.0.1]"),
        json!([]),
        json!([null]),
        json!([{"email": "\r\n"}]),
        json!(["a", 1, {}]),
        json!({}),
        json!({"email": null}),
        json!({"email": "ada@example.com", "name": "\n"}),
        json!({"a": {"b": {"c": {"d": {"e": [[[[[[]]]]]]}}}}}),
        json!(
            (0..60)
                .map(|i| json!({"email": format!("u{i}@example.com")}))
                .collect::<Vec<_>>()
        ),
    ]
}

/// One message answer: never a 5xx; errors are problem+json.
async fn check(server: &TestServer, path: &str, token: &str, body: &Value, ids: &mut Vec<String>) {
    let resp = server
        .http
        .post(server.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request");
    let (status, headers, answer) = split(resp).await;
    assert!(status < 500, "{path} answered {status} to {body}: {answer}");
    if status >= 400 {
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{path} {status} to {body}"
        );
        assert_eq!(answer["status"], status, "{answer}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(
            !detail.is_empty(),
            "{path} {status} without a detail: {answer}"
        );
    } else if path == "/v1/messages" && status == 202 {
        ids.push(answer["id"].as_str().expect("id").to_owned());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_get_4xx_problems_never_5xx() {
    let server = TestServer::start(&[]).await;
    let token = server.token(None, false);
    let mut ids = Vec::new();
    let fields: Vec<String> = full().as_object().unwrap().keys().cloned().collect();

    // Every field alone, with every hostile value, against both endpoints.
    for field in &fields {
        for value in hostile() {
            let mut body = full();
            // A fresh key each time, so the idempotency answer does not hide the rest.
            body["idempotency_key"] = json!(format!("{field}-{}", rand::random::<u64>()));
            body[field.as_str()] = value;
            for path in ["/v1/messages", "/v1/render"] {
                check(&server, path, &token, &body, &mut ids).await;
            }
        }
        // The field left out altogether.
        let mut body = full();
        body.as_object_mut().unwrap().remove(field.as_str());
        check(&server, "/v1/messages", &token, &body, &mut ids).await;
    }

    // Seeded random combinations of several hostile fields at once, and
    // hostile values inside `data` (what the templates see).
    let mut rng = StdRng::seed_from_u64(0x6d61_696c);
    let values = hostile();
    for round in 0..150 {
        let mut body = full();
        for _ in 0..rng.random_range(1..=4) {
            let field = &fields[rng.random_range(0..fields.len())];
            body[field.as_str()] = values[rng.random_range(0..values.len())].clone();
        }
        let mut data = Map::new();
        for key in ["link", "linkExpiration", "realmName", "user", "extra"] {
            if rng.random_bool(0.5) {
                data.insert(
                    key.into(),
                    values[rng.random_range(0..values.len())].clone(),
                );
            }
        }
        if rng.random_bool(0.5) {
            body["data"] = Value::Object(data);
        }
        body["idempotency_key"] = json!(format!("round-{round}"));
        for path in ["/v1/messages", "/v1/render"] {
            check(&server, path, &token, &body, &mut ids).await;
        }
    }

    // Whatever was accepted is delivered or given up with a reason; the
    // worker is still alive afterwards.
    assert!(!ids.is_empty(), "no variation was accepted at all");
    let admin = server.token(None, true);
    for id in &ids {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (status, record) = server.get(&format!("/v1/messages/{id}"), &admin).await;
            assert_eq!(status, 200, "{record}");
            match record["status"].as_str() {
                Some("sent") => break,
                Some("failed") => {
                    assert!(record["last_error"].as_str().is_some_and(|e| !e.is_empty()));
                    break;
                }
                _ => {}
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "message {id} stuck: {record}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let alive =
        json!({"to": [{"email": "ada@example.com"}], "subject": "still alive", "text": "ok"});
    let (status, _, answer) = server.post("/v1/messages", None, &alive).await;
    assert_eq!(status, 202, "{answer}");
    server.stop().await;
}
