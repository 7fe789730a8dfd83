//! `?wait=true` runs the worker's own attempt as a task of its own: a client
//! that goes away mid-send does not cut the delivery short, the message is
//! recorded once, and no worker takes it meanwhile; a client that leaves
//! while its message commits does not leave it claimed with no attempt (nor
//! a message to suppressed recipients only claimed and never settled).

use crate::common;
use crate::smtp_support;

use std::time::Duration;

use common::server::TestServer;
use serde_json::json;
use smtp_support::SmtpPeer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_does_not_cut_the_delivery_short() {
    // The server takes two seconds to answer the message's DATA.
    let peer = SmtpPeer::start(&["--stall-data", "2"]).await;
    let dsn = format!("smtp://127.0.0.1:{}?tls=none", peer.port);
    let server = TestServer::start(&[("MAILBRIDGE_TRANSPORT", dsn.as_str())]).await;
    let body = json!({
        "to": [{"email": "ada@example.com"}],
        "subject": "Test connection",
        "text": "hello",
        "idempotency_key": "kc-test-connection-1",
    });
    let gone = server
        .http
        .post(server.url("/v1/messages?wait=true"))
        .bearer_auth(server.token(None, false))
        .json(&body)
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up before the answer");

    // The same key again finds the message, still in its first attempt.
    let (status, _, answer) = server.post("/v1/messages", None, &body).await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();
    let record = server
        .wait_status(&id, "sent", Duration::from_secs(15))
        .await;
    assert_eq!(record["attempts"], 1, "{record}");
    // Let any second attempt show itself.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(peer.received().len(), 1, "delivered once");
    server.stop().await;
}

/// Sends 300 messages from clients that give up after 0.5 to 10 ms: before,
/// during and after their message's commit. Answers how many were answered.
async fn clients_that_leave(server: &TestServer, path: &str, to: &str) -> i64 {
    let token = server.token(Some("acme"), false);
    let mut clients = Vec::new();
    for n in 0..300u64 {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_micros(500 + (n % 40) * 250))
            .build()
            .unwrap();
        let request = http
            .post(server.url(path))
            .bearer_auth(&token)
            .json(&json!({
                "to": [{"email": to.replace('N', &n.to_string())}],
                "subject": "Hi",
                "text": "Hello",
                "idempotency_key": format!("left-{n}"),
            }));
        clients.push(tokio::spawn(async move { request.send().await.is_ok() }));
    }
    let mut answered = 0;
    for client in clients {
        answered += i64::from(client.await.unwrap());
    }
    answered
}

/// Waits (up to 10 s) until every stored message has `status`, and checks
/// that some client left after its message was stored (else the test
/// proves nothing) and that every stored message got there.
async fn assert_all_reach(server: &TestServer, status: &str, answered: i64) {
    let db = format!("sqlite://{}/mb.db?mode=ro", server.dir.path().display());
    let db = sqlx::SqlitePool::connect(&db).await.unwrap();
    let mut counts = (0, 0);
    for _ in 0..200 {
        counts = sqlx::query_as::<_, (i64, i64)>(
            "SELECT count(*), count(*) FILTER (WHERE status = ?) FROM messages",
        )
        .bind(status)
        .fetch_one(&db)
        .await
        .unwrap();
        if counts.0 == counts.1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.close().await;
    let (stored, reached) = counts;
    assert!(
        stored > answered,
        "no client left while its message was stored ({stored} stored, {answered} answered): the test proves nothing"
    );
    assert_eq!(
        reached, stored,
        "{stored} stored, {answered} answered, only {reached} {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_clients_that_left_while_they_committed_are_still_attempted_at_once() {
    // `?wait=true` stores the message claimed. A lease far longer than the
    // test: a message stored claimed with no attempt would wait for it.
    let server = TestServer::start(&[("MAILBRIDGE_LEASE", "10m")]).await;
    let answered = clients_that_leave(&server, "/v1/messages?wait=true", "userN@example.com").await;
    assert_all_reach(&server, "sent", answered).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_suppressed_messages_of_clients_that_left_are_still_settled_at_once() {
    // A message to suppressed addresses only is stored claimed, then
    // settled as `suppressed`.
    let server = TestServer::start(&[("MAILBRIDGE_LEASE", "10m")]).await;
    server.suppress("acme", "ada@example.com").await;
    let answered = clients_that_leave(&server, "/v1/messages", "ada@example.com").await;
    assert_all_reach(&server, "suppressed", answered).await;
    server.stop().await;
}
