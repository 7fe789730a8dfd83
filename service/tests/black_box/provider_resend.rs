//! Resend Emails API against a mock built from its API reference.

use crate::provider_support;

use std::time::Duration;

use provider_support::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "re_123456789_abcdefghijklmnop";
const DSN: &str = "resend+api://re_123456789_abcdefghijklmnop@default";

#[tokio::test]
async fn sends_every_field_with_idempotency_key_and_returns_id() {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let msg = message();
    let delivery = transport(DSN, &server).send(&msg).await.unwrap();
    assert_eq!(
        delivery.provider_message_id.as_deref(),
        Some("49a3999c-0ce1-4ea6-ab68-afcd6dc2e794")
    );

    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(
        header(&request, "idempotency-key"),
        Some(&*msg.id.to_string())
    );
    let body: Value = request.body_json().unwrap();
    let expected = json!({
        "from": "ACME <no-reply@acme.example>",
        "to": ["Ada Lovelace <ada@example.com>", "\"Hopper, Grace\" <grace@example.com>"],
        "cc": ["audit@acme.example"],
        "bcc": ["Archive <archive@acme.example>"],
        "reply_to": "ACME Support <support@acme.example>",
        "subject": "Reset your password",
        "text": msg.text.as_deref().unwrap(),
        "html": msg.html.as_deref().unwrap(),
        "headers": {"Message-ID": format!("<{}>", msg.message_id)},
        "tags": [
            {"name": "mailbridge-id", "value": msg.id.to_string()},
            {"name": "mailbridge-tenant", "value": "acme"},
            {"name": "realm", "value": "acme"},
            {"name": "keycloak", "value": "true"},
            {"name": "password-reset", "value": "true"}
        ]
    });
    assert_eq!(body, expected);
}

#[tokio::test]
async fn tags_are_sanitized_to_the_characters_resend_allows() {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "x"})))
        .mount(&server)
        .await;
    let mut msg = message();
    msg.tags = vec!["event: login error".into(), "ünïcode.tag".into()];
    msg.tenant = "acme.example".into();
    msg.metadata = [("user id".to_owned(), "ada@example.com".to_owned())].into();
    transport(DSN, &server).send(&msg).await.unwrap();
    let body: Value = only_request(&server).await.body_json().unwrap();
    assert_eq!(
        body["tags"],
        json!([
            {"name": "mailbridge-id", "value": msg.id.to_string()},
            {"name": "mailbridge-tenant", "value": "acme_example"},
            {"name": "user_id", "value": "ada_example_com"},
            {"name": "event__login_error", "value": "true"},
            {"name": "_n_code_tag", "value": "true"}
        ])
    );
}

#[tokio::test]
async fn concurrent_idempotent_request_is_transient() {
    let answer = ResponseTemplate::new(409).set_body_json(json!({
        "statusCode": 409,
        "name": "concurrent_idempotent_requests",
        "message": "Same idempotency key used while original request is still in progress."
    }));
    expect_transient(send_with_answer(DSN, answer).await);
}

#[tokio::test]
async fn reused_idempotency_key_with_other_payload_is_permanent() {
    let answer = ResponseTemplate::new(409).set_body_json(json!({
        "statusCode": 409,
        "name": "invalid_idempotent_request",
        "message": "Same idempotency key used with a different request payload."
    }));
    let message = expect_permanent(send_with_answer(DSN, answer).await);
    assert!(message.contains("different request payload"), "{message}");
}

#[tokio::test]
async fn rate_limit_with_retry_after_seconds_is_transient() {
    let answer = ResponseTemplate::new(429)
        .insert_header("ratelimit-limit", "2")
        .insert_header("ratelimit-remaining", "0")
        .insert_header("ratelimit-reset", "1")
        .insert_header("retry-after", "1")
        .set_body_json(json!({
            "statusCode": 429,
            "name": "rate_limit_exceeded",
            "message": "Too many requests. You can only make 2 requests per second."
        }));
    let retry_after = expect_transient(send_with_answer(DSN, answer).await);
    assert_eq!(retry_after, Some(Duration::from_secs(1)));
}

#[tokio::test]
async fn rate_limit_with_retry_after_date_is_transient() {
    let answer = ResponseTemplate::new(429).insert_header("Retry-After", http_date_in(600));
    assert_about(expect_transient(send_with_answer(DSN, answer).await), 600);
}

#[tokio::test]
async fn server_error_is_transient() {
    let answer = ResponseTemplate::new(500).set_body_json(json!({
        "statusCode": 500,
        "name": "internal_server_error",
        "message": "An unexpected error occurred."
    }));
    assert_eq!(expect_transient(send_with_answer(DSN, answer).await), None);
}

#[tokio::test]
async fn validation_error_is_permanent_with_resend_text() {
    let answer = ResponseTemplate::new(422).set_body_json(json!({
        "statusCode": 422,
        "name": "validation_error",
        "message": "Invalid `from` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format."
    }));
    let message = expect_permanent(send_with_answer(DSN, answer).await);
    assert!(message.contains("Invalid `from` field"), "{message}");
}

#[tokio::test]
async fn refused_key_is_permanent_and_never_echoed() {
    let answer = ResponseTemplate::new(403).set_body_json(json!({
        "statusCode": 403,
        "name": "invalid_api_key",
        "message": format!("API key is invalid: {KEY}")
    }));
    let message = expect_refused_credentials(send_with_answer(DSN, answer).await);
    assert!(message.contains("API key is invalid"), "{message}");
    assert!(!message.contains(KEY), "{message}");

    let answer = ResponseTemplate::new(401).set_body_json(json!({
        "statusCode": 401,
        "name": "restricted_api_key",
        "message": format!("This API key ({KEY}) is restricted to only send emails.")
    }));
    let message = expect_refused_credentials(send_with_answer(DSN, answer).await);
    assert!(
        message.contains("401") && message.contains("restricted"),
        "{message}"
    );
    assert!(!message.contains(KEY), "{message}");
}
