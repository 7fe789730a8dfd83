//! Limits that follow Keycloak's flows: a tenant's `recipient_rate` (per
//! address, across kinds) and `template_rates` (per kind and address) refuse
//! a message with 429 problem+json and Retry-After, count it in /metrics,
//! spend nothing when they refuse, never limit an idempotent repeat, and —
//! on PostgreSQL — hold across replicas.

use crate::common;

use common::postgres::Postgres;
use common::server::TestServer;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[tenants.acme]
recipient_rate = "3/hour"
[tenants.acme.template_rates]
email-verification = "1/minute"
"#;

async fn start(extra: &[(&str, &str)]) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailbridge.toml");
    std::fs::write(&file, CONFIG).unwrap();
    let mut env = vec![("MAILBRIDGE_CONFIG", file.to_str().unwrap())];
    env.extend_from_slice(extra);
    (TestServer::start(&env).await, dir)
}

/// A Keycloak-rendered email of kind `template` to `to`, as tenant `tenant`.
async fn send(
    server: &TestServer,
    tenant: &str,
    template: &str,
    to: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let body = json!({"to": [{"email": to}], "template": template, "subject": "Hello",
                      "text": "Hello", "data": {"link": "https://sso.example/x", "linkExpiration": 5,
                      "realmName": "acme", "user": {"username": "ada"}}});
    server.post("/v1/messages", Some(tenant), &body).await
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> u64 {
    headers["retry-after"].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_kind_and_an_address_are_limited_separately() {
    let (server, _dir) = start(&[]).await;
    assert_eq!(
        send(&server, "acme", "email-verification", "ada@example.com")
            .await
            .0,
        202
    );
    // "Resend verification email" pressed again within the minute.
    let (status, headers, problem) =
        send(&server, "acme", "email-verification", "ada@EXAMPLE.com").await;
    assert_eq!(status, 429, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!((1..=60).contains(&retry_after(&headers)), "{headers:?}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("email-verification"),
        "{problem}"
    );
    assert!(
        !problem["detail"].as_str().unwrap().contains("ada@"),
        "no address in the problem"
    );
    // Another address, another kind: not limited by that.
    assert_eq!(
        send(&server, "acme", "email-verification", "grace@example.com")
            .await
            .0,
        202
    );
    assert_eq!(
        send(&server, "acme", "password-reset", "ada@example.com")
            .await
            .0,
        202
    );
    // The refused message spent nothing of the recipient's 3/hour: one more fits.
    assert_eq!(
        send(&server, "acme", "execute-actions", "ada@example.com")
            .await
            .0,
        202
    );
    let (status, headers, problem) =
        send(&server, "acme", "password-reset", "ada@example.com").await;
    assert_eq!(status, 429, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("recipient_rate"),
        "{problem}"
    );
    // 3/hour: a burst of 3, then one every 20 minutes.
    assert!(
        (1190..=1200).contains(&retry_after(&headers)),
        "{headers:?}"
    );
    // A tenant without limits is not limited.
    for _ in 0..3 {
        assert_eq!(
            send(&server, "other", "email-verification", "ada@example.com")
                .await
                .0,
            202
        );
    }

    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |limit: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("mailbridge_messages_limited_total{")
                    && l.contains(&format!("limit=\"{limit}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
    };
    assert_eq!(count("template").as_deref(), Some("1"), "{metrics}");
    assert_eq!(count("recipient").as_deref(), Some("1"), "{metrics}");
}

#[tokio::test]
async fn every_case_spelling_of_an_address_spends_one_budget() {
    let (server, _dir) = start(&[]).await;
    // recipient_rate 3/hour: three spellings of one address spend it.
    for to in ["ada@example.com", "Ada@example.com", "ADA@Example.com"] {
        assert_eq!(send(&server, "acme", "password-reset", to).await.0, 202);
    }
    let (status, _, problem) = send(&server, "acme", "execute-actions", "aDa@example.COM").await;
    assert_eq!(status, 429, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("recipient_rate"),
        "{problem}"
    );
    // email-verification 1/minute: another spelling is the same address.
    assert_eq!(
        send(&server, "acme", "email-verification", "Grace@example.com")
            .await
            .0,
        202
    );
    let (status, _, problem) =
        send(&server, "acme", "email-verification", "grace@example.com").await;
    assert_eq!(status, 429, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("email-verification"),
        "{problem}"
    );
}

#[tokio::test]
async fn cells_past_their_window_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailbridge.toml");
    std::fs::write(&file, "[tenants.acme]\nrecipient_rate = \"1/second\"\n").unwrap();
    let env = [("MAILBRIDGE_CONFIG", file.to_str().unwrap())];
    let server = TestServer::start_with(&env, |parts| {
        parts.prune_every = std::time::Duration::from_millis(100);
    })
    .await;
    let db = format!("sqlite://{}/mb.db?mode=ro", server.dir.path().display());
    let db = sqlx::SqlitePool::connect(&db).await.unwrap();
    let cells = || async {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM flow_limits")
            .fetch_one(&db)
            .await
            .unwrap();
        count
    };
    for to in ["ada@example.com", "grace@example.com"] {
        assert_eq!(send(&server, "acme", "password-reset", to).await.0, 202);
    }
    assert_eq!(cells().await, 2, "one cell per address, within its second");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while cells().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "cells past their window are never deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Forgotten, not broken: the address is limited afresh.
    assert_eq!(
        send(&server, "acme", "password-reset", "ada@example.com")
            .await
            .0,
        202
    );
    assert_eq!(
        send(&server, "acme", "password-reset", "ada@example.com")
            .await
            .0,
        429
    );
}

#[tokio::test]
async fn an_idempotent_repeat_is_answered_not_limited() {
    let (server, _dir) = start(&[]).await;
    let body = json!({"to": [{"email": "ada@example.com"}], "template": "email-verification",
                      "subject": "Verify", "text": "Verify", "idempotency_key": "kc-verify-1"});
    let (status, _, first) = server.post("/v1/messages", Some("acme"), &body).await;
    assert_eq!(status, 202, "{first}");
    // The extension retries once with the same key after a timeout.
    let (status, _, again) = server.post("/v1/messages", Some("acme"), &body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first["id"]);
    let mut other = body.clone();
    other["idempotency_key"] = json!("kc-verify-2");
    assert_eq!(
        server.post("/v1/messages", Some("acme"), &other).await.0,
        429
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgresql_share_the_limits() {
    let pg = Postgres::start();
    let url = pg.database();
    let env = [("MAILBRIDGE_DATABASE_URL", url.as_str())];
    let (a, _dir_a) = start(&env).await;
    let (b, _dir_b) = start(&env).await;
    assert_eq!(
        send(&a, "acme", "email-verification", "ada@example.com")
            .await
            .0,
        202
    );
    let (status, headers, problem) =
        send(&b, "acme", "email-verification", "ada@example.com").await;
    assert_eq!(status, 429, "the other replica knows: {problem}");
    assert!((1..=60).contains(&retry_after(&headers)));

    // Concurrent requests on both replicas: exactly one of each address's passes.
    let mut tasks = Vec::new();
    for i in 0..10 {
        for server in [&a, &b] {
            let body = json!({"to": [{"email": format!("user{i}@example.com")}], "template": "email-verification",
                              "subject": "Verify", "text": "Verify"});
            let (http, url, token) = (
                server.http.clone(),
                server.url("/v1/messages"),
                server.token(Some("acme"), false),
            );
            tasks.push(tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        10,
        "{statuses:?}"
    );
}
