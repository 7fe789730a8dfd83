//! Postmark as the black-box tests of delivery events use it: its send API
//! (answering the message id `pm-msg`) and its webhook posting an event to
//! transport `pm` with the basic-auth `webhook_key` `hooks:pm-pass`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::server::TestServer;

/// Postmark's send API, answering with the message id `pm-msg`.
pub async fn send_api() -> MockServer {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/email"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"MessageID": "pm-msg", "ErrorCode": 0, "Message": "OK"})),
        )
        .mount(&server)
        .await;
    server
}

/// Posts `event` as Postmark's webhook does to `POST /v1/events/pm`.
pub async fn post_event(server: &TestServer, event: &Value) -> reqwest::Response {
    server
        .http
        .post(server.url("/v1/events/pm"))
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode("hooks:pm-pass")),
        )
        .json(event)
        .send()
        .await
        .expect("the event is answered")
}
