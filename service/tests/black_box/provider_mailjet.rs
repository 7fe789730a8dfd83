//! Mailjet Send API v3.1 against a mock built from its API reference.

use crate::provider_support;

use std::time::Duration;

use provider_support::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const SECRET: &str = "0f9e8d7c6b5a49382716f5e4d3c2b1a0";
const DSN: &str =
    "mailjet+api://a1b2c3d4e5f60718293a4b5c6d7e8f90:0f9e8d7c6b5a49382716f5e4d3c2b1a0@default";

/// One message refused, in the shape of the v3.1 reference.
fn refused(status_code: u16, error_code: &str, text: &str) -> Value {
    json!({"Messages": [{
        "Status": "error",
        "Errors": [{
            "ErrorIdentifier": "f987008f-251a-4dff-8ffc-40f1583ad7bc",
            "ErrorCode": error_code,
            "StatusCode": status_code,
            "ErrorMessage": text,
            "ErrorRelatedTo": ["To[0].Email"]
        }]
    }]})
}

#[tokio::test]
async fn sends_every_field_and_returns_the_message_id() {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/v3.1/send"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"Messages": [{
                "Status": "success",
                "CustomID": "0192f1c4-7a3e-7cc1-9d2b-5c1e2f3a4b5c",
                "To": [{
                    "Email": "ada@example.com",
                    "MessageUUID": "123e4567-e89b-12d3-a456-426614174000",
                    "MessageID": 576460754655154659u64,
                    "MessageHref": "https://api.mailjet.com/v3/REST/message/576460754655154659"
                }],
                "Cc": [], "Bcc": []
            }]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let msg = message();
    let delivery = transport(DSN, &server).send(&msg).await.unwrap();
    assert_eq!(
        delivery.provider_message_id.as_deref(),
        Some("576460754655154659")
    );

    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        Some(&*basic(KEY, SECRET))
    );
    let body: Value = request.body_json().unwrap();
    let entry = &body["Messages"][0];
    assert_eq!(body["Messages"].as_array().unwrap().len(), 1);
    assert_eq!(
        entry["From"],
        json!({"Email": "no-reply@acme.example", "Name": "ACME"})
    );
    assert_eq!(
        entry["To"],
        json!([
            {"Email": "ada@example.com", "Name": "Ada Lovelace"},
            {"Email": "grace@example.com", "Name": "Hopper, Grace"}
        ])
    );
    assert_eq!(entry["Cc"], json!([{"Email": "audit@acme.example"}]));
    assert_eq!(
        entry["Bcc"],
        json!([{"Email": "archive@acme.example", "Name": "Archive"}])
    );
    assert_eq!(
        entry["ReplyTo"],
        json!({"Email": "support@acme.example", "Name": "ACME Support"})
    );
    assert_eq!(entry["Subject"], "Reset your password");
    assert_eq!(entry["TextPart"], msg.text.as_deref().unwrap());
    assert_eq!(entry["HTMLPart"], msg.html.as_deref().unwrap());
    assert_eq!(entry["CustomID"], msg.id.to_string());
    assert_eq!(
        entry["Headers"],
        json!({"Message-ID": format!("<{}>", msg.message_id)})
    );
    let payload: Value = serde_json::from_str(entry["EventPayload"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload,
        json!({
            "tags": ["keycloak", "password-reset"],
            "metadata": {
                "realm": "acme",
                "mailbridge-id": msg.id.to_string(),
                "mailbridge-tenant": "acme"
            }
        })
    );
}

#[tokio::test]
async fn error_inside_a_200_is_permanent() {
    let answer = ResponseTemplate::new(200).set_body_json(refused(
        400,
        "mj-0013",
        "\"ada@example\" is an invalid email address.",
    ));
    let message = expect_permanent(send_with_answer(DSN, answer).await);
    assert!(message.contains("mj-0013"), "{message}");
    assert!(message.contains("is an invalid email address"), "{message}");
}

#[tokio::test]
async fn error_inside_a_200_with_a_transient_status_code_is_transient() {
    let answer = ResponseTemplate::new(200).set_body_json(refused(
        500,
        "send-0005",
        "Internal error while sending the message.",
    ));
    expect_transient(send_with_answer(DSN, answer).await);
}

#[tokio::test]
async fn bad_request_is_permanent_with_mailjet_text() {
    let answer = ResponseTemplate::new(400).set_body_json(refused(
        400,
        "send-0003",
        "At least \"HTMLPart\", \"TextPart\" or \"TemplateID\" must be provided.",
    ));
    let message = expect_permanent(send_with_answer(DSN, answer).await);
    assert!(message.contains("send-0003"), "{message}");
    assert!(message.contains("must be provided"), "{message}");
}

#[tokio::test]
async fn rate_limit_with_retry_after_seconds_is_transient() {
    let answer = ResponseTemplate::new(429)
        .insert_header("Retry-After", "60")
        .set_body_json(json!({
            "ErrorIdentifier": "a1", "StatusCode": 429,
            "ErrorMessage": "Too many requests"
        }));
    let retry_after = expect_transient(send_with_answer(DSN, answer).await);
    assert_eq!(retry_after, Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn rate_limit_with_retry_after_date_is_transient() {
    let answer = ResponseTemplate::new(429).insert_header("Retry-After", http_date_in(90));
    assert_about(expect_transient(send_with_answer(DSN, answer).await), 90);
}

#[tokio::test]
async fn server_error_is_transient() {
    let answer = ResponseTemplate::new(500).set_body_json(json!({
        "ErrorIdentifier": "D4DF574C-0C5F-45C7-BA52-7AA8E533C3DE",
        "StatusCode": 500,
        "ErrorMessage": "Internal Server Error"
    }));
    assert_eq!(expect_transient(send_with_answer(DSN, answer).await), None);
}

#[tokio::test]
async fn refused_key_is_permanent_and_never_echoed() {
    let answer = ResponseTemplate::new(401).set_body_json(json!({
        "ErrorIdentifier": "b3cd2840-18a3-44c3-97e3-45a19029902f",
        "ErrorCode": "mj-0002",
        "StatusCode": 401,
        "ErrorMessage": format!("API key authentication/authorization failure. You may be unauthorized to access the API or your API key may be expired. Visit API keys management section to check your keys. ({KEY}:{SECRET})")
    }));
    let message = expect_refused_credentials(send_with_answer(DSN, answer).await);
    assert!(
        message.contains("authentication/authorization failure"),
        "{message}"
    );
    assert!(
        !message.contains(KEY) && !message.contains(SECRET),
        "{message}"
    );
}
