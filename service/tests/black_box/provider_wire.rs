//! The wire rules hold for provider APIs too: bodies reach the provider with
//! CRLF line ends only, and a body holding NUL is refused for good without
//! a request.

use crate::provider_support;

use mailbridge::transport::TransportError;
use provider_support::*;
use serde_json::Value;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const DSN: &str = "sendgrid+api://SG.test-key.secret-part@default";

async fn mock() -> MockServer {
    let server = MockServer::builder().start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn bodies_reach_the_provider_with_crlf_only() {
    let server = mock().await;
    let mut msg = message();
    msg.text = Some("d\r.\rMAIL FROM:<evil@attacker.example>\nlast\r\n".into());
    msg.html = Some("<p>a\rb</p>\n".into());
    transport(DSN, &server).send(&msg).await.unwrap();

    let body: Value = only_request(&server).await.body_json().unwrap();
    assert_eq!(
        body["content"][0]["value"],
        "d\r\n.\r\nMAIL FROM:<evil@attacker.example>\r\nlast\r\n"
    );
    assert_eq!(body["content"][1]["value"], "<p>a\r\nb</p>\r\n");
}

#[tokio::test]
async fn nul_is_refused_without_a_request() {
    let server = mock().await;
    let mut msg = message();
    msg.html = Some("<p>a\0b</p>".into());
    let err = transport(DSN, &server).send(&msg).await.unwrap_err();
    assert!(matches!(err, TransportError::Permanent { .. }), "{err:?}");
    assert!(err.detail().contains("NUL"), "{err}");
    assert!(server.received_requests().await.unwrap().is_empty());
}
