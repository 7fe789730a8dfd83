//! `microsoftgraph+api://` against a mock of Entra's token endpoint and Graph's
//! `sendMail`, built from Microsoft's published API reference.

use std::time::Duration;

use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::transport::{Dsn, SharedTransport, TransportError, from_dsn};
use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SEND_PATH: &str = "/v1.0/users/no-reply@acme.example/sendMail";

fn transport(server: &MockServer) -> SharedTransport {
    let uri = server.uri();
    let dsn = format!(
        "microsoftgraph+api://app-id:s3cr%3Et@default?tenant=T&user=no-reply%40acme.example&endpoint={uri}&token_url={uri}/T/oauth2/v2.0/token"
    );
    from_dsn(&Dsn::parse(&dsn).unwrap()).unwrap()
}

fn message() -> OutgoingMessage {
    OutgoingMessage {
        id: "0190a3c4-0000-7000-8000-000000000001".parse().unwrap(),
        tenant: "acme".into(),
        message_id: "0190a3c4@acme.example".into(),
        from: Mailbox {
            email: "no-reply@acme.example".into(),
            name: Some("ACME".into()),
        },
        envelope_from: None,
        reply_to: Some(Mailbox::new("support@acme.example")),
        to: vec![Mailbox {
            email: "ada@example.com".into(),
            name: Some("Ada Lovelace".into()),
        }],
        cc: vec![Mailbox::new("cc@example.com")],
        bcc: vec![Mailbox::new("hidden@example.com")],
        subject: "Reset your password".into(),
        text: Some("Follow the link.".into()),
        html: Some("<p>Follow the link.</p>".into()),
        tags: vec![],
        metadata: Default::default(),
    }
}

/// The token endpoint hands out `tokens` in turn, one per request.
async fn token_endpoint(server: &MockServer, tokens: &[&str]) {
    for (i, token) in tokens.iter().enumerate() {
        Mock::given(method("POST"))
            .and(path("/T/oauth2/v2.0/token"))
            .and(body_string_contains("grant_type=client_credentials"))
            .and(body_string_contains("client_id=app-id"))
            .and(body_string_contains("client_secret=s3cr%3Et"))
            .and(body_string_contains(
                "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token}),
            ))
            .up_to_n_times(1)
            .with_priority(u8::try_from(i + 1).unwrap())
            .expect(1)
            .mount(server)
            .await;
    }
}

fn send_mail(token: &str, answer: ResponseTemplate) -> Mock {
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(answer)
}

fn sends(requests: &[Request]) -> Vec<&Request> {
    requests
        .iter()
        .filter(|r| r.url.path() == SEND_PATH)
        .collect()
}

#[tokio::test]
async fn sends_the_documented_body_and_reuses_the_token() {
    let server = MockServer::builder().start().await;
    token_endpoint(&server, &["tok-1"]).await;
    send_mail("tok-1", ResponseTemplate::new(202))
        .expect(2)
        .mount(&server)
        .await;

    let graph = transport(&server);
    assert_eq!(
        graph.send(&message()).await.unwrap().provider_message_id,
        None
    );
    graph.send(&message()).await.unwrap();
    assert_eq!(graph.token_fetches(), Some(1), "one token for both sends");

    let requests = server.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&sends(&requests)[0].body).unwrap();
    let address = |a: &str| json!({"emailAddress": {"address": a}});
    assert_eq!(
        body,
        json!({
            "message": {
                "subject": "Reset your password",
                "body": {"contentType": "HTML", "content": "<p>Follow the link.</p>"},
                "from": {"emailAddress": {"address": "no-reply@acme.example", "name": "ACME"}},
                "toRecipients": [{"emailAddress": {"address": "ada@example.com", "name": "Ada Lovelace"}}],
                "ccRecipients": [address("cc@example.com")],
                "bccRecipients": [address("hidden@example.com")],
                "replyTo": [address("support@acme.example")],
                "internetMessageId": "<0190a3c4@acme.example>",
                "internetMessageHeaders": [
                    {"name": "X-Mailbridge-Id", "value": "0190a3c4-0000-7000-8000-000000000001"}
                ]
            },
            "saveToSentItems": false
        })
    );
}

#[tokio::test]
async fn text_only_messages_go_as_text() {
    let server = MockServer::builder().start().await;
    token_endpoint(&server, &["tok-1"]).await;
    send_mail("tok-1", ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    let mut msg = message();
    msg.html = None;
    transport(&server).send(&msg).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&sends(&requests)[0].body).unwrap();
    assert_eq!(
        body["message"]["body"],
        json!({"contentType": "Text", "content": "Follow the link."})
    );
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once_and_the_message_sent() {
    let server = MockServer::builder().start().await;
    token_endpoint(&server, &["stale", "fresh"]).await;
    let expired = json!({"error": {"code": "InvalidAuthenticationToken", "message": "Lifetime validation failed"}});
    send_mail("stale", ResponseTemplate::new(401).set_body_json(expired))
        .expect(1)
        .mount(&server)
        .await;
    send_mail("fresh", ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;

    let graph = transport(&server);
    graph.send(&message()).await.unwrap();
    assert_eq!(
        graph.token_fetches(),
        Some(2),
        "the refused token was replaced"
    );
}

#[tokio::test]
async fn a_token_refused_twice_is_an_auth_failure_after_one_retry() {
    let server = MockServer::builder().start().await;
    token_endpoint(&server, &["tok-1", "tok-2"]).await;
    let denied = json!({"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}});
    for token in ["tok-1", "tok-2"] {
        send_mail(
            token,
            ResponseTemplate::new(403).set_body_json(denied.clone()),
        )
        .expect(1)
        .mount(&server)
        .await;
    }
    let err = transport(&server).send(&message()).await.unwrap_err();
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    assert!(err.detail().contains("ErrorAccessDenied"), "{err}");
}

#[tokio::test]
async fn a_from_the_mailbox_may_not_send_as_is_permanent_and_keeps_the_token() {
    let server = MockServer::builder().start().await;
    token_endpoint(&server, &["tok-1"]).await;
    let denied = json!({"error": {"code": "ErrorSendAsDenied",
        "message": "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account."}});
    send_mail("tok-1", ResponseTemplate::new(403).set_body_json(denied))
        .expect(1)
        .mount(&server)
        .await;
    let graph = transport(&server);
    let err = graph.send(&message()).await.unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Permanent {
                credentials: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_about_the_message(), "{err:?}");
    assert_eq!(graph.token_fetches(), Some(1), "the token is kept");
}

#[tokio::test]
async fn throttling_is_transient_with_retry_after() {
    let server = MockServer::builder().start().await;
    token_endpoint(&server, &["tok-1"]).await;
    let throttled = json!({"error": {"code": "ApplicationThrottled", "message": "Application is over its MailboxConcurrency limit."}});
    send_mail(
        "tok-1",
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "38")
            .set_body_json(throttled),
    )
    .expect(1)
    .mount(&server)
    .await;
    let err = transport(&server).send(&message()).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(38)), "{err}");
    assert!(err.detail().contains("ApplicationThrottled"), "{err}");
}

#[tokio::test]
async fn an_invalid_recipient_is_permanent() {
    let server = MockServer::builder().start().await;
    token_endpoint(&server, &["tok-1"]).await;
    let invalid = json!({"error": {"code": "ErrorInvalidRecipients", "message": "At least one recipient isn't valid."}});
    send_mail("tok-1", ResponseTemplate::new(400).set_body_json(invalid))
        .expect(1)
        .mount(&server)
        .await;
    let err = transport(&server).send(&message()).await.unwrap_err();
    assert!(matches!(err, TransportError::Permanent { .. }), "{err}");
}

#[tokio::test]
async fn a_refused_client_secret_is_an_auth_failure_without_the_secret() {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/T/oauth2/v2.0/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided."
        })))
        .mount(&server)
        .await;
    let err = transport(&server).send(&message()).await.unwrap_err();
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    assert!(err.detail().contains("invalid_client"), "{err}");
    assert!(!err.detail().contains("s3cr>t"), "{err}");
    assert!(sends(&server.received_requests().await.unwrap()).is_empty());
}
