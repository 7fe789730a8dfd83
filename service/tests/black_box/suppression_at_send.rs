//! Suppression at send time: an address suppressed while a message to it
//! waits for its next attempt is not sent to. A message left with nobody
//! ends `suppressed` (its attempt history says so, the application hears
//! `message.suppressed`); a mixed one goes to the others and its
//! `message.sent` names who was left out. On SQLite and on PostgreSQL.

use crate::common;

use std::time::Duration;

use common::postgres::Postgres;
use common::server::TestServer;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Postmark, busy for the first two sends (429, "come back in 5 s"), and
/// the application's webhook endpoint.
async fn peers() -> MockServer {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/email"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "5")
                .set_body_json(json!({"ErrorCode": 405, "Message": "Too many requests"})),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/email"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"MessageID": "pm-msg", "ErrorCode": 0, "Message": "OK"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    server
}

async fn start(peers: &MockServer, database: Option<&str>) -> (TestServer, tempfile::TempDir) {
    let uri = peers.uri();
    let endpoint = percent_encoding::utf8_percent_encode(&uri, percent_encoding::NON_ALPHANUMERIC);
    let config = format!(
        r#"
[transports]
pm = "postmark+api://pm-token@default?endpoint={endpoint}"
[tenants.acme]
transport = "pm"
webhook_url = "{uri}/hooks"
webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailbridge.toml");
    std::fs::write(&file, config).unwrap();
    let mut env = vec![("MAILBRIDGE_CONFIG", file.to_str().unwrap())];
    if let Some(url) = database {
        env.push(("MAILBRIDGE_DATABASE_URL", url));
    }
    (TestServer::start(&env).await, dir)
}

async fn send(server: &TestServer, to: &[&str]) -> String {
    let to: Vec<Value> = to.iter().map(|e| json!({"email": e})).collect();
    let body = json!({"to": to, "subject": "Reset", "text": "Hi"});
    let (status, _, answer) = server.post("/v1/messages", Some("acme"), &body).await;
    assert_eq!((status, &answer["status"]), (202, &json!("queued")));
    answer["id"].as_str().unwrap().to_owned()
}

/// The bodies of the calls to `route`, as JSON.
async fn calls(peers: &MockServer, route: &str) -> Vec<Value> {
    let requests = peers.received_requests().await.unwrap();
    (requests.iter())
        .filter(|r| r.url.path() == route)
        .map(|r| r.body_json::<Value>().unwrap())
        .collect()
}

/// Waits until the application received the webhook of `kind` about `id`.
async fn webhook(peers: &MockServer, kind: &str, id: &str) -> Value {
    for _ in 0..200 {
        let found = (calls(peers, "/hooks").await.into_iter())
            .find(|hook| hook["type"] == kind && hook["data"]["message_id"] == id);
        if let Some(hook) = found {
            return hook;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {kind} webhook about {id}");
}

/// Messages to `ada@example.com` wait for their next attempt while the
/// address is suppressed as `listed` (its spelling, or another case's).
async fn suppressed_while_waiting(database: Option<&str>, listed: &str) {
    let peers = peers().await;
    let (server, _dir) = start(&peers, database).await;
    let only_ada = send(&server, &["ada@example.com"]).await;
    let mixed = send(&server, &["ada@example.com", "grace@example.com"]).await;
    for id in [&only_ada, &mixed] {
        server
            .wait_status(id, "retrying", Duration::from_secs(10))
            .await;
    }
    // A bounce of another message, or an administrator: Ada is suppressed now.
    server.suppress("acme", listed).await;

    let record = server
        .wait_status(&only_ada, "suppressed", Duration::from_secs(15))
        .await;
    assert_eq!(record["attempts"], 1, "the 429 counted, the check did not");
    assert!(
        (record["last_error"].as_str().unwrap()).contains("suppression list"),
        "{record}"
    );
    server
        .wait_status(&mixed, "sent", Duration::from_secs(15))
        .await;

    let sends = calls(&peers, "/email").await;
    let mut to: Vec<&str> = sends.iter().map(|s| s["To"].as_str().unwrap()).collect();
    // The two busy answers came in either order.
    let busy = to.len().min(2);
    to[..busy].sort_unstable();
    assert_eq!(
        to,
        [
            "ada@example.com",
            "ada@example.com, grace@example.com",
            "grace@example.com",
        ],
        "after the suppression nothing went to Ada"
    );
    let hook = webhook(&peers, "message.suppressed", &only_ada).await;
    assert_eq!(
        hook["data"]["suppressed_recipients"],
        json!(["ada@example.com"])
    );
    let hook = webhook(&peers, "message.sent", &mixed).await;
    assert_eq!(
        hook["data"]["suppressed_recipients"],
        json!(["ada@example.com"])
    );
}

#[tokio::test]
async fn a_recipient_suppressed_after_accept_is_not_sent_to() {
    suppressed_while_waiting(None, "ada@example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_suppressed_after_accept_is_not_sent_to_on_postgresql() {
    let pg = Postgres::start();
    suppressed_while_waiting(Some(&pg.database()), "ada@example.com").await;
}

#[tokio::test]
async fn a_recipient_suppressed_in_another_case_after_accept_is_not_sent_to() {
    suppressed_while_waiting(None, "ADA@Example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_suppressed_in_another_case_after_accept_is_not_sent_to_on_postgresql() {
    let pg = Postgres::start();
    suppressed_while_waiting(Some(&pg.database()), "Ada@example.com").await;
}
