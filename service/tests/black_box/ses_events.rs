//! SES events through SNS against a stand-in of SNS's HTTPS endpoints
//! (`peers/sns_peer.py`: its own CA, a TLS certificate for
//! `sns.us-east-1.amazonaws.com`, a signing certificate, subscription
//! confirmations). The service keeps its rule that certificates and
//! confirmations come only from `https://sns.<region>.amazonaws.com`; the test
//! gives the server a client that resolves that name to the stand-in and
//! trusts its CA — a code-level change that no configuration can make.

use crate::common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::server::TestServer;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const HOST: &str = "sns.us-east-1.amazonaws.com";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";
const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem";

/// The SNS stand-in and a client that reaches it under SNS's name.
struct SnsPeer {
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl SnsPeer {
    async fn start() -> SnsPeer {
        let dir = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(common::python())
            .arg(common::peers_dir().join("sns_peer.py"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the SNS peer");
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        tokio::time::timeout(
            Duration::from_secs(30),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("the SNS peer did not start within 30 s")
        .unwrap();
        let port: u16 = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
        let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
        let http = reqwest::Client::builder()
            .resolve(HOST, SocketAddr::from(([127, 0, 0, 1], port)))
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        SnsPeer {
            _child: child,
            _dir: dir,
            http,
        }
    }

    async fn sign(&self, version: &str, text: &str) -> String {
        let answer: Value = self
            .http
            .post(format!("https://{HOST}/sign"))
            .json(&json!({"version": version, "text": text}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["signature"].as_str().unwrap().to_owned()
    }

    async fn confirmed(&self) -> Value {
        let url = format!("https://{HOST}/confirmed");
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// An SNS message of `kind` signed as SNS signs it (`version` 1 or 2).
    async fn message(&self, kind: &str, version: &str, fields: Value) -> Value {
        let mut message = json!({
            "Type": kind, "MessageId": format!("sns-{}", uuid::Uuid::new_v4()), "TopicArn": TOPIC,
            "Message": "", "Timestamp": OffsetDateTime::now_utc().format(&Rfc3339).unwrap(),
            "SignatureVersion": version, "SigningCertURL": CERT_URL,
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
        });
        for (k, v) in fields.as_object().unwrap() {
            message[k] = v.clone();
        }
        self.resign(&mut message).await;
        message
    }

    async fn resign(&self, message: &mut Value) {
        let names: &[&str] = if message["Type"] == "Notification" {
            &[
                "Message",
                "MessageId",
                "Subject",
                "Timestamp",
                "TopicArn",
                "Type",
            ]
        } else {
            &[
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            ]
        };
        let mut text = String::new();
        for name in names {
            if let Some(value) = message[*name].as_str() {
                text.push_str(&format!("{name}\n{value}\n"));
            }
        }
        let version = message["SignatureVersion"].as_str().unwrap().to_owned();
        message["Signature"] = json!(self.sign(&version, &text).await);
    }
}

/// SES's SendEmail answering with its message id.
async fn ses_api() -> MockServer {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/v2/email/outbound-emails"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"MessageId": "ses-msg-1"})))
        .mount(&server)
        .await;
    server
}

async fn start(peer: &SnsPeer, ses: &MockServer) -> TestServer {
    let dsn = format!(
        "ses+api://AKIDEXAMPLE:secret@default?region=us-east-1&endpoint={}&webhook_key={}",
        urlencode(&ses.uri()),
        urlencode(TOPIC)
    );
    let http = peer.http.clone();
    TestServer::start_with(&[("MAILBRIDGE_TRANSPORT", &dsn)], move |parts| {
        let sources = (*parts.state.event_sources).clone().with_sns_http(&http);
        parts.state.event_sources = Arc::new(sources);
    })
    .await
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn post(server: &TestServer, body: &Value) -> (u16, Value) {
    let response = server
        .http
        .post(server.url("/v1/events/default"))
        .header("content-type", "text/plain; charset=UTF-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let (status, _, answer) = common::server::split(response).await;
    (status, answer)
}

fn bounce(recipient: &str) -> String {
    json!({"notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2026-12-04T22:00:00.000Z",
                   "feedbackId": "fb-1", "bouncedRecipients": [{"emailAddress": recipient,
                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
        "mail": {"messageId": "ses-msg-1", "timestamp": "2026-12-04T21:59:59.000Z", "source": "mailbridge@localhost"}})
    .to_string()
}

#[tokio::test]
async fn ses_bounces_arrive_through_a_confirmed_sns_subscription() {
    let peer = SnsPeer::start().await;
    let ses = ses_api().await;
    let server = start(&peer, &ses).await;

    let confirmation = peer
        .message("SubscriptionConfirmation", "1", json!({"Token": "token-1",
            "Message": "You have chosen to subscribe to the topic.",
            "SubscribeURL": format!("https://{HOST}/?Action=ConfirmSubscription&TopicArn={}&Token=token-1", urlencode(TOPIC))}))
        .await;
    let (status, answer) = post(&server, &confirmation).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(peer.confirmed().await, json!(["token-1"]));

    let body = json!({"to": [{"email": "ada@example.com"}], "subject": "Verify", "text": "Hi"});
    let (status, _, sent) = server.post("/v1/messages?wait=true", None, &body).await;
    assert_eq!(status, 200, "{sent}");
    let id = sent["id"].as_str().unwrap();

    let notification = peer
        .message(
            "Notification",
            "2",
            json!({"Message": bounce("ada@example.com")}),
        )
        .await;
    let (status, answer) = post(&server, &notification).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stored"], 1);
    let (_, record) = server
        .get(&format!("/v1/messages/{id}"), &server.token(None, true))
        .await;
    assert_eq!(record["delivery"]["type"], "bounced");
    assert_eq!(record["delivery"]["bounce"], "hard");
    assert_eq!(record["delivery"]["detail"], "smtp; 550 5.1.1 user unknown");

    // SignatureVersion 1 (SHA1withRSA) is accepted too.
    let complaint = json!({"notificationType": "Complaint", "complaint": {"complainedRecipients":
        [{"emailAddress": "ada@example.com"}], "timestamp": "2026-12-04T22:01:00.000Z", "feedbackId": "fb-2"},
        "mail": {"messageId": "ses-msg-1"}}).to_string();
    let v1 = peer
        .message(
            "Notification",
            "1",
            json!({"Message": complaint, "Subject": "Amazon SES Email Event Notification"}),
        )
        .await;
    let (status, answer) = post(&server, &v1).await;
    assert_eq!(
        (status, answer["stored"].clone()),
        (200, json!(1)),
        "{answer}"
    );
}

#[tokio::test]
async fn unverifiable_sns_messages_are_refused_and_store_nothing() {
    let peer = SnsPeer::start().await;
    let ses = ses_api().await;
    let server = start(&peer, &ses).await;
    let body = json!({"to": [{"email": "ada@example.com"}], "subject": "Verify", "text": "Hi"});
    let (_, _, sent) = server.post("/v1/messages?wait=true", None, &body).await;
    let id = sent["id"].as_str().unwrap().to_owned();
    let good = peer
        .message(
            "Notification",
            "2",
            json!({"Message": bounce("ada@example.com")}),
        )
        .await;

    let mut tampered = good.clone();
    tampered["Message"] = json!(bounce("grace@example.com"));
    let mut stale = good.clone();
    stale["Timestamp"] = json!(
        (OffsetDateTime::now_utc() - time::Duration::minutes(11))
            .format(&Rfc3339)
            .unwrap()
    );
    peer.resign(&mut stale).await;
    let mut other_topic = good.clone();
    other_topic["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:someone-else");
    peer.resign(&mut other_topic).await;
    let mut off_host = good.clone();
    off_host["SigningCertURL"] = json!(format!(
        "https://{HOST}.evil.example/SimpleNotificationService-test.pem"
    ));
    let mut plain_http = good.clone();
    plain_http["SigningCertURL"] =
        json!(format!("http://{HOST}/SimpleNotificationService-test.pem"));
    let mut not_pem = good.clone();
    not_pem["SigningCertURL"] = json!(format!("https://{HOST}/confirmed"));
    let mut version_3 = good.clone();
    version_3["SignatureVersion"] = json!("3");
    let confirm_elsewhere = peer
        .message(
            "SubscriptionConfirmation",
            "2",
            json!({"Token": "token-2", "Message": "m",
            "SubscribeURL": "https://attacker.example/?Action=ConfirmSubscription&Token=token-2"}),
        )
        .await;

    for (name, message) in [
        ("tampered", &tampered),
        ("stale", &stale),
        ("other topic", &other_topic),
        ("certificate off SNS", &off_host),
        ("certificate over http", &plain_http),
        ("certificate not a .pem", &not_pem),
        ("unknown signature version", &version_3),
        ("confirmation elsewhere", &confirm_elsewhere),
    ] {
        let (status, problem) = post(&server, message).await;
        assert_eq!(status, 401, "{name}: {problem}");
        assert_eq!(problem["status"], 401, "{name}");
    }
    assert_eq!(peer.confirmed().await, json!([]));
    let (_, record) = server
        .get(&format!("/v1/messages/{id}"), &server.token(None, true))
        .await;
    assert_eq!(record["events"], json!([]));
    assert_eq!(post(&server, &good).await.0, 200);
}

#[tokio::test]
async fn a_certificate_host_failing_for_a_moment_is_answered_try_again_and_the_event_taken_later() {
    let peer = SnsPeer::start().await;
    let ses = ses_api().await;
    let server = start(&peer, &ses).await;
    let body = json!({"to": [{"email": "ada@example.com"}], "subject": "Verify", "text": "Hi"});
    let (_, _, sent) = server.post("/v1/messages?wait=true", None, &body).await;
    let id = sent["id"].as_str().unwrap().to_owned();

    // The certificate's host answers 503 once: SNS must be told to try
    // again (a 5xx), not that the message is forged (a 401, never retried).
    let flaky = peer
        .message(
            "Notification",
            "2",
            json!({"Message": bounce("ada@example.com"),
                   "SigningCertURL": format!("https://{HOST}/SimpleNotificationService-flaky.pem")}),
        )
        .await;
    let response = server
        .http
        .post(server.url("/v1/events/default"))
        .header("content-type", "text/plain; charset=UTF-8")
        .body(flaky.to_string())
        .send()
        .await
        .unwrap();
    let (status, headers, problem) = common::server::split(response).await;
    assert_eq!(status, 503, "{problem}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    // At once again: still "try again" (briefly remembered), not refused.
    assert_eq!(post(&server, &flaky).await.0, 503);
    // SNS's retry, 20 s later by default: the certificate is fetched again.
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let (status, answer) = post(&server, &flaky).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stored"], 1, "{answer}");

    // A certificate the host does not have is refused, and stays refused.
    let missing = peer
        .message(
            "Notification",
            "2",
            json!({"Message": bounce("ada@example.com"),
                   "SigningCertURL": format!("https://{HOST}/SimpleNotificationService-missing.pem")}),
        )
        .await;
    for _ in 0..2 {
        let (status, problem) = post(&server, &missing).await;
        assert_eq!(status, 401, "{problem}");
    }
    let (_, record) = server
        .get(&format!("/v1/messages/{id}"), &server.token(None, true))
        .await;
    assert_eq!(record["events"].as_array().unwrap().len(), 1, "{record}");
}
