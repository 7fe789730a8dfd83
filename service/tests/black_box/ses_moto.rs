//! `ses+api://` against moto's SES v2 emulator with SigV4 checking on: the raw
//! message arrives with our subject, recipients and Message-ID; a wrong secret,
//! an unverified sender and a principal the policy does not let send are
//! refused and classified.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::transport::ses::SesTransport;
use mailbridge::transport::{Dsn, Transport, TransportError};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Moto {
    endpoint: String,
    region: String,
    access_key: String,
    secret_key: String,
    /// A user whose IAM policy does not allow `ses:SendEmail`.
    denied: Key,
}

#[derive(Debug, Deserialize)]
struct Key {
    access_key: String,
    secret_key: String,
}

/// One emulator per test file, prepared by `peers/moto_ses.py`; it stops when
/// this process ends and its standard input closes.
fn moto() -> &'static Moto {
    static MOTO: OnceLock<(Moto, Child)> = OnceLock::new();
    &MOTO.get_or_init(start_moto).0
}

fn start_moto() -> (Moto, Child) {
    let mut child = Command::new(common::python())
        .arg(common::peers_dir().join("moto_ses.py"))
        .arg("acme.example")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(90))
        .expect("moto did not start within 90 s");
    let moto = serde_json::from_str(&line).unwrap_or_else(|e| panic!("moto said {line:?}: {e}"));
    (moto, child)
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// The secret goes in as it is: AWS secrets hold `/` and `+`, which a DSN's
/// password part keeps without encoding (the operator's common case).
fn dsn(secret: &str) -> Dsn {
    let m = moto();
    Dsn::parse(&format!(
        "ses+api://{}:{secret}@default?region={}&endpoint={}",
        m.access_key,
        m.region,
        enc(&m.endpoint)
    ))
    .unwrap()
}

fn message(from: &str) -> OutgoingMessage {
    let id = uuid::Uuid::new_v4();
    OutgoingMessage {
        id,
        tenant: "acme".into(),
        message_id: format!("{}@acme.example", id.simple()),
        from: Mailbox {
            email: from.into(),
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
        tags: vec!["keycloak".into()],
        metadata: [("realm".to_owned(), "acme".to_owned())].into(),
    }
}

/// The transport as the DSN describes it, with a client of this test's own:
/// pooled connections belong to the runtime that opened them, and every test
/// has its own runtime while all of them talk to the same emulator.
fn ses(dsn: &Dsn) -> SesTransport {
    SesTransport::from_dsn_with_env(dsn, reqwest::Client::new(), |_| None).unwrap()
}

/// The raw messages moto has accepted so far: (id, destinations, raw data).
async fn sent_messages() -> Vec<(String, Vec<String>, String)> {
    let url = format!("{}/moto-api/data.json", moto().endpoint);
    let data: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let raw = data["ses"]["RawMessage"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    raw.iter()
        .map(|m| {
            let dests = m["destinations"].as_array().unwrap().iter();
            (
                m["id"].as_str().unwrap().to_owned(),
                dests.map(|d| d.as_str().unwrap().to_owned()).collect(),
                m["raw_data"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_signed_raw_message_arrives_with_our_headers() {
    let ses = ses(&dsn(&moto().secret_key));
    let msg = message("no-reply@acme.example");
    let delivery = ses.send(&msg).await.unwrap();
    let id = delivery.provider_message_id.expect("SES MessageId");

    let sent = sent_messages().await;
    let (_, destinations, raw) = sent
        .iter()
        .find(|(i, _, _)| *i == id)
        .expect("message in moto");
    assert!(raw.contains("Subject: Reset your password\r\n"), "{raw}");
    assert!(
        raw.contains(&format!("Message-ID: <{}>\r\n", msg.message_id)),
        "{raw}"
    );
    assert!(raw.contains("Reply-To: support@acme.example\r\n"), "{raw}");
    assert!(
        raw.contains("To: \"Ada Lovelace\" <ada@example.com>\r\n"),
        "{raw}"
    );
    assert!(raw.contains("Follow the link."), "{raw}");
    // Bcc travels only in the destination list, never in a header.
    assert!(!raw.to_ascii_lowercase().contains("hidden@"), "{raw}");
    for rcpt in ["ada@example.com", "cc@example.com", "hidden@example.com"] {
        assert!(
            destinations.iter().any(|d| d.contains(rcpt)),
            "{rcpt} not in {destinations:?}"
        );
    }
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_failure() {
    let ses = ses(&dsn("not-the-secret"));
    let msg = message("no-reply@acme.example");
    let err = ses.send(&msg).await.unwrap_err();
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    assert!(err.detail().contains("SignatureDoesNotMatch"), "{err}");
    assert!(!err.detail().contains("not-the-secret"), "{err}");
    let sent = sent_messages().await;
    assert!(!sent.iter().any(|(_, _, raw)| raw.contains(&msg.message_id)));
}

#[tokio::test]
async fn an_unverified_sender_is_refused_for_good() {
    let ses = ses(&dsn(&moto().secret_key));
    let err = ses
        .send(&message("no-reply@other.example"))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Permanent { .. }), "{err}");
    assert!(err.detail().contains("MessageRejected"), "{err}");
}

#[tokio::test]
async fn a_send_the_policy_does_not_allow_fails_the_message_not_the_transport() {
    // Valid credentials whose policy refuses this send (moto cannot weigh a
    // `ses:FromAddress` condition; a policy without `ses:SendEmail` is
    // refused with the same AccessDenied): about the message, for good, and
    // no reason to hold the transport for every tenant's mail.
    let m = moto();
    let dsn = Dsn::parse(&format!(
        "ses+api://{}:{}@default?region={}&endpoint={}",
        m.denied.access_key,
        m.denied.secret_key,
        m.region,
        enc(&m.endpoint)
    ))
    .unwrap();
    let msg = message("no-reply@acme.example");
    let err = ses(&dsn).send(&msg).await.unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Permanent {
                credentials: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_about_the_message(), "{err}");
    assert!(err.detail().contains("AccessDenied"), "{err}");
    let sent = sent_messages().await;
    assert!(!sent.iter().any(|(_, _, raw)| raw.contains(&msg.message_id)));
}

#[tokio::test]
async fn credentials_and_region_come_from_the_environment_when_absent() {
    let m = moto();
    let dsn = Dsn::parse(&format!("ses+api://default?endpoint={}", enc(&m.endpoint))).unwrap();
    let env = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some(m.access_key.clone()),
        "AWS_SECRET_ACCESS_KEY" => Some(m.secret_key.clone()),
        "AWS_REGION" => Some(m.region.clone()),
        _ => None,
    };
    let ses = SesTransport::from_dsn_with_env(&dsn, reqwest::Client::new(), env).unwrap();
    let delivery = ses.send(&message("no-reply@acme.example")).await.unwrap();
    assert!(delivery.provider_message_id.is_some());

    let none = SesTransport::from_dsn_with_env(&dsn, reqwest::Client::new(), |_| None);
    assert!(none.unwrap_err().to_string().contains("region"));
}

#[tokio::test]
async fn the_raw_message_has_crlf_only_and_ascii_domains() {
    let ses = ses(&dsn(&moto().secret_key));
    let mut msg = message("no-reply@acme.example");
    msg.text = Some("d\r.\rMAIL FROM:<evil@attacker.example>\rnext\nlast".into());
    msg.to = vec![Mailbox::new("a@münchen.de")];
    let id = ses.send(&msg).await.unwrap().provider_message_id.unwrap();

    let sent = sent_messages().await;
    let (_, destinations, raw) = sent.iter().find(|(i, _, _)| *i == id).unwrap();
    let bytes = raw.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(bytes.get(i + 1), Some(&b'\n'), "bare CR: {raw:?}"),
            b'\n' => assert_eq!(bytes[i - 1], b'\r', "bare LF: {raw:?}"),
            _ => {}
        }
    }
    assert!(raw.contains("To: a@xn--mnchen-3ya.de\r\n"), "{raw}");
    assert!(
        destinations.iter().any(|d| d == "a@xn--mnchen-3ya.de"),
        "{destinations:?}"
    );
}
