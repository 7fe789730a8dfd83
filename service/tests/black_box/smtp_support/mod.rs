//! Shared parts of the SMTP tests: a real SMTP server (aiosmtpd, see
//! `peers/smtp_server.py`) on 127.0.0.1, test certificates, sample messages,
//! and a counting OAuth2 token endpoint.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::transport::{Dsn, SharedTransport, from_dsn};
use serde::Deserialize;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

use crate::common;

/// A running SMTP server peer; stopped when dropped.
pub struct SmtpPeer {
    _child: Child,
    /// The port it listens on, at 127.0.0.1.
    pub port: u16,
    maildir: TempDir,
}

/// One message the peer accepted.
#[derive(Debug, Deserialize)]
pub struct Received {
    file: String,
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// Which TCP connection (1, 2, …) carried it.
    pub connection: u32,
    pub tls: bool,
    pub auth_user: Option<String>,
    /// Whether RCPT TO had arrived before MAIL FROM was answered.
    #[serde(default)]
    pub pipelined: bool,
    #[serde(skip)]
    pub path: PathBuf,
}

impl SmtpPeer {
    /// Starts the peer with extra `args` and waits for its port.
    pub async fn start(args: &[&str]) -> SmtpPeer {
        let maildir = TempDir::new().unwrap();
        let mut child = Command::new(common::python())
            .arg(common::peers_dir().join("smtp_server.py"))
            .args(["--port", "0", "--maildir"])
            .arg(maildir.path())
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the SMTP peer");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("SMTP peer did not start within 30 s")
        .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the SMTP peer: {line:?}"));
        SmtpPeer {
            _child: child,
            port,
            maildir,
        }
    }

    /// The messages accepted so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let log = self.maildir.path().join("messages.jsonl");
        let Ok(text) = std::fs::read_to_string(log) else {
            return Vec::new();
        };
        text.lines()
            .map(|l| {
                let mut r: Received = serde_json::from_str(l).unwrap();
                r.path = self.maildir.path().join(&r.file);
                r
            })
            .collect()
    }
}

/// A message as a mail client reads it (Python's `email` parser).
#[derive(Debug, Deserialize)]
pub struct Parsed {
    pub content_type: String,
    pub headers: std::collections::BTreeMap<String, Vec<String>>,
    pub parts: Vec<Part>,
}

/// One leaf part of a parsed message.
#[derive(Debug, Deserialize)]
pub struct Part {
    pub content_type: String,
    pub body: String,
}

impl Parsed {
    /// The single value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| {
            assert_eq!(v.len(), 1, "header {name} appears {} times", v.len());
            v[0].as_str()
        })
    }
}

/// Parses the `.eml` file at `path`.
pub fn parse_eml(path: &Path) -> Parsed {
    let out = std::process::Command::new(common::python())
        .arg(common::peers_dir().join("smtp_server.py"))
        .arg("--parse-eml")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A fresh test CA, a server certificate for 127.0.0.1 and localhost
/// (`server.pem`, `server.key`, `ca.pem`) and a service-account key pair.
pub fn make_certs() -> TempDir {
    let dir = TempDir::new().unwrap();
    let status = std::process::Command::new(common::python())
        .arg(common::peers_dir().join("smtp_server.py"))
        .arg("--make-certs")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

/// The path of `name` in `dir`, as text for a DSN or an argument.
pub fn path_in(dir: &TempDir, name: &str) -> String {
    dir.path().join(name).display().to_string()
}

/// The transport of `dsn`.
pub fn transport(dsn: &str) -> SharedTransport {
    from_dsn(&Dsn::parse(dsn).unwrap()).unwrap()
}

/// A message to ada@example.com with text and HTML; `n` tells messages apart.
pub fn message(n: u32) -> OutgoingMessage {
    let id = uuid::Uuid::new_v4();
    let from = Mailbox {
        email: "no-reply@acme.example".into(),
        name: Some("ACME Accounts".into()),
    };
    OutgoingMessage {
        id,
        tenant: "acme".into(),
        message_id: mailbridge::email::make_message_id(id, &from),
        from,
        envelope_from: None,
        reply_to: None,
        to: vec![Mailbox::new("ada@example.com")],
        cc: vec![],
        bcc: vec![],
        subject: format!("Message {n}"),
        text: Some(format!("Hello {n}")),
        html: Some(format!("<p>Hello {n}</p>")),
        tags: vec![],
        metadata: Default::default(),
    }
}

/// A token endpoint on 127.0.0.1 that hands out `tokens` in turn (the last
/// one again once they run out) and counts the requests.
pub struct TokenEndpoint {
    pub server: MockServer,
}

struct Tokens {
    tokens: Vec<String>,
    next: Mutex<usize>,
}

impl Respond for Tokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut next = self.next.lock().unwrap();
        let token = &self.tokens[(*next).min(self.tokens.len() - 1)];
        *next += 1;
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": token,
        }))
    }
}

impl TokenEndpoint {
    /// Answers client-credentials grants with `tokens` in turn.
    pub async fn start(tokens: &[&str]) -> TokenEndpoint {
        let server = MockServer::builder().start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path("/token"))
            .respond_with(Tokens {
                tokens: tokens.iter().map(|t| t.to_string()).collect(),
                next: Mutex::new(0),
            })
            .mount(&server)
            .await;
        TokenEndpoint { server }
    }

    /// The token URL, percent-encoded for a DSN.
    pub fn url_for_dsn(&self) -> String {
        format!("{}/token", self.server.uri())
            .replace(':', "%3A")
            .replace('/', "%2F")
    }

    /// How many token requests came in.
    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }
}
