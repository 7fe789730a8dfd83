//! At `MAILBRIDGE_LOG=trace`, the real binary accepts and delivers messages
//! whose HTML and text carry links and tokens, and none of them reaches its
//! log: dependencies' own debug and trace output stays off.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

const SECRET: &str = "log-test-secret-0123456789abcdef-01234";

fn token() -> String {
    mailbridge::auth::mint(SECRET.as_bytes(), Some("acme"), true, 300).expect("token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_link_body_or_token_in_the_log_at_trace() {
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let log = dir.path().join("stderr.log");
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailbridge"))
        .arg("serve")
        .env("MAILBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "MAILBRIDGE_DATABASE_URL",
            format!("sqlite://{}/mb.db", dir.path().display()),
        )
        .env(
            "MAILBRIDGE_TRANSPORT",
            format!("file://{}/outbox", dir.path().display()),
        )
        .env("MAILBRIDGE_TEMPLATES", templates)
        .env("MAILBRIDGE_JWT_SECRET", SECRET)
        .env("MAILBRIDGE_LOG", "trace")
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start mailbridge");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ready,
        "not ready: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let secrets = [
        "hrefkey-5b1e9c",
        "textkey-77ad20",
        "bodyword-c0ffee",
        "tplkey-3f9a11",
    ];
    let messages = [
        json!({"to": [{"email": "ada@example.com"}], "subject": "Reset",
               "html": format!("<p>Reset <a href=\"https://sso.example/r?key={}\">here</a> {}</p>", secrets[0], secrets[2])}),
        json!({"to": [{"email": "ada@example.com"}], "subject": "Reset",
               "text": format!("Open https://sso.example/r?key={}", secrets[1]),
               "html": format!("<a href=\"https://sso.example/r?key={}\">go</a>", secrets[1])}),
        json!({"to": [{"email": "ada@example.com"}], "template": "password-reset",
               "data": {"link": format!("https://sso.example/r?key={}", secrets[3]), "linkExpiration": 5,
                        "realmName": "acme", "user": {"username": "ada"}}}),
    ];
    for message in &messages {
        let answer = http
            .post(format!("{base}/v1/messages?wait=true"))
            .bearer_auth(token())
            .json(message)
            .send()
            .await
            .expect("request");
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "{body}");
    }
    let _ = child.kill().await;
    let captured = std::fs::read_to_string(&log).expect("log");
    assert!(
        captured.contains("TRACE") || captured.contains("DEBUG"),
        "trace is on: {captured}"
    );
    for secret in secrets {
        let leaks: Vec<&str> = captured
            .lines()
            .filter(|l| l.contains(secret))
            .take(3)
            .collect();
        assert!(leaks.is_empty(), "`{secret}` reached the log: {leaks:#?}");
    }
}
