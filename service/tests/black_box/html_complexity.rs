//! Deriving text from HTML is linear, runs off the async threads, and refuses
//! absurd nesting with 422 `html-too-complex` instead of stalling the service.

use crate::common;

use std::time::Duration;

use common::server::TestServer;
use serde_json::{Value, json};

/// 48,000 nested `<div>` (240 KB): seconds of work for a tree builder.
fn nested_divs() -> String {
    "<div>".repeat(48_000) + "reset" + &"</div>".repeat(48_000)
}

fn html_only(html: &str) -> Value {
    json!({"to": [{"email": "ada@example.com"}], "subject": "Hi", "html": html})
}

/// Answers within 5 s (instead of tens of seconds or never).
async fn within_5s<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not answer within 5 s"))
}

fn assert_too_complex(status: u16, body: &Value) {
    assert_eq!(status, 422, "{body}");
    let kind = body["type"].as_str().unwrap_or_default();
    assert!(kind.ends_with("/html-too-complex"), "{body}");
    assert!(
        !body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("reset"),
        "the detail does not echo the body: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_html_is_refused_at_once_by_messages_and_render() {
    let server = TestServer::start(&[]).await;
    let body = html_only(&nested_divs());
    let (status, _, answer) = within_5s(
        "POST /v1/messages",
        server.post("/v1/messages", None, &body),
    )
    .await;
    assert_too_complex(status, &answer);
    let (status, _, answer) =
        within_5s("POST /v1/render", server.post("/v1/render", None, &body)).await;
    assert_too_complex(status, &answer);
    // A message that brings its own text is not converted, so not refused.
    let mut with_text = body.clone();
    with_text["text"] = json!("Reset your password");
    let (status, _, answer) =
        within_5s("with text", server.post("/v1/messages", None, &with_text)).await;
    assert_eq!(status, 202, "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_heavy_html_arrives() {
    let server = TestServer::start(&[]).await;
    // More heavy requests than there are async threads.
    let heavy: Vec<_> = (0..3)
        .map(|_| {
            let http = server.http.clone();
            let url = server.url("/v1/messages");
            let token = server.token(None, false);
            let body = html_only(&nested_divs());
            tokio::spawn(async move { http.post(url).bearer_auth(token).json(&body).send().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = within_5s("/healthz", server.http.get(server.url("/healthz")).send()).await;
    assert_eq!(health.expect("healthz").status(), 200);
    for request in heavy {
        let answer = within_5s("a heavy request", request).await.expect("task");
        assert_eq!(answer.expect("answer").status(), 422);
    }
    server.stop().await;
}

#[tokio::test]
async fn html_only_messages_still_get_a_text_part_with_their_links() {
    let server = TestServer::start(&[]).await;
    let body = html_only(
        r#"<table><tr><td><p>Click <a href="https://id.example/reset?key=k1">here</a></p></td></tr></table>"#,
    );
    let (status, _, answer) = server.post("/v1/render", None, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["text"],
        "Click here <https://id.example/reset?key=k1>"
    );
    server.stop().await;
}
