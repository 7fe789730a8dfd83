//! Mailgun Messages API against a mock built from its API reference.

use crate::provider_support;

use std::time::Duration;

use provider_support::*;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
const DSN: &str = "mailgun+api://key-3ax6xnjp29jd6fds4gc373sgvjxteol0:mg.acme.example@default";

#[tokio::test]
async fn sends_every_field_as_form_and_returns_queued_id() {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mg.acme.example/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "<20240101120000.1.ABCDEF@mg.acme.example>",
            "message": "Queued. Thank you."
        })))
        .expect(1)
        .mount(&server)
        .await;
    let msg = message();
    let delivery = transport(DSN, &server).send(&msg).await.unwrap();
    assert_eq!(
        delivery.provider_message_id.as_deref(),
        Some("20240101120000.1.ABCDEF@mg.acme.example")
    );

    let request = only_request(&server).await;
    assert_eq!(header(&request, "authorization"), Some(&*basic("api", KEY)));
    assert!(
        header(&request, "content-type")
            .unwrap()
            .starts_with("multipart/form-data")
    );
    let fields = form_fields(&request);
    assert_eq!(field(&fields, "from"), ["ACME <no-reply@acme.example>"]);
    assert_eq!(
        field(&fields, "to"),
        [
            "Ada Lovelace <ada@example.com>",
            "\"Hopper, Grace\" <grace@example.com>"
        ]
    );
    assert_eq!(field(&fields, "cc"), ["audit@acme.example"]);
    assert_eq!(field(&fields, "bcc"), ["Archive <archive@acme.example>"]);
    assert_eq!(field(&fields, "subject"), ["Reset your password"]);
    assert_eq!(field(&fields, "text"), [msg.text.as_deref().unwrap()]);
    assert_eq!(field(&fields, "html"), [msg.html.as_deref().unwrap()]);
    assert_eq!(
        field(&fields, "h:Reply-To"),
        ["ACME Support <support@acme.example>"]
    );
    assert_eq!(
        field(&fields, "h:Message-Id"),
        [format!("<{}>", msg.message_id).as_str()]
    );
    assert_eq!(field(&fields, "o:tag"), ["keycloak", "password-reset"]);
    assert_eq!(field(&fields, "v:realm"), ["acme"]);
    assert_eq!(
        field(&fields, "v:mailbridge-id"),
        [msg.id.to_string().as_str()]
    );
    assert_eq!(field(&fields, "v:mailbridge-tenant"), ["acme"]);
}

#[tokio::test]
async fn at_most_three_ascii_tags_are_sent() {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "<x@y>", "message": "Queued. Thank you."})),
        )
        .mount(&server)
        .await;
    let mut msg = message();
    msg.tags = ["a", "bé", "c", "d", "e"].map(String::from).to_vec();
    transport(DSN, &server).send(&msg).await.unwrap();
    let fields = form_fields(&only_request(&server).await);
    assert_eq!(field(&fields, "o:tag"), ["a", "c", "d"]);
}

#[tokio::test]
async fn eu_region_uses_the_eu_api() {
    let dsn = mailbridge::transport::Dsn::parse(&format!("{DSN}?region=eu")).unwrap();
    let shown = format!("{:?}", mailbridge::transport::from_dsn(&dsn).unwrap());
    assert!(
        shown.contains("https://api.eu.mailgun.net/v3/mg.acme.example/messages"),
        "{shown}"
    );
    let without_domain = mailbridge::transport::Dsn::parse("mailgun+api://key@default").unwrap();
    assert!(mailbridge::transport::from_dsn(&without_domain).is_err());
}

#[tokio::test]
async fn rate_limit_with_retry_after_seconds_is_transient() {
    let answer = ResponseTemplate::new(429)
        .insert_header("Retry-After", "30")
        .set_body_json(json!({"message": "Too many requests"}));
    let retry_after = expect_transient(send_with_answer(DSN, answer).await);
    assert_eq!(retry_after, Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn rate_limit_with_retry_after_date_is_transient() {
    let answer = ResponseTemplate::new(429).insert_header("Retry-After", http_date_in(300));
    assert_about(expect_transient(send_with_answer(DSN, answer).await), 300);
}

#[tokio::test]
async fn server_error_is_transient() {
    let answer = ResponseTemplate::new(503).set_body_string("Service Unavailable");
    assert_eq!(expect_transient(send_with_answer(DSN, answer).await), None);
}

#[tokio::test]
async fn bad_request_is_permanent_with_mailgun_text() {
    let answer = ResponseTemplate::new(400).set_body_json(json!({
        "message": "'to' parameter is not a valid address. please check documentation"
    }));
    let message = expect_permanent(send_with_answer(DSN, answer).await);
    assert!(
        message.contains("'to' parameter is not a valid address"),
        "{message}"
    );
}

#[tokio::test]
async fn refused_key_is_permanent_and_never_echoed() {
    // Mailgun answers a wrong key with a plain-text body.
    let answer = ResponseTemplate::new(401).set_body_string("Forbidden");
    let message = expect_refused_credentials(send_with_answer(DSN, answer).await);
    assert!(
        message.contains("Forbidden") && message.contains("401"),
        "{message}"
    );
    assert!(!message.contains(KEY), "{message}");
}
