//! SMTP bounces: with `verp`, a real SMTP server sees each message's own
//! envelope sender (`bounces+<id>@acme.example`); the delivery status
//! notification that comes back there, posted raw by the mail server's pipe
//! to `/v1/events/{transport}` with the transport's basic-auth `webhook_key`,
//! is read (RFC 3464) and treated like a provider's bounce.

use crate::common;
use crate::smtp_support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::server::TestServer;
use serde_json::json;
use smtp_support::SmtpPeer;

/// A Postfix-style report (RFC 3464) sent to `to` about `message_id`, ada's
/// address refused.
fn report(to: &str, message_id: &str, report_id: &str) -> String {
    report_for("ada@example.com", to, message_id, report_id)
}

/// The same report, `recipient`'s address refused.
fn report_for(recipient: &str, to: &str, message_id: &str, report_id: &str) -> String {
    format!(
        "Return-Path: <>\r\nDelivered-To: {to}\r\nFrom: MAILER-DAEMON@mx.acme.example (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\nTo: {to}\r\nMessage-Id: <{report_id}@mx.acme.example>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B1/mx.acme.example\"\r\n\r\n\
--B1/mx.acme.example\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nYour message could not be delivered.\r\n\r\n\
--B1/mx.acme.example\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.acme.example\r\n\
Arrival-Date: Fri, 4 Dec 2026 21:59:58 +0000\r\n\r\nFinal-Recipient: rfc822; {recipient}\r\nAction: failed\r\n\
Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown\r\n\r\n\
--B1/mx.acme.example\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: ACME <no-reply@acme.example>\r\n\
To: {recipient}\r\nSubject: Verify\r\nMessage-ID: {message_id}\r\n\r\n--B1/mx.acme.example--\r\n"
    )
}

async fn post(server: &TestServer, credentials: &str, body: String) -> (u16, serde_json::Value) {
    let answer = server
        .http
        .post(server.url("/v1/events/default"))
        .header("content-type", "message/rfc822")
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(credentials)),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, _, body) = common::server::split(answer).await;
    (status, body)
}

/// A real SMTP server, and the service sending to it with VERP and taking
/// bounce reports with the pipe's credentials `pipe:s3cret`.
async fn start() -> (SmtpPeer, TestServer) {
    let peer = SmtpPeer::start(&[]).await;
    let dsn = format!(
        "smtp://127.0.0.1:{}?tls=none&verp=bounces%40acme.example&webhook_key=pipe%3As3cret",
        peer.port
    );
    let server = TestServer::start(&[("MAILBRIDGE_TRANSPORT", &dsn)]).await;
    (peer, server)
}

#[tokio::test]
async fn a_bounce_email_comes_back_as_a_delivery_event() {
    let (peer, server) = start().await;
    let body = json!({"to": [{"email": "ada@example.com"}], "subject": "Verify", "text": "Hi"});
    let (_, _, first) = server.post("/v1/messages?wait=true", None, &body).await;
    let first = first["id"].as_str().unwrap().to_owned();
    let (_, _, second) = server.post("/v1/messages?wait=true", None, &body).await;
    let second = second["id"].as_str().unwrap().to_owned();
    // Each message left with its own envelope sender.
    let senders: Vec<String> = peer
        .received()
        .iter()
        .map(|r| r.mail_from.clone())
        .collect();
    let tag = |id: &str| format!("bounces+{}@acme.example", id.replace('-', ""));
    assert_eq!(senders, [tag(&first), tag(&second)]);

    // The report names the message by the address it came back to only.
    let by_verp = report(&tag(&first), "<unknown@elsewhere.example>", "R1");
    assert_eq!(post(&server, "pipe:wrong", by_verp.clone()).await.0, 401);
    let (status, answer) = post(&server, "pipe:s3cret", by_verp.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stored"], 1);
    let (_, record) = server
        .get(&format!("/v1/messages/{first}"), &server.token(None, true))
        .await;
    assert_eq!(record["delivery"]["type"], "bounced");
    assert_eq!(record["delivery"]["bounce"], "hard");
    assert_eq!(record["delivery"]["recipient"], "ada@example.com");
    // Posted twice by the pipe: stored once.
    assert_eq!(post(&server, "pipe:s3cret", by_verp).await.1["repeated"], 1);

    // Without VERP, our Message-ID in the returned headers names it.
    let ours = format!("<{}@localhost>", second.replace('-', ""));
    let (_, answer) = post(
        &server,
        "pipe:s3cret",
        report("bounces@acme.example", &ours, "R2"),
    )
    .await;
    assert_eq!(answer["stored"], 1, "{answer}");
    // The address is suppressed now: the next message is not sent.
    let (_, _, third) = server.post("/v1/messages", None, &body).await;
    assert_eq!(third["status"], "suppressed");
    // Not a report: 400, not 500.
    let (status, _) = post(&server, "pipe:s3cret", "Subject: hi\r\n\r\nhello".into()).await;
    assert_eq!(status, 400);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(peer.received().len(), 2);
}

/// Anyone who received one of the tenant's emails knows its `Message-ID`
/// and its VERP address, and can send a "bounce" there naming someone
/// else. Such a report must not suppress (or flag in Keycloak) an address
/// the message was not sent to; a report naming its own recipient still
/// counts, however the server spells the address.
#[tokio::test]
async fn a_bounce_naming_an_address_its_message_did_not_go_to_is_dropped() {
    let (_peer, server) = start().await;
    let to = |email: &str| json!({"to": [{"email": email}], "subject": "Verify", "text": "Hi"});
    let (_, _, own) = server
        .post("/v1/messages?wait=true", None, &to("mallory@example.net"))
        .await;
    let own = own["id"].as_str().unwrap().to_owned();
    let verp = format!("bounces+{}@acme.example", own.replace('-', ""));
    let header = format!("<{}@localhost>", own.replace('-', ""));

    for (n, forged) in [
        report_for("ada@example.com", &verp, "<x@elsewhere.example>", "F1"),
        report_for("ada@example.com", "bounces@acme.example", &header, "F2"),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, answer) = post(&server, "pipe:s3cret", forged).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            (answer["stored"].as_u64(), answer["unmatched"].as_u64()),
            (Some(0), Some(1)),
            "report {n}: {answer}"
        );
    }
    let (_, _, ada) = server
        .post("/v1/messages", None, &to("ada@example.com"))
        .await;
    assert_eq!(ada["status"], "queued", "{ada}");
    let (_, record) = server
        .get(&format!("/v1/messages/{own}"), &server.token(None, true))
        .await;
    assert!(record["delivery"].is_null(), "{record}");

    // Its own recipient, the domain in capitals, in angle brackets: stored.
    let (_, answer) = post(
        &server,
        "pipe:s3cret",
        report_for(
            "<mallory@EXAMPLE.net>",
            &verp,
            "<x@elsewhere.example>",
            "R1",
        ),
    )
    .await;
    assert_eq!(answer["stored"], 1, "{answer}");
    let (_, _, again) = server
        .post("/v1/messages", None, &to("mallory@example.net"))
        .await;
    assert_eq!(again["status"], "suppressed", "{again}");
}
