//! `?wait=true` runs the worker's own attempt as a task of its own: a client
//! that goes away mid-send does not cut the delivery short, the message is
//! recorded once, and no worker takes it meanwhile.

mod common;
mod smtp_support;

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
