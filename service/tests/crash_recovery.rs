//! The real `mailbridge` binary is killed with SIGKILL while it delivers; after a
//! restart every accepted message is delivered, each with the Message-ID chosen
//! when it was accepted. Also: no secret or link reaches the log, even at debug.

mod common;
mod smtp_support;

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

#[tokio::test]
async fn sigkill_mid_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    // This server takes the messages but hangs before answering DATA.
    let stalled = SmtpPeer::start(&["--stall-data", "600"]).await;
    let mut first = start(dir.path(), stalled.port, "first.log").await;
    let mut ids = Vec::new();
    for n in 0..20 {
        let body = json!({
            "to": [{"email": format!("user{n}@example.com")}],
            "from": {"email": "no-reply@acme.example"},
            "template": "password-reset",
            "data": {"link": LINK, "linkExpiration": 5, "realmName": "acme", "user": {"username": format!("user{n}")}},
        });
        let resp = http
            .post(format!("{}/v1/messages", first.base))
            .bearer_auth(token(false))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let accepted: Value = resp.json().await.unwrap();
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    // Wait until deliveries are under way, then kill without warning.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if status(&http, &first.base, &ids[0]).await["status"] == "sending" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();

    let healthy = SmtpPeer::start(&[]).await;
    let second = start(dir.path(), healthy.port, "second.log").await;
    for id in &ids {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let record = status(&http, &second.base, id).await;
            if record["status"] == "sent" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "message {id} was not delivered after restart: {record}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
