//! The real `mailbridge` binary is killed with SIGKILL while it delivers; after a
//! restart every accepted message is delivered, each with the Message-ID chosen
//! when it was accepted. Also: no secret or link reaches the log, even at debug;
//! and a SIGTERM stop goes unready first, keeps serving for the drain delay,
//! releases the stuck delivery and exits 0.

use crate::smtp_support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use smtp_support::{SmtpPeer, parse_eml};
use tokio::process::{Child, Command};

const SECRET: &str = "crash-test-secret-0123456789abcdef-0123";
const LINK: &str = "https://sso.example/reset?key=very-secret-key";

struct Service {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

async fn start(dir: &std::path::Path, smtp_port: u16, log_name: &str) -> Service {
    start_with(dir, smtp_port, log_name, &[]).await
}

async fn start_with(
    dir: &std::path::Path,
    smtp_port: u16,
    log_name: &str,
    env: &[(&str, &str)],
) -> Service {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.join(log_name);
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    let child = Command::new(env!("CARGO_BIN_EXE_mailbridge"))
        .arg("serve")
        .env("MAILBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "MAILBRIDGE_DATABASE_URL",
            format!("sqlite://{}/mb.db", dir.display()),
        )
        .env(
            "MAILBRIDGE_TRANSPORT",
            format!("smtp://127.0.0.1:{smtp_port}?tls=none&timeout=60s"),
        )
        .env("MAILBRIDGE_TEMPLATES", templates)
        .env("MAILBRIDGE_JWT_SECRET", SECRET)
        .env("MAILBRIDGE_RETRY_BASE", "100ms")
        .env("MAILBRIDGE_LOG", "debug")
        .envs(env.iter().copied())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start mailbridge");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Service { child, base, log };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "mailbridge did not become ready; log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

fn token(admin: bool) -> String {
    mailbridge::auth::mint(SECRET.as_bytes(), Some("acme"), admin, 300).unwrap()
}

async fn status(http: &reqwest::Client, base: &str, id: &str) -> Value {
    http.get(format!("{base}/v1/messages/{id}"))
        .bearer_auth(token(true))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Accepts one password-reset message for `user{n}@example.com`; its id.
async fn accept(http: &reqwest::Client, base: &str, n: usize) -> String {
    let body = json!({
        "to": [{"email": format!("user{n}@example.com")}],
        "from": {"email": "no-reply@acme.example"},
        "template": "password-reset",
        "data": {"link": LINK, "linkExpiration": 5, "realmName": "acme", "user": {"username": format!("user{n}")}},
    });
    let resp = http
        .post(format!("{base}/v1/messages"))
        .bearer_auth(token(false))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.unwrap();
    accepted["id"].as_str().unwrap().to_owned()
}

/// Waits (bounded) until message `id` has `want` as its status.
async fn wait_status(http: &reqwest::Client, base: &str, id: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let record = status(http, base, id).await;
        if record["status"] == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "message {id} never reached `{want}`: {record}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sigterm_goes_unready_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let stalled = SmtpPeer::start(&["--stall-data", "600"]).await;
    // The message is handed over (its final dot went) and never answered:
    // given back once the grace is over.
    let mut first = start_with(
        dir.path(),
        stalled.port,
        "first.log",
        &[
            ("MAILBRIDGE_SHUTDOWN_DELAY", "3s"),
            ("MAILBRIDGE_SHUTDOWN_GRACE", "5s"),
        ],
    )
    .await;
    let stuck = accept(&http, &first.base, 0).await;
    wait_status(&http, &first.base, &stuck, "sending").await;

    let pid = first.child.id().expect("pid").to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    // Readiness turns first, while the listener still takes requests.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let ready = http
            .get(format!("{}/readyz", first.base))
            .send()
            .await
            .expect("still listening during the drain delay");
        if ready.status() == 503 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never answered 503"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let late = accept(&http, &first.base, 1).await;
    let exit = tokio::time::timeout(Duration::from_secs(30), first.child.wait())
        .await
        .expect("stops within 30 s")
        .unwrap();
    let log = || std::fs::read_to_string(&first.log).unwrap_or_default();
    assert!(exit.success(), "exit {exit}; log: {}", log());
    assert!(log().contains("/readyz now answers 503"), "{}", log());

    // The stuck delivery was released, not lost: the next start sends both.
    let healthy = SmtpPeer::start(&[]).await;
    let second = start(dir.path(), healthy.port, "second.log").await;
    for id in [&stuck, &late] {
        wait_status(&http, &second.base, id, "sent").await;
    }
}

/// Sends SIGTERM to `service`.
fn terminate(service: &Service) {
    let pid = service.child.id().expect("pid").to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
}

/// Waits (bounded) until `peer` has taken `count` messages.
async fn wait_received(peer: &SmtpPeer, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while peer.received().len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the SMTP peer never took {count} messages"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sigterm_after_the_end_of_data_waits_for_the_answer_and_sends_once() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    // The server takes the message at its final dot and answers 12 s later.
    let slow = SmtpPeer::start(&["--data-reply-delay", "12"]).await;
    let env = [
        ("MAILBRIDGE_SHUTDOWN_DELAY", "0s"),
        ("MAILBRIDGE_SHUTDOWN_GRACE", "30s"),
    ];
    let mut first = start_with(dir.path(), slow.port, "first.log", &env).await;
    let id = accept(&http, &first.base, 0).await;
    // The server has the message; its answer is still to come.
    wait_received(&slow, 1).await;
    terminate(&first);
    let exit = tokio::time::timeout(Duration::from_secs(40), first.child.wait())
        .await
        .expect("stops within the grace")
        .unwrap();
    let log = std::fs::read_to_string(&first.log).unwrap_or_default();
    assert!(exit.success(), "exit {exit}; log: {log}");

    // Recorded `sent` before the exit: the next start has nothing to send.
    let second = start(dir.path(), slow.port, "second.log").await;
    let record = status(&http, &second.base, &id).await;
    assert_eq!(record["status"], "sent", "{record}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(slow.received().len(), 1, "the server got the message once");
    assert!(
        log.contains("waiting for the answer to a message handed over"),
        "{log}"
    );
}

#[tokio::test]
async fn sigterm_cuts_a_delivery_that_handed_nothing_over_and_starts_none() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    // Every reply comes 3 s late: the attempt is still in its greeting.
    let slow = SmtpPeer::start(&["--reply-delay", "3"]).await;
    let env = [
        ("MAILBRIDGE_SHUTDOWN_DELAY", "0s"),
        ("MAILBRIDGE_SHUTDOWN_GRACE", "30s"),
    ];
    let mut first = start_with(dir.path(), slow.port, "first.log", &env).await;
    let id = accept(&http, &first.base, 0).await;
    wait_status(&http, &first.base, &id, "sending").await;
    let stopped_at = tokio::time::Instant::now();
    terminate(&first);
    let exit = tokio::time::timeout(Duration::from_secs(40), first.child.wait())
        .await
        .expect("stops")
        .unwrap();
    assert!(exit.success(), "exit {exit}");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(3),
        "a send that handed nothing over does not hold the stop: {:?}",
        stopped_at.elapsed()
    );
    assert!(slow.received().is_empty());

    // Given back, not lost: the next start sends it, once.
    let healthy = SmtpPeer::start(&[]).await;
    let second = start(dir.path(), healthy.port, "second.log").await;
    wait_status(&http, &second.base, &id, "sent").await;
    assert_eq!(healthy.received().len(), 1);
    assert!(slow.received().is_empty());
}

#[tokio::test]
async fn sigkill_mid_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    // This server takes the messages but hangs before answering DATA.
    let stalled = SmtpPeer::start(&["--stall-data", "600"]).await;
    let mut first = start(dir.path(), stalled.port, "first.log").await;
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(accept(&http, &first.base, n).await);
    }
    // Wait until deliveries are under way, then kill without warning.
    wait_status(&http, &first.base, &ids[0], "sending").await;
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();

    let healthy = SmtpPeer::start(&[]).await;
    let second = start(dir.path(), healthy.port, "second.log").await;
    for id in &ids {
        wait_status(&http, &second.base, id, "sent").await;
    }
    let mut delivered: Vec<String> = healthy
        .received()
        .iter()
        .filter_map(|r| parse_eml(&r.path).header("message-id").map(str::to_owned))
        .collect();
    delivered.sort();
    delivered.dedup();
    for id in &ids {
        let want = format!("<{}@acme.example>", id.replace('-', ""));
        assert!(
            delivered.contains(&want),
            "{want} not among delivered Message-IDs {delivered:?}"
        );
    }

    let first_log = std::fs::read_to_string(&first.log).unwrap();
    let second_log = std::fs::read_to_string(&second.log).unwrap();
    assert!(
        first_log.contains("accepted"),
        "the first process logged its accepts"
    );
    assert!(
        second_log.contains("delivered"),
        "the second process logged its deliveries"
    );
    for (name, text) in [("first", &first_log), ("second", &second_log)] {
        for secret in [SECRET, "very-secret-key", LINK] {
            assert!(
                !text.contains(secret),
                "a secret or link reached the {name} log: {secret}"
            );
        }
    }
}
