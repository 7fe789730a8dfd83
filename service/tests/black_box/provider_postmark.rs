//! Postmark Email API against a mock built from its API reference.

use crate::provider_support;

use std::time::Duration;

use provider_support::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "b2a3c1d4-0000-4e5f-9a8b-7c6d5e4f3a2b";
const DSN: &str = "postmark+api://b2a3c1d4-0000-4e5f-9a8b-7c6d5e4f3a2b@default";

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "To": "ada@example.com",
        "SubmittedAt": "2024-01-01T12:00:00.0000000-05:00",
        "MessageID": "0a129aee-e1cd-480d-b08d-4f48548ff48d",
        "ErrorCode": 0,
        "Message": "OK"
    }))
}

#[tokio::test]
async fn sends_every_field_and_returns_message_id() {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/email"))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;
    let msg = message();
    let delivery = transport(DSN, &server).send(&msg).await.unwrap();
    assert_eq!(
        delivery.provider_message_id.as_deref(),
        Some("0a129aee-e1cd-480d-b08d-4f48548ff48d")
    );

    let request = only_request(&server).await;
    assert_eq!(header(&request, "x-postmark-server-token"), Some(TOKEN));
    assert_eq!(header(&request, "accept"), Some("application/json"));
    let body: Value = request.body_json().unwrap();
    let expected = json!({
        "From": "ACME <no-reply@acme.example>",
        "To": "Ada Lovelace <ada@example.com>, \"Hopper, Grace\" <grace@example.com>",
        "Cc": "audit@acme.example",
        "Bcc": "Archive <archive@acme.example>",
        "ReplyTo": "ACME Support <support@acme.example>",
        "Subject": "Reset your password",
        "TextBody": msg.text.as_deref().unwrap(),
        "HtmlBody": msg.html.as_deref().unwrap(),
        "Headers": [{"Name": "Message-ID", "Value": format!("<{}>", msg.message_id)}],
        "Tag": "keycloak",
        "Metadata": {
            "realm": "acme",
            "mailbridge-id": msg.id.to_string(),
            "mailbridge-tenant": "acme"
        },
        "MessageStream": "outbound"
    });
    assert_eq!(body, expected);
}

#[tokio::test]
async fn stream_option_selects_the_message_stream() {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .respond_with(accepted())
        .mount(&server)
        .await;
    let transport = transport(&format!("{DSN}?stream=password-resets"), &server);
    transport.send(&message()).await.unwrap();
    let body: Value = only_request(&server).await.body_json().unwrap();
    assert_eq!(body["MessageStream"], "password-resets");
}

#[tokio::test]
async fn inactive_recipient_is_permanent() {
    let answer = ResponseTemplate::new(422).set_body_json(json!({
        "ErrorCode": 406,
        "Message": "You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: ada@example.com."
    }));
    let message = expect_permanent(send_with_answer(DSN, answer).await);
    assert!(message.contains("ErrorCode 406"), "{message}");
    assert!(message.contains("marked as inactive"), "{message}");
}

#[tokio::test]
async fn error_code_in_a_200_is_not_taken_for_success() {
    let answer = ResponseTemplate::new(200).set_body_json(json!({
        "ErrorCode": 300,
        "Message": "Invalid 'From' address: 'no-reply@acme.example'."
    }));
    let message = expect_permanent(send_with_answer(DSN, answer).await);
    assert!(message.contains("Invalid 'From' address"), "{message}");
}

#[tokio::test]
async fn maintenance_error_code_is_transient() {
    let answer = ResponseTemplate::new(422)
        .set_body_json(json!({"ErrorCode": 100, "Message": "Maintenance"}));
    expect_transient(send_with_answer(DSN, answer).await);
}

#[tokio::test]
async fn rate_limit_with_retry_after_seconds_is_transient() {
    let answer = ResponseTemplate::new(429)
        .insert_header("Retry-After", "45")
        .set_body_json(json!({"ErrorCode": 429, "Message": "Rate limit exceeded"}));
    let retry_after = expect_transient(send_with_answer(DSN, answer).await);
    assert_eq!(retry_after, Some(Duration::from_secs(45)));
}

#[tokio::test]
async fn rate_limit_with_retry_after_date_is_transient() {
    let answer = ResponseTemplate::new(429).insert_header("Retry-After", http_date_in(60));
    assert_about(expect_transient(send_with_answer(DSN, answer).await), 60);
}

#[tokio::test]
async fn server_error_is_transient() {
    let answer = ResponseTemplate::new(500).set_body_string("Internal Server Error");
    assert_eq!(expect_transient(send_with_answer(DSN, answer).await), None);
}

#[tokio::test]
async fn refused_token_is_permanent_and_never_echoed() {
    let answer = ResponseTemplate::new(401).set_body_json(json!({
        "ErrorCode": 10,
        "Message": format!("The Server Token you provided in the X-Postmark-Server-Token request header was invalid: {TOKEN}")
    }));
    let message = expect_refused_credentials(send_with_answer(DSN, answer).await);
    assert!(
        message.contains("ErrorCode 10") && message.contains("was invalid"),
        "{message}"
    );
    assert!(!message.contains(TOKEN), "{message}");
}
