//! The suppression list: fed by hard bounces and complaints (tenant setting
//! `suppress`), managed by API and command line, and applied when a message
//! is accepted: suppressed recipients are left out, and a message with no
//! `to` recipient left is kept as `suppressed` and never reaches the provider.

use crate::common;

use common::server::TestServer;
use serde_json::{Value, json};
use wiremock::MockServer;

/// Tenants `acme` (default `suppress`), `quiet` (`suppress = []`) and
/// `complaints` (`suppress = ["complaint"]`), all through Postmark.
async fn start(mock: &MockServer) -> (TestServer, tempfile::TempDir) {
    let uri =
        percent_encoding::utf8_percent_encode(&mock.uri(), percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let config = format!(
        r#"
[transports]
pm = "postmark+api://pm-token@default?endpoint={uri}&webhook_key=hooks%3Apm-pass"
[tenants.acme]
transport = "pm"
[tenants.quiet]
transport = "pm"
suppress = []
[tenants.complaints]
transport = "pm"
suppress = ["complaint"]
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailbridge.toml");
    std::fs::write(&file, config).unwrap();
    let server = TestServer::start(&[("MAILBRIDGE_CONFIG", file.to_str().unwrap())]).await;
    (server, dir)
}

async fn send(server: &TestServer, tenant: &str, to: &[&str]) -> (u16, Value) {
    let to: Vec<Value> = to.iter().map(|e| json!({"email": e})).collect();
    let body = json!({"to": to, "subject": "Reset", "text": "Hi"});
    let (status, _, answer) = server.post("/v1/messages", Some(tenant), &body).await;
    (status, answer)
}

/// Sends tenant `acme`'s message to `to` and waits until it is sent: its id.
async fn delivered(server: &TestServer, to: &str) -> String {
    let (_, answer) = send(server, "acme", &[to]).await;
    let id = answer["id"].as_str().unwrap().to_owned();
    server
        .wait_status(&id, "sent", std::time::Duration::from_secs(10))
        .await;
    id
}

/// Postmark reports `record` about message `id` (its Metadata carries our id).
async fn report(server: &TestServer, id: &str, mut record: Value) {
    record["MessageID"] = json!("pm-msg");
    record["Metadata"] = json!({"mailbridge-id": id});
    let answer = common::postmark::post_event(server, &record).await;
    assert_eq!(answer.status(), 200);
}

fn hard_bounce(email: &str) -> Value {
    json!({"RecordType": "Bounce", "ID": rand_id(), "Type": "HardBounce", "Email": email,
           "BouncedAt": "2026-12-04T22:00:00Z", "Details": "550 5.1.1 unknown user"})
}

fn complaint(email: &str) -> Value {
    json!({"RecordType": "SpamComplaint", "ID": rand_id(), "Email": email, "BouncedAt": "2026-12-04T22:00:00Z"})
}

fn rand_id() -> u64 {
    u64::from(uuid::Uuid::new_v4().as_fields().0)
}

async fn sends_to_postmark(mock: &MockServer) -> Vec<Value> {
    mock.received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.body_json::<Value>().unwrap())
        .collect()
}

async fn list(server: &TestServer, tenant: &str) -> Vec<Value> {
    let (status, body) = server
        .get(
            &format!("/v1/suppressions?tenant={tenant}"),
            &server.token(None, true),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["suppressions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_bounce_reported_in_punycode_or_with_a_name_stops_mail_to_the_idn_address() {
    let mock = common::postmark::send_api().await;
    let (server, _dir) = start(&mock).await;
    for (to, reported) in [
        ("Ada@bücher.example", "Ada@xn--bcher-kva.example"),
        (
            "grace@bücher.example",
            "Grace Hopper <grace@BÜCHER.example>",
        ),
    ] {
        let first = delivered(&server, to).await;
        report(&server, &first, hard_bounce(reported)).await;
        let (status, answer) = send(&server, "acme", &[to]).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(
            answer["status"], "suppressed",
            "{to} reported as {reported}: {answer}"
        );
    }
    let listed: Vec<Value> = list(&server, "acme")
        .await
        .iter()
        .map(|e| e["email"].clone())
        .collect();
    assert!(listed.contains(&json!("ada@bücher.example")), "{listed:?}");
    assert!(
        listed.contains(&json!("grace@bücher.example")),
        "{listed:?}"
    );
}

#[tokio::test]
async fn a_bounce_spelled_in_another_case_stops_mail_to_every_spelling() {
    let mock = common::postmark::send_api().await;
    let (server, _dir) = start(&mock).await;
    // The provider lowercases the address the message went to, or writes
    // it in capitals: later mail to any spelling of it is suppressed.
    for (to, reported, later) in [
        (
            "Ada@Example.com",
            "ada@example.com",
            ["Ada@Example.com", "ada@example.com", "ADA@EXAMPLE.COM"],
        ),
        (
            "grace@example.com",
            "Grace@Example.COM",
            [
                "grace@example.com",
                "Grace@example.com",
                "GRACE@example.com",
            ],
        ),
    ] {
        let first = delivered(&server, to).await;
        report(&server, &first, hard_bounce(reported)).await;
        for spelling in later {
            let (status, answer) = send(&server, "acme", &[spelling]).await;
            assert_eq!(status, 202, "{answer}");
            assert_eq!(
                answer["status"], "suppressed",
                "{to} reported as {reported}, then sent to {spelling}: {answer}"
            );
        }
    }
    let mut listed: Vec<Value> = list(&server, "acme")
        .await
        .iter()
        .map(|e| e["email"].clone())
        .collect();
    listed.sort_by_key(|e| e.to_string());
    assert_eq!(
        listed,
        [json!("ada@example.com"), json!("grace@example.com")]
    );
    // Taken off by any spelling too.
    let gone = server
        .http
        .delete(server.url("/v1/suppressions/acme/Grace@EXAMPLE.com"))
        .bearer_auth(server.token(None, true))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    let (_, answer) = send(&server, "acme", &["grace@example.com"]).await;
    assert_eq!(answer["status"], "queued", "{answer}");
}

#[tokio::test]
async fn an_entry_kept_with_its_domain_in_punycode_is_removed_by_api_and_command_line() {
    let mock = common::postmark::send_api().await;
    let (server, _dir) = start(&mock).await;
    // Entries written before addresses were kept in Unicode: they still
    // suppress, and an administrator must be able to take them off.
    let db = format!("sqlite://{}/mb.db", server.dir.path().display());
    let other = sqlx::SqlitePool::connect(&db).await.unwrap();
    for email in ["ada@xn--bcher-kva.example", "grace@xn--bcher-kva.example"] {
        sqlx::query(
            "INSERT INTO suppressions (tenant, email, reason, created_at) \
             VALUES ('acme', ?, 'bounce', 0)",
        )
        .bind(email)
        .execute(&other)
        .await
        .unwrap();
    }
    other.close().await;
    let (_, answer) = send(&server, "acme", &["ada@bücher.example"]).await;
    assert_eq!(answer["status"], "suppressed", "{answer}");

    let gone = server
        .http
        .delete(server.url("/v1/suppressions/acme/ada@b%C3%BCcher.example"))
        .bearer_auth(server.token(None, true))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    let (_, answer) = send(&server, "acme", &["ada@bücher.example"]).await;
    assert_eq!(answer["status"], "queued", "sent again: {answer}");

    let removed = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailbridge"))
        .args([
            "suppressions",
            "remove",
            "acme",
            "grace@xn--bcher-kva.example",
        ])
        .args(["--server", &server.url("")])
        .env_clear()
        .env("MAILBRIDGE_JWT_SECRET", common::server::SECRET)
        .output()
        .await
        .unwrap();
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert!(list(&server, "acme").await.is_empty());
}

#[tokio::test]
async fn an_event_whose_suppression_failed_is_taken_again_when_the_provider_repeats_it() {
    let mock = common::postmark::send_api().await;
    let (server, _dir) = start(&mock).await;
    let first = delivered(&server, "ada@example.com").await;
    // The store refuses the suppression (a disk in trouble) for a while.
    let db = format!("sqlite://{}/mb.db", server.dir.path().display());
    let other = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON suppressions BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    .execute(&other)
    .await
    .unwrap();
    let mut bounce = hard_bounce("ada@example.com");
    bounce["MessageID"] = json!("pm-msg");
    bounce["Metadata"] = json!({"mailbridge-id": first});
    let answer = common::postmark::post_event(&server, &bounce).await;
    assert_eq!(answer.status(), 503, "not taken: the provider tries again");

    sqlx::query("DROP TRIGGER refuse")
        .execute(&other)
        .await
        .unwrap();
    other.close().await;
    let answer = common::postmark::post_event(&server, &bounce).await;
    assert_eq!(answer.status(), 200);
    let taken: Value = answer.json().await.unwrap();
    assert_eq!(taken["stored"], 1, "{taken}");
    let listed = list(&server, "acme").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["email"], "ada@example.com");
    let (status, _, answer) = server
        .post(
            "/v1/messages",
            Some("acme"),
            &json!({"to": [{"email": "ada@example.com"}], "subject": "Reset", "text": "Hi"}),
        )
        .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (202, Some("suppressed"))
    );
    // Once more from the provider: a repeat, nothing new.
    let answer = common::postmark::post_event(&server, &bounce).await;
    let repeated: Value = answer.json().await.unwrap();
    assert_eq!(repeated["repeated"], 1, "{repeated}");
}

#[tokio::test]
async fn a_message_stored_for_suppressed_recipients_is_never_answered_503() {
    let mock = common::postmark::send_api().await;
    let (server, _dir) = start(&mock).await;
    server.suppress("acme", "ada@example.com").await;
    // The store takes the message, then refuses to mark it suppressed.
    let db = format!("sqlite://{}/mb.db", server.dir.path().display());
    let other = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE UPDATE OF status ON messages WHEN NEW.status = 'suppressed' \
         BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    .execute(&other)
    .await
    .unwrap();
    let (status, answer) = send(&server, "acme", &["ada@example.com"]).await;
    // A 503 would tell Keycloak's extension nothing was stored, and it may
    // then send the email itself: to a suppressed address.
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "suppressed");
    let (status, stored) = server
        .get(
            &format!("/v1/messages/{}", answer["id"].as_str().unwrap()),
            &server.token(Some("acme"), false),
        )
        .await;
    assert_eq!(status, 200, "stored: {stored}");
    sqlx::query("DROP TRIGGER refuse")
        .execute(&other)
        .await
        .unwrap();
    other.close().await;
    assert!(sends_to_postmark(&mock).await.is_empty(), "never sent");
}

#[tokio::test]
async fn a_hard_bounce_stops_mail_to_that_address() {
    let mock = common::postmark::send_api().await;
    let (server, _dir) = start(&mock).await;
    let first = delivered(&server, "Ada@example.com").await;
    // The provider writes the domain in its own case.
    report(&server, &first, hard_bounce("Ada@EXAMPLE.com")).await;
    let listed = list(&server, "acme").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["email"], "ada@example.com");
    assert_eq!(listed[0]["reason"], "bounce");
    assert_eq!(listed[0]["message_id"], first);

    // Only suppressed recipients: 202 `suppressed`, kept, never sent.
    let (status, answer) = send(&server, "acme", &["Ada@Example.COM"]).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "suppressed");
    assert_eq!(answer["suppressed_recipients"], json!(["Ada@Example.COM"]));
    let record = server
        .wait_status(
            answer["id"].as_str().unwrap(),
            "suppressed",
            std::time::Duration::from_secs(1),
        )
        .await;
    assert_eq!(record["attempts"], 0);

    // Mixed: the others get it.
    let (status, answer) = send(&server, "acme", &["Ada@example.com", "grace@example.com"]).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "queued");
    assert_eq!(answer["suppressed_recipients"], json!(["Ada@example.com"]));
    server
        .wait_status(
            answer["id"].as_str().unwrap(),
            "sent",
            std::time::Duration::from_secs(10),
        )
        .await;
    // Every case spelling of the address is suppressed.
    let (_, other) = send(&server, "acme", &["ada@example.com"]).await;
    assert_eq!(other["status"], "suppressed", "{other}");

    let sent: Vec<Value> = sends_to_postmark(&mock)
        .await
        .iter()
        .map(|b| b["To"].clone())
        .collect();
    assert_eq!(sent, [json!("Ada@example.com"), json!("grace@example.com")]);
    // `?wait=true` names them too.
    let body = json!({"to": [{"email": "Ada@example.com"}, {"email": "grace@example.com"}], "subject": "Reset", "text": "Hi"});
    let (status, _, answer) = server
        .post("/v1/messages?wait=true", Some("acme"), &body)
        .await;
    assert_eq!(
        (status, answer["status"].clone()),
        (200, json!("sent")),
        "{answer}"
    );
    assert_eq!(answer["suppressed_recipients"], json!(["Ada@example.com"]));
    // Another tenant's list is its own.
    let (_, elsewhere) = send(&server, "quiet", &["Ada@example.com"]).await;
    assert_eq!(elsewhere["status"], "queued");
}

#[tokio::test]
async fn the_tenant_setting_chooses_what_suppresses() {
    let mock = common::postmark::send_api().await;
    let (server, _dir) = start(&mock).await;
    let (_, quiet) = send(&server, "quiet", &["ada@example.com"]).await;
    let quiet = quiet["id"].as_str().unwrap().to_owned();
    let (_, only) = send(&server, "complaints", &["ada@example.com"]).await;
    let only = only["id"].as_str().unwrap().to_owned();
    for id in [&quiet, &only] {
        server
            .wait_status(id, "sent", std::time::Duration::from_secs(10))
            .await;
    }
    report(&server, &quiet, hard_bounce("ada@example.com")).await;
    report(&server, &quiet, complaint("ada@example.com")).await;
    assert!(list(&server, "quiet").await.is_empty());

    report(&server, &only, hard_bounce("ada@example.com")).await;
    assert!(list(&server, "complaints").await.is_empty());
    // A soft bounce never suppresses.
    let mut soft = hard_bounce("ada@example.com");
    soft["Type"] = json!("SoftBounce");
    report(&server, &only, soft).await;
    assert!(list(&server, "complaints").await.is_empty());
    report(&server, &only, complaint("ada@example.com")).await;
    let listed = list(&server, "complaints").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["reason"], "complaint");
}

#[tokio::test]
async fn administrators_manage_the_list_by_api_and_command_line() {
    let mock = common::postmark::send_api().await;
    let (server, _dir) = start(&mock).await;
    let admin = server.token(None, true);
    let tenant_token = server.token(Some("acme"), false);
    let call = |method: reqwest::Method, path: &str, token: &str| {
        server
            .http
            .request(method, server.url(path))
            .bearer_auth(token)
            .send()
    };

    for (verb, path) in [
        (reqwest::Method::GET, "/v1/suppressions?tenant=acme"),
        (
            reqwest::Method::PUT,
            "/v1/suppressions/acme/bob@example.com",
        ),
        (
            reqwest::Method::DELETE,
            "/v1/suppressions/acme/bob@example.com",
        ),
    ] {
        let answer = call(verb, path, &tenant_token).await.unwrap();
        assert_eq!(answer.status(), 403, "{path}");
    }
    let put = call(
        reqwest::Method::PUT,
        "/v1/suppressions/acme/Bob@Example.com",
        &admin,
    )
    .await
    .unwrap();
    assert_eq!(put.status(), 201);
    let entry: Value = put.json().await.unwrap();
    assert_eq!(
        (entry["email"].clone(), entry["reason"].clone()),
        (json!("bob@example.com"), json!("manual"))
    );
    let again = call(
        reqwest::Method::PUT,
        "/v1/suppressions/acme/Bob@example.COM",
        &admin,
    )
    .await
    .unwrap();
    assert_eq!(again.status(), 200);
    let (_, answer) = send(&server, "acme", &["Bob@example.com"]).await;
    assert_eq!(answer["status"], "suppressed");

    for bad in [
        "/v1/suppressions/acme/not-an-address",
        "/v1/suppressions/acme%0A/bob@example.com",
    ] {
        let answer = call(reqwest::Method::PUT, bad, &admin).await.unwrap();
        assert_eq!(answer.status(), 400, "{bad}");
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
    }
    let gone = call(
        reqwest::Method::DELETE,
        "/v1/suppressions/acme/Bob@EXAMPLE.com",
        &admin,
    )
    .await
    .unwrap();
    assert_eq!(gone.status(), 204);
    let missing = call(
        reqwest::Method::DELETE,
        "/v1/suppressions/acme/Bob@example.com",
        &admin,
    )
    .await
    .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(list(&server, "acme").await.is_empty());

    // The command line goes through the same API (run without blocking the server).
    let url = server.url("");
    let cli = |args: &'static [&'static str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mailbridge"))
            .arg("suppressions")
            .args(args)
            .args(["--server", &url])
            .env_clear()
            .env("MAILBRIDGE_JWT_SECRET", common::server::SECRET)
            .output()
    };
    let added = cli(&["add", "acme", "carol@Example.com"]).await.unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let listed = cli(&["list", "--tenant", "acme"]).await.unwrap();
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success() && table.contains("carol@example.com") && table.contains("manual"),
        "{table}"
    );
    assert!(
        cli(&["remove", "acme", "carol@example.com"])
            .await
            .unwrap()
            .status
            .success()
    );
    let not_there = cli(&["remove", "acme", "carol@example.com"]).await.unwrap();
    assert_eq!(not_there.status.code(), Some(1));
    assert!(list(&server, "acme").await.is_empty());
}
