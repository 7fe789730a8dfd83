//! `mailbridge queue purge` against a running service: it deletes only the
//! tenant it is given, whatever that name holds; it says how many it deleted
//! and exits 1 when the service does not delete a message; a token refused
//! midway (expired) is minted again.

use crate::common;

use std::process::Output;
use std::time::Duration;

use common::server::TestServer;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A server whose transport refuses every connection: each message fails at its first attempt.
async fn start() -> TestServer {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dsn = format!("smtp://127.0.0.1:{closed}?tls=none");
    TestServer::start(&[
        ("MAILBRIDGE_TRANSPORT", &dsn),
        ("MAILBRIDGE_RETRY_MAX_ATTEMPTS", "1"),
    ])
    .await
}

/// `count` failed messages of `tenant`: their ids, oldest first.
async fn failed(server: &TestServer, tenant: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..count {
        let body = json!({"to": [{"email": "ada@example.com"}], "subject": "Hi", "text": "Hi"});
        let (status, _, answer) = server.post("/v1/messages", Some(tenant), &body).await;
        assert_eq!(status, 202, "{answer}");
        let id = answer["id"].as_str().unwrap().to_owned();
        server
            .wait_status(&id, "failed", Duration::from_secs(15))
            .await;
        ids.push(id);
    }
    ids
}

async fn purge(server: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mailbridge"))
        .args(["queue", "purge", "--server", server])
        .args(args)
        .env_clear()
        .env("MAILBRIDGE_JWT_SECRET", common::server::SECRET)
        .output()
        .await
        .unwrap()
}

async fn exists(server: &TestServer, id: &str) -> bool {
    let (status, _) = server
        .get(&format!("/v1/messages/{id}"), &server.token(None, true))
        .await;
    status == 200
}

#[tokio::test]
async fn a_tenant_whose_name_holds_an_ampersand_is_purged_alone() {
    // `--tenant 'R&D'` went unencoded: the service read `tenant=R` and the
    // purge deleted tenant R's messages instead.
    let server = start().await;
    let r = failed(&server, "R", 2).await;
    let r_and_d = failed(&server, "R&D", 2).await;
    let out = purge(&server.url(""), &["--tenant", "R&D"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("deleted 2 failed message(s)"), "{stdout}");
    for id in &r {
        assert!(exists(&server, id).await, "tenant R's {id} is kept");
    }
    for id in &r_and_d {
        assert!(!exists(&server, id).await, "tenant R&D's {id} is deleted");
    }
}

#[tokio::test]
async fn a_message_the_service_does_not_delete_stops_the_purge_with_exit_code_1() {
    // Every answer but 204 was skipped, and the purge exited 0.
    let server = start().await;
    let ids = failed(&server, "acme", 3).await;
    // The store refuses to delete the oldest (listed last).
    let db = format!("sqlite://{}/mb.db", server.dir.path().display());
    let other = sqlx::SqlitePool::connect(&db).await.unwrap();
    // A trigger takes no bound parameter; the id is the service's own UUID.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER refuse BEFORE DELETE ON messages WHEN OLD.id = '{}' \
         BEGIN SELECT RAISE(ABORT, 'refused'); END",
        ids[0]
    )))
    .execute(&other)
    .await
    .unwrap();
    other.close().await;
    let out = purge(&server.url(""), &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout} {stderr}");
    assert!(stdout.contains("deleted 2 failed message(s)"), "{stdout}");
    assert!(stderr.contains(&ids[0]), "{stderr}");
    assert!(exists(&server, &ids[0]).await);
    assert!(!exists(&server, &ids[2]).await);
}

#[tokio::test]
async fn a_token_refused_midway_is_minted_again_and_the_purge_goes_on() {
    // The admin token lived 60 s: a longer purge got 401s and skipped every
    // message after that. Waiting for a real token to expire takes 90 s
    // (60 s and the service's leeway), so a stand-in for the service
    // refuses the token the purge sends second.
    let service = MockServer::start().await;
    let rows = json!({"messages": [
        {"id": "0190aaaa-0000-7000-8000-000000000002", "status": "failed"},
        {"id": "0190aaaa-0000-7000-8000-000000000001", "status": "failed"},
    ], "next": null});
    Mock::given(method("GET"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(rows))
        .mount(&service)
        .await;
    let first_token = std::sync::Mutex::new(None::<String>);
    Mock::given(method("DELETE"))
        .respond_with(move |req: &Request| {
            let token = req.headers["authorization"].to_str().unwrap().to_owned();
            let mut first = first_token.lock().unwrap();
            let first = first.get_or_insert_with(|| token.clone());
            match (req.url.path().ends_with("002"), *first == token) {
                // The second message's DELETE with the first token: expired.
                (false, true) => ResponseTemplate::new(401),
                _ => ResponseTemplate::new(204),
            }
        })
        .mount(&service)
        .await;
    let out = purge(&service.uri(), &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("deleted 2 failed message(s)"), "{stdout}");
}
