//! `POST /v1/events/{transport}`: each provider's delivery events, signed by
//! the provider's real algorithm with keys made here, reach a real server,
//! are matched to the messages it sent through mocks of the providers' send
//! APIs, and show in `GET /v1/messages/{id}` and `/metrics`. Unverified,
//! tampered or stale requests are refused with 401 and store nothing.

use crate::common;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::server::TestServer;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MAILGUN_KEY: &str = "mailgun-signing-key-0123456789";
const RESEND_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Providers' send APIs answering with their ids.
async fn providers() -> MockServer {
    let server = MockServer::builder().start().await;
    let answers = [
        ("/v3/mail/send", ResponseTemplate::new(202).insert_header("X-Message-Id", "sg-msg-1")),
        (
            "/v3/mg.example/messages",
            ResponseTemplate::new(200).set_body_json(
                json!({"id": "<20261204.1@mg.example>", "message": "Queued. Thank you."}),
            ),
        ),
        (
            "/email",
            ResponseTemplate::new(200)
                .set_body_json(json!({"MessageID": "pm-msg-1", "ErrorCode": 0, "Message": "OK"})),
        ),
        (
            "/v3.1/send",
            ResponseTemplate::new(200).set_body_json(json!({"Messages": [{"Status": "success",
                "To": [{"Email": "ada@example.com", "MessageUUID": "u-1", "MessageID": 288230376151711744u64}]}]})),
        ),
        ("/emails", ResponseTemplate::new(200).set_body_json(json!({"id": "re-msg-1"}))),
    ];
    for (at, answer) in answers {
        Mock::given(method("POST"))
            .and(path(at))
            .respond_with(answer)
            .mount(&server)
            .await;
    }
    server
}

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A server whose tenants `sg`, `mg`, `pm`, `mj` and `rs` each send through
/// the transport of that name, every one with a `webhook_key`, and whose
/// tenant `grp` sends through a failover group of `mg`'s Mailgun account and
/// Postmark.
async fn start(mock: &MockServer, sendgrid_key: &str) -> TestServer {
    start_with(mock, sendgrid_key, &[]).await
}

/// [`start`] with more settings.
async fn start_with(mock: &MockServer, sendgrid_key: &str, env: &[(&str, &str)]) -> TestServer {
    let uri = encode(&mock.uri());
    let config = format!(
        r#"
[transports]
sg = "sendgrid+api://SG.key@default?endpoint={uri}&webhook_key={sg}"
mg = "mailgun+api://key-1:mg.example@default?endpoint={uri}&webhook_key={mg}"
pm = "postmark+api://pm-token@default?endpoint={uri}&webhook_key={pm}"
mj = "mailjet+api://k:s@default?endpoint={uri}&webhook_key={mj}"
rs = "resend+api://re_key@default?endpoint={uri}&webhook_key={rs}"
grp = "failover(mailgun+api://key-1:mg.example@default?endpoint={uri} postmark+api://pm-token@default?endpoint={uri})"
[tenants.grp]
transport = "grp"
[tenants.sg]
transport = "sg"
[tenants.mg]
transport = "mg"
[tenants.pm]
transport = "pm"
[tenants.mj]
transport = "mj"
[tenants.rs]
transport = "rs"
"#,
        sg = encode(sendgrid_key),
        mg = encode(MAILGUN_KEY),
        pm = encode("hooks:pm-pass"),
        mj = encode("hooks:mj-pass"),
        rs = encode(RESEND_SECRET),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailbridge.toml");
    std::fs::write(&file, config).unwrap();
    // The file is read at start only.
    let mut env = env.to_vec();
    env.push(("MAILBRIDGE_CONFIG", file.to_str().unwrap()));
    let server = TestServer::start(&env).await;
    drop(dir);
    server
}

/// Sends one message as `tenant` and waits for it to be sent; answers its id.
async fn send(server: &TestServer, tenant: &str) -> String {
    let body = json!({"to": [{"email": "ada@example.com"}], "subject": "Verify", "text": "Hi"});
    let (status, _, answer) = server
        .post("/v1/messages?wait=true", Some(tenant), &body)
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

async fn post_event(
    server: &TestServer,
    transport: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, Value) {
    let mut request = server
        .http
        .post(server.url(&format!("/v1/events/{transport}")))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let (status, _, answer) = common::server::split(request.send().await.unwrap()).await;
    (status, answer)
}

async fn message(server: &TestServer, id: &str) -> Value {
    let (status, record) = server
        .get(&format!("/v1/messages/{id}"), &server.token(None, true))
        .await;
    assert_eq!(status, 200);
    record
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::sign(&key, data).as_ref().to_vec()
}

/// A P-256 key pair and its public key as SendGrid shows it (base64 DER SubjectPublicKeyInfo).
fn sendgrid_key() -> (EcdsaKeyPair, String) {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
        .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
        pair.public_key(),
    )
    .unwrap();
    let public = STANDARD.encode(der.as_ref());
    (pair, public)
}

fn sendgrid_headers(
    pair: &EcdsaKeyPair,
    timestamp: u64,
    body: &str,
) -> Vec<(&'static str, String)> {
    let signed = format!("{timestamp}{body}");
    let signature = pair.sign(&SystemRandom::new(), signed.as_bytes()).unwrap();
    vec![
        (
            "X-Twilio-Email-Event-Webhook-Signature",
            STANDARD.encode(signature.as_ref()),
        ),
        (
            "X-Twilio-Email-Event-Webhook-Timestamp",
            timestamp.to_string(),
        ),
    ]
}

#[tokio::test]
async fn sendgrid_events_are_verified_matched_and_shown() {
    let mock = providers().await;
    let (pair, public) = sendgrid_key();
    let server = start(&mock, &public).await;
    let id = send(&server, "sg").await;
    let at = now();
    // One event names us by our custom arg, the other only by SendGrid's message id.
    let body = json!([
        {"email": "ada@example.com", "timestamp": at - 5, "event": "delivered", "sg_event_id": "ev-1",
         "sg_message_id": "sg-msg-1.filter0001", "mailbridge-id": id, "response": "250 OK"},
        {"email": "ada@example.com", "timestamp": at, "event": "bounce", "type": "bounce", "sg_event_id": "ev-2",
         "sg_message_id": "sg-msg-1.filter0002", "reason": "550 5.1.1 The email account does not exist", "status": "5.1.1"},
        {"email": "ada@example.com", "timestamp": at, "event": "open", "sg_event_id": "ev-3", "mailbridge-id": id},
        {"email": "x@example.com", "timestamp": at, "event": "delivered", "sg_event_id": "ev-4", "sg_message_id": "unknown.filter"}
    ])
    .to_string();

    // Tampered, stale, or unsigned: refused, nothing stored.
    let tampered = body.replace("bounce\"", "delivered\"");
    let (status, problem) = post_event(
        &server,
        "sg",
        &sendgrid_headers(&pair, at, &body),
        &tampered,
    )
    .await;
    assert_eq!(status, 401, "{problem}");
    let stale = sendgrid_headers(&pair, at - 11 * 60, &body);
    assert_eq!(post_event(&server, "sg", &stale, &body).await.0, 401);
    assert_eq!(post_event(&server, "sg", &[], &body).await.0, 401);
    assert_eq!(message(&server, &id).await["events"], json!([]));

    let signed = sendgrid_headers(&pair, at, &body);
    let (status, answer) = post_event(&server, "sg", &signed, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"stored": 2, "unmatched": 1, "repeated": 0}));
    let record = message(&server, &id).await;
    assert_eq!(record["status"], "sent");
    assert_eq!(record["provider_message_id"], "sg-msg-1");
    assert_eq!(record["events"].as_array().unwrap().len(), 2);
    assert_eq!(record["events"][0]["type"], "delivered");
    assert_eq!(record["delivery"]["type"], "bounced");
    assert_eq!(record["delivery"]["bounce"], "hard");
    assert_eq!(record["delivery"]["recipient"], "ada@example.com");
    assert_eq!(record["delivery"]["transport"], "sg");
    assert_eq!(
        record["delivery"]["detail"],
        "550 5.1.1 The email account does not exist"
    );

    // SendGrid delivers again after a timeout: stored once.
    let (_, again) = post_event(&server, "sg", &signed, &body).await;
    assert_eq!(again, json!({"stored": 0, "unmatched": 1, "repeated": 2}));

    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mailbridge_delivery_events_total{")
                && l.contains("transport=\"sg\"")
                && l.contains("type=\"bounced\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn mailgun_events_match_by_message_id_and_refuse_a_wrong_key() {
    let mock = providers().await;
    let server = start(&mock, &sendgrid_key().1).await;
    let id = send(&server, "mg").await;
    let at = now();
    // Temporary failure first (Mailgun retries), named by Mailgun's id of the message.
    let deferred = json!({"id": "mg-ev-1", "event": "failed", "severity": "temporary", "timestamp": at as f64 - 60.0,
        "recipient": "ada@example.com", "message": {"headers": {"message-id": "20261204.1@mg.example"}},
        "delivery-status": {"code": 452, "message": "4.2.2 Mailbox full"}});
    let (status, answer) = post_event(
        &server,
        "mg",
        &[],
        &mailgun_signed(MAILGUN_KEY, at, &deferred),
    )
    .await;
    assert_eq!(
        (status, answer["stored"].clone()),
        (200, json!(1)),
        "{answer}"
    );
    // Then a complaint, named by our own Message-ID only.
    let record = message(&server, &id).await;
    let ours = format!("{}@localhost", id.replace('-', ""));
    let complaint = json!({"id": "mg-ev-2", "event": "complained", "timestamp": at as f64,
        "recipient": "ada@example.com", "message": {"headers": {"message-id": ours}}});
    let (status, answer) = post_event(
        &server,
        "mg",
        &[],
        &mailgun_signed(MAILGUN_KEY, at, &complaint),
    )
    .await;
    assert_eq!(
        (status, answer["stored"].clone()),
        (200, json!(1)),
        "{answer} {record}"
    );
    let record = message(&server, &id).await;
    assert_eq!(record["events"][0]["type"], "deferred");
    assert_eq!(record["events"][0]["detail"], "4.2.2 Mailbox full");
    assert_eq!(record["delivery"]["type"], "complained");

    let forged = mailgun_signed("not-the-key", at, &complaint);
    let (status, problem) = post_event(&server, "mg", &[], &forged).await;
    assert_eq!(status, 401);
    assert_eq!(problem["status"], 401);
    assert_eq!(
        message(&server, &id).await["events"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Mailgun signs a timestamp and a token, not the event: whoever saw one
/// webhook could send its signature again with a bounce. The store keeps
/// the tokens taken, so a restart (or another replica) does not forget
/// them: the same body again is Mailgun's retry, another body is refused.
#[tokio::test]
async fn a_mailgun_signature_carries_no_other_event_after_a_restart() {
    let mock = providers().await;
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/mb.db", dir.path().display());
    let env = [("MAILBRIDGE_DATABASE_URL", database.as_str())];
    let key = sendgrid_key().1;
    let server = start_with(&mock, &key, &env).await;
    let id = send(&server, "mg").await;
    let at = now();
    let event = |kind: &str, severity: &str| {
        json!({"id": "mg-ev-r1", "event": kind, "severity": severity, "timestamp": at as f64,
            "recipient": "ada@example.com", "message": {"headers": {"message-id": "20261204.1@mg.example"}}})
    };
    let genuine = mailgun_signed(MAILGUN_KEY, at, &event("delivered", ""));
    let (status, answer) = post_event(&server, "mg", &[], &genuine).await;
    assert_eq!(
        (status, answer["stored"].clone()),
        (200, json!(1)),
        "{answer}"
    );
    server.stop().await;

    let server = start_with(&mock, &key, &env).await;
    let (status, answer) = post_event(&server, "mg", &[], &genuine).await;
    assert_eq!(
        (status, answer["repeated"].clone()),
        (200, json!(1)),
        "{answer}"
    );
    // The same token and signature with a permanent failure.
    let forged = mailgun_signed(MAILGUN_KEY, at, &event("failed", "permanent"));
    let (status, problem) = post_event(&server, "mg", &[], &forged).await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("another event"),
        "{problem}"
    );
    let events = message(&server, &id).await["events"].clone();
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events[0]["type"], "delivered");
    let (status, list) = server
        .get("/v1/suppressions?tenant=mg", &server.token(None, true))
        .await;
    assert_eq!(status, 200);
    assert!(!list.to_string().contains("ada@example.com"), "{list}");
}

#[tokio::test]
async fn postmark_and_mailjet_events_need_their_basic_auth() {
    let mock = providers().await;
    let server = start(&mock, &sendgrid_key().1).await;
    let postmark = send(&server, "pm").await;
    let mailjet = send(&server, "mj").await;
    let basic = |credentials: &str| {
        vec![(
            "authorization",
            format!("Basic {}", STANDARD.encode(credentials)),
        )]
    };

    let bounce = json!({"RecordType": "Bounce", "ID": 4323372036854775807u64, "Type": "HardBounce", "TypeCode": 1,
        "MessageID": "pm-msg-1", "Email": "ada@example.com", "BouncedAt": "2026-12-04T16:33:54.9070259Z",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 unknown user"}).to_string();
    assert_eq!(
        post_event(&server, "pm", &basic("hooks:wrong"), &bounce)
            .await
            .0,
        401
    );
    assert_eq!(post_event(&server, "pm", &[], &bounce).await.0, 401);
    let (status, answer) = post_event(&server, "pm", &basic("hooks:pm-pass"), &bounce).await;
    assert_eq!(
        (status, answer["stored"].clone()),
        (200, json!(1)),
        "{answer}"
    );
    let record = message(&server, &postmark).await;
    assert_eq!(record["delivery"]["type"], "bounced");
    assert_eq!(record["delivery"]["bounce"], "hard");
    assert_eq!(record["delivery"]["detail"], "smtp;550 5.1.1 unknown user");

    // Mailjet groups events; ours come back with our id as CustomID.
    let grouped = json!([
        {"event": "sent", "time": now() - 10, "MessageID": 288230376151711744u64, "email": "ada@example.com",
         "CustomID": "", "smtp_reply": "250 2.0.0 OK"},
        {"event": "spam", "time": now(), "MessageID": 1, "email": "ada@example.com", "CustomID": mailjet, "source": "JMRPP"}
    ]).to_string();
    assert_eq!(
        post_event(&server, "mj", &basic("hooks:pm-pass"), &grouped)
            .await
            .0,
        401
    );
    let (status, answer) = post_event(&server, "mj", &basic("hooks:mj-pass"), &grouped).await;
    assert_eq!(
        (status, answer["stored"].clone()),
        (200, json!(2)),
        "{answer}"
    );
    let record = message(&server, &mailjet).await;
    assert_eq!(record["events"][0]["type"], "delivered");
    assert_eq!(record["delivery"]["type"], "complained");

    // Verified but not Postmark's format: 400, not 500.
    let (status, problem) = post_event(&server, "pm", &basic("hooks:pm-pass"), "[1,2]").await;
    assert_eq!(status, 400, "{problem}");
    // A value read wrongly is not repeated at its length in the answer.
    let long = serde_json::to_string(&"A".repeat(100_000)).unwrap();
    for (transport, body) in [("pm", long.clone()), ("mj", format!("[{long}]"))] {
        let key = format!("hooks:{transport}-pass");
        let (status, problem) = post_event(&server, transport, &basic(&key), &body).await;
        assert_eq!(status, 400, "{transport}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.len() < 300,
            "{transport}: {} bytes of detail",
            detail.len()
        );
    }
}

#[tokio::test]
async fn resend_events_carry_svix_signatures() {
    let mock = providers().await;
    let server = start(&mock, &sendgrid_key().1).await;
    let id = send(&server, "rs").await;
    let body = json!({"type": "email.bounced", "created_at": "2026-12-04T22:41:12.126Z",
        "data": {"email_id": "re-msg-1", "to": ["ada@example.com"],
                 "bounce": {"type": "Transient", "subType": "MailboxFull", "message": "Mailbox full"}}})
    .to_string();
    let key = STANDARD
        .decode(RESEND_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let svix = |msg_id: &str, timestamp: u64, body: &str| {
        let mac = hmac_sha256(&key, format!("{msg_id}.{timestamp}.{body}").as_bytes());
        vec![
            ("svix-id", msg_id.to_owned()),
            ("svix-timestamp", timestamp.to_string()),
            ("svix-signature", format!("v1,{}", STANDARD.encode(mac))),
        ]
    };
    assert_eq!(
        post_event(&server, "rs", &svix("msg_1", now() - 3600, &body), &body)
            .await
            .0,
        401
    );
    let mut wrong_id = svix("msg_1", now(), &body);
    wrong_id[0].1 = "msg_2".into();
    assert_eq!(post_event(&server, "rs", &wrong_id, &body).await.0, 401);
    let (status, answer) = post_event(&server, "rs", &svix("msg_1", now(), &body), &body).await;
    assert_eq!(
        (status, answer["stored"].clone()),
        (200, json!(1)),
        "{answer}"
    );
    let record = message(&server, &id).await;
    assert_eq!(record["delivery"]["bounce"], "soft");
    assert_eq!(record["delivery"]["detail"], "Mailbox full");

    // A transport without a webhook_key, or an unknown one, takes no events.
    let (status, problem) = post_event(&server, "default", &[], &body).await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(post_event(&server, "nope", &[], &body).await.0, 404);
}

/// A Mailgun webhook body for `event`, signed with `key` at unix time `at`.
fn mailgun_signed(key: &str, at: u64, event: &Value) -> String {
    let token = format!("token-{at}-{}", event["id"]);
    let mac: String = hmac_sha256(key.as_bytes(), format!("{at}{token}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({"signature": {"timestamp": at.to_string(), "token": token, "signature": mac},
           "event-data": event})
    .to_string()
}

#[tokio::test]
async fn a_providers_events_act_only_on_messages_sent_through_its_account() {
    let mock = providers().await;
    let server = start(&mock, &sendgrid_key().1).await;
    let bounce = |event_id: &str, id: &str| {
        let ours = format!("{}@localhost", id.replace('-', ""));
        json!({"id": event_id, "event": "failed", "severity": "permanent", "timestamp": now() as f64,
               "recipient": "ada@example.com", "message": {"headers": {"message-id": ours}},
               "delivery-status": {"code": 550, "message": "5.1.1 no such user"}})
    };
    // A message of another tenant, sent through SendGrid: Mailgun's account
    // (whoever holds its signing key) cannot bounce it.
    let other = send(&server, "sg").await;
    let (status, answer) = post_event(
        &server,
        "mg",
        &[],
        &mailgun_signed(MAILGUN_KEY, now(), &bounce("mg-x-1", &other)),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["stored"].clone(), answer["unmatched"].clone()),
        (json!(0), json!(1)),
        "{answer}"
    );
    assert!(
        message(&server, &other).await["events"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (_, listed) = server
        .get("/v1/suppressions?tenant=sg", &server.token(None, true))
        .await;
    assert!(!listed.to_string().contains("ada@example.com"), "{listed}");

    // A message sent through a failover group with that Mailgun account among
    // its members: the account's events concern it.
    let grouped = send(&server, "grp").await;
    let (status, answer) = post_event(
        &server,
        "mg",
        &[],
        &mailgun_signed(MAILGUN_KEY, now(), &bounce("mg-x-2", &grouped)),
    )
    .await;
    assert_eq!(
        (status, answer["stored"].clone()),
        (200, json!(1)),
        "{answer}"
    );
    assert_eq!(
        message(&server, &grouped).await["delivery"]["type"],
        "bounced"
    );
}

/// A provider's time of an event may be anything its JSON can hold: one
/// before the first year PostgreSQL keeps (4713 BC) failed the event's
/// insert, and one far ahead made the event the message's latest for good.
/// Neither is a time the event happened: such an event is taken at the time
/// it was received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_time_no_clock_could_have_is_the_time_it_came() {
    let pg = common::postgres::Postgres::start();
    let database = pg.database();
    let mock = providers().await;
    let env = [("MAILBRIDGE_DATABASE_URL", database.as_str())];
    let server = start_with(&mock, &sendgrid_key().1, &env).await;
    let id = send(&server, "mj").await;
    let basic = vec![(
        "authorization",
        format!("Basic {}", STANDARD.encode("hooks:mj-pass")),
    )];
    let before = now();
    let events = json!([
        {"event": "bounce", "time": -300_000_000_000i64, "email": "ada@example.com", "CustomID": id,
         "hard_bounce": false, "error": "mailbox full"},
        {"event": "sent", "time": 253_402_300_000i64, "email": "ada@example.com", "CustomID": id}
    ])
    .to_string();
    let (status, answer) = post_event(&server, "mj", &basic, &events).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stored"], 2, "{answer}");
    let record = message(&server, &id).await;
    for event in record["events"].as_array().unwrap() {
        let at = OffsetDateTime::parse(event["occurred_at"].as_str().unwrap(), &Rfc3339).unwrap();
        let at = at.unix_timestamp() as u64;
        assert!((before..=now()).contains(&at), "{event}");
    }
}

/// A `webhook_key` its provider's scheme cannot use (here SendGrid's API key
/// where its verification key belongs) would refuse every event with 401,
/// and the provider would give up on them: `mailbridge check` fails on it,
/// as the start does, naming the transport and never the key.
#[tokio::test]
async fn check_refuses_a_webhook_key_the_provider_cannot_use_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailbridge.toml");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    let check = |config: String| {
        std::fs::write(&file, config).unwrap();
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mailbridge"))
            .arg("check")
            .env_clear()
            .env("MAILBRIDGE_JWT_SECRET", common::server::SECRET)
            .env("MAILBRIDGE_CONFIG", &file)
            .env("MAILBRIDGE_TEMPLATES", &root)
            .env(
                "MAILBRIDGE_TRANSPORT",
                "file:///tmp/mailbridge-check-outbox",
            )
            .output()
    };
    let mistaken =
        "[transports]\nsg = \"sendgrid+api://SG.key@default?webhook_key=SG.api-key-pasted-here\"\n";
    let out = check(mistaken.into()).await.unwrap();
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(printed.contains("FAIL  event endpoints"), "{printed}");
    assert!(printed.contains("transport `sg`"), "{printed}");
    assert!(!printed.contains("api-key-pasted-here"), "{printed}");

    let (_, public) = sendgrid_key();
    let right = format!(
        "[transports]\nsg = \"sendgrid+api://SG.key@default?webhook_key={}\"\n",
        encode(&public)
    );
    let out = check(right).await.unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(printed.contains("ok    event endpoints"), "{printed}");
}

/// Mailjet and Postmark (for deliveries) give their events no id, and
/// deliver a batch again after a `503` or a timeout on their side: each of
/// its events is known by its content, so the batch posted again is a
/// repeat (nothing stored, nothing acted on again), while two events that
/// differ in any field are two events.
#[tokio::test]
async fn mailjet_and_postmark_batches_posted_again_are_stored_once() {
    let mock = providers().await;
    let server = start(&mock, &sendgrid_key().1).await;
    let mailjet = send(&server, "mj").await;
    let postmark = send(&server, "pm").await;
    let basic = |credentials: &str| {
        vec![(
            "authorization",
            format!("Basic {}", STANDARD.encode(credentials)),
        )]
    };
    let t = now();
    let batch = json!([
        {"event": "bounce", "time": t - 30, "email": "ada@example.com", "CustomID": mailjet,
         "hard_bounce": false, "error": "mailbox full"},
        {"event": "bounce", "time": t - 20, "email": "ada@example.com", "CustomID": mailjet,
         "hard_bounce": false, "error": "mailbox full"},
        {"event": "sent", "time": t - 10, "email": "ada@example.com", "CustomID": mailjet,
         "smtp_reply": "250 2.0.0 OK"},
        {"event": "spam", "time": t, "email": "ada@example.com", "CustomID": mailjet, "source": "JMRPP"}
    ])
    .to_string();
    let mj = basic("hooks:mj-pass");
    let (status, answer) = post_event(&server, "mj", &mj, &batch).await;
    assert_eq!(
        (status, answer["stored"].clone()),
        (200, json!(4)),
        "{answer}"
    );
    // Mailjet's retry of the same batch, spaced and ordered its own way.
    let again: Value = serde_json::from_str(&batch).unwrap();
    let again = serde_json::to_string_pretty(&again).unwrap();
    let (status, answer) = post_event(&server, "mj", &mj, &again).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["stored"].clone(), answer["repeated"].clone()),
        (json!(0), json!(4)),
        "{answer}"
    );
    let events = message(&server, &mailjet).await["events"].clone();
    assert_eq!(events.as_array().unwrap().len(), 4, "{events}");
    assert!(
        events[0]["provider_event_id"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{events}"
    );

    let delivery = json!({"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound",
        "MessageID": "pm-msg-1", "Recipient": "ada@example.com", "Tag": "", 
        "DeliveredAt": "2026-12-04T16:33:54Z", "Details": "Test delivery webhook details",
        "Metadata": {}})
    .to_string();
    let pm = basic("hooks:pm-pass");
    let (status, answer) = post_event(&server, "pm", &pm, &delivery).await;
    assert_eq!(
        (status, answer["stored"].clone()),
        (200, json!(1)),
        "{answer}"
    );
    let (status, answer) = post_event(&server, "pm", &pm, &delivery).await;
    assert_eq!(
        (status, answer["repeated"].clone()),
        (200, json!(1)),
        "{answer}"
    );
    let events = message(&server, &postmark).await["events"].clone();
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
}
