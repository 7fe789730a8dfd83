//! The message API against a real server: accept, deliver to the file outbox,
//! status, idempotency, `?wait=true`, render, admin endpoints.

use crate::common;

use std::time::Duration;

use common::server::{TestServer, split};
use serde_json::{Value, json};

fn plain(to: &str) -> Value {
    json!({
        "to": [{"email": to, "name": "Ada Lovelace"}],
        "from": {"email": "no-reply@acme.example", "name": "ACME"},
        "subject": "Hello Ada",
        "text": "Plain body",
        "html": "<p>HTML body</p>",
    })
}

fn outbox_files(server: &TestServer) -> Vec<String> {
    let dir = server.dir.path().join("outbox");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test]
async fn accepts_then_delivers_to_the_outbox() {
    let server = TestServer::start(&[]).await;
    let (status, _, body) = server
        .post("/v1/messages", Some("acme"), &plain("ada@example.com"))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    let id = body["id"].as_str().unwrap().to_owned();
    let record = server
        .wait_status(&id, "sent", Duration::from_secs(10))
        .await;
    assert_eq!(record["tenant"], "acme");
    assert_eq!(record["attempts"], 1);
    assert!(record["sent_at"].is_string());
    assert!(
        record.get("text").is_none() && record.get("html").is_none(),
        "no bodies in status: {record}"
    );
    let files = outbox_files(&server);
    assert_eq!(files.len(), 1);
    let eml = &files[0];
    assert!(eml.contains("Subject: Hello Ada"), "{eml}");
    assert!(
        eml.contains(&format!(
            "Message-ID: <{}@acme.example>",
            id.replace('-', "")
        )),
        "{eml}"
    );
    assert!(eml.contains("Ada Lovelace"), "{eml}");
    server.stop().await;
}

#[tokio::test]
async fn a_message_shows_the_realm_and_kind_it_was_sent_for() {
    let server = TestServer::start(&[]).await;
    let body = json!({
        "to": [{"email": "ada@example.com"}],
        "template": "password-reset",
        "data": {"link": "https://kc.example/reset?key=abc", "linkExpiration": 5, "realmName": "Acme", "user": {"username": "ada"}},
        "metadata": {"realm": "acme-prod"},
    });
    let (status, _, accepted) = server.post("/v1/messages", Some("acme"), &body).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap();
    let (status, record) = server
        .get(
            &format!("/v1/messages/{id}"),
            &server.token(Some("acme"), false),
        )
        .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["realm"], "acme-prod", "{record}");
    assert_eq!(record["kind"], "password-reset", "{record}");
    // Without trace export there is no trace to keep.
    assert!(record.get("traceparent").is_none(), "{record}");

    // A message with its own content and no metadata names neither.
    let plain = json!({"to": [{"email": "ada@example.com"}], "subject": "Hi", "text": "Hello"});
    let (_, _, accepted) = server.post("/v1/messages", Some("acme"), &plain).await;
    let (_, record) = server
        .get(
            &format!("/v1/messages/{}", accepted["id"].as_str().unwrap()),
            &server.token(Some("acme"), false),
        )
        .await;
    assert!(
        record.get("realm").is_none() && record.get("kind").is_none(),
        "{record}"
    );
    server.stop().await;
}

#[tokio::test]
async fn renders_the_shipped_template_in_the_users_language() {
    let server = TestServer::start(&[]).await;
    let body = json!({
        "to": [{"email": "ada@example.com"}],
        "template": "password-reset",
        "locale": "de-AT",
        "data": {"link": "https://kc.example/reset?key=abc", "linkExpiration": 5, "realmName": "acme", "user": {"username": "ada"}},
    });
    let (status, _, rendered) = server.post("/v1/render", Some("acme"), &body).await;
    assert_eq!(status, 200, "{rendered}");
    let html = rendered["html"].as_str().unwrap();
    assert!(
        html.contains("data-mailbridge-template=\"password-reset\""),
        "{html}"
    );
    assert!(
        rendered["text"]
            .as_str()
            .unwrap()
            .contains("https://kc.example/reset?key=abc")
    );
    // A language we have no strings for, with Keycloak's own content: that content is sent.
    let body = json!({
        "to": [{"email": "ada@example.com"}], "template": "password-reset", "locale": "ja",
        "subject": "パスワードのリセット", "text": "本文", "data": {"link": "https://kc.example/x"},
    });
    let (status, _, rendered) = server.post("/v1/render", Some("acme"), &body).await;
    assert_eq!(status, 200);
    assert_eq!(rendered["subject"], "パスワードのリセット");
    assert_eq!(rendered["text"], "本文");
    server.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_queues_once_per_tenant() {
    let server = TestServer::start(&[]).await;
    let mut body = plain("ada@example.com");
    body["idempotency_key"] = json!("kc-123");
    let (s1, _, first) = server.post("/v1/messages", Some("acme"), &body).await;
    let (s2, _, second) = server.post("/v1/messages", Some("acme"), &body).await;
    assert_eq!((s1, s2), (202, 200));
    assert_eq!(first["id"], second["id"]);
    // The header works too, and another tenant has its own keys.
    let resp = server
        .http
        .post(server.url("/v1/messages"))
        .bearer_auth(server.token(Some("other"), false))
        .header("Idempotency-Key", "kc-123")
        .json(&plain("ada@example.com"))
        .send()
        .await
        .unwrap();
    let (s3, _, third) = split(resp).await;
    assert_eq!(s3, 202);
    assert_ne!(third["id"], first["id"]);
    server
        .wait_status(
            first["id"].as_str().unwrap(),
            "sent",
            Duration::from_secs(10),
        )
        .await;
    server
        .wait_status(
            third["id"].as_str().unwrap(),
            "sent",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(outbox_files(&server).len(), 2, "the repeat queued nothing");
    server.stop().await;
}

#[tokio::test]
async fn wait_reports_delivery_or_the_transports_real_error() {
    let server = TestServer::start(&[]).await;
    let (status, _, body) = server
        .post("/v1/messages?wait=true", None, &plain("ada@example.com"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "sent");
    assert_eq!(outbox_files(&server).len(), 1);
    server.stop().await;

    // Nothing listens on this port: the answer is a 502 with the transport's error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dsn = format!("smtp://127.0.0.1:{closed}?tls=none");
    let server = TestServer::start(&[("MAILBRIDGE_TRANSPORT", &dsn)]).await;
    let (status, headers, problem) = server
        .post("/v1/messages?wait=true", None, &plain("ada@example.com"))
        .await;
    assert_eq!(status, 502, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("will be retried"),
        "{problem}"
    );
    server.stop().await;
}

#[tokio::test]
async fn admin_lists_and_retries_failed_messages() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dsn = format!("smtp://127.0.0.1:{closed}?tls=none");
    let server = TestServer::start(&[
        ("MAILBRIDGE_TRANSPORT", &dsn),
        ("MAILBRIDGE_RETRY_MAX_ATTEMPTS", "2"),
    ])
    .await;
    let (_, _, body) = server
        .post("/v1/messages", Some("acme"), &plain("ada@example.com"))
        .await;
    let id = body["id"].as_str().unwrap().to_owned();
    let record = server
        .wait_status(&id, "failed", Duration::from_secs(15))
        .await;
    assert_eq!(record["attempts"], 2);
    assert!(record["last_error"].as_str().unwrap().len() > 3);

    let tenant_token = server.token(Some("acme"), false);
    let (status, _) = server
        .get("/v1/messages?status=failed", &tenant_token)
        .await;
    assert_eq!(status, 403, "listing is for admins");
    let admin = server.token(None, true);
    let (status, page) = server
        .get("/v1/messages?status=failed&tenant=acme", &admin)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["messages"][0]["id"], id.as_str());
    let (status, _) = server.get("/v1/messages?status=bogus", &admin).await;
    assert_eq!(status, 400);

    let retry = server.url(&format!("/v1/messages/{id}/retry"));
    let resp = server
        .http
        .post(&retry)
        .bearer_auth(&tenant_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = server
        .http
        .post(&retry)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Another tenant cannot even see it.
    let (status, _) = server
        .get(
            &format!("/v1/messages/{id}"),
            &server.token(Some("other"), false),
        )
        .await;
    assert_eq!(status, 404);

    // Retried, it fails again; then an admin deletes it.
    server
        .wait_status(&id, "failed", Duration::from_secs(15))
        .await;
    let target = server.url(&format!("/v1/messages/{id}"));
    let resp = server
        .http
        .delete(&target)
        .bearer_auth(&tenant_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = server
        .http
        .delete(&target)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, _) = server.get(&format!("/v1/messages/{id}"), &admin).await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let server = TestServer::start(&[]).await;
    let resp = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_reached_rate_limit_delays_sending_but_not_accepting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mb.toml");
    std::fs::write(&path, "[tenants.acme]\nrate = \"1/minute\"\n").unwrap();
    let server = TestServer::start(&[("MAILBRIDGE_CONFIG", path.to_str().unwrap())]).await;
    let (s1, _, first) = server
        .post("/v1/messages", Some("acme"), &plain("ada@example.com"))
        .await;
    let (s2, _, second) = server
        .post("/v1/messages", Some("acme"), &plain("bob@example.com"))
        .await;
    assert_eq!(
        (s1, s2),
        (202, 202),
        "accepting is never refused by a rate limit"
    );
    server
        .wait_status(
            first["id"].as_str().unwrap(),
            "sent",
            Duration::from_secs(10),
        )
        .await;
    let held = server
        .wait_status(
            second["id"].as_str().unwrap(),
            "retrying",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        held["attempts"], 0,
        "waiting for a limit is not an attempt: {held}"
    );
    assert!(held["next_attempt_at"].is_string(), "{held}");
    // Another tenant is not held back by acme's limit.
    let (_, _, other) = server
        .post("/v1/messages", Some("globex"), &plain("eve@example.com"))
        .await;
    server
        .wait_status(
            other["id"].as_str().unwrap(),
            "sent",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(outbox_files(&server).len(), 2);
    server.stop().await;
}
