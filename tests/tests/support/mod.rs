//! The real parts of the end-to-end tests, all on 127.0.0.1: an SMTP server
//! (aiosmtpd), the mailbridge service, and Keycloak from its distribution zip
//! with the extension jar in `providers/`.
#![allow(dead_code)]

pub mod console;
pub mod keycloak;
pub mod otlp;
pub mod realm_key;
pub mod wasm_in_keycloak;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python with the test peers (see `scripts/test-deps.sh`).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("MAILBRIDGE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let venv = PathBuf::from(home).join(".cache/mailbridge/venv/bin/python");
    assert!(
        venv.exists(),
        "run `bash scripts/test-deps.sh` first ({} is missing)",
        venv.display()
    );
    venv
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A real SMTP server; stopped when dropped.
pub struct SmtpServer {
    _child: Child,
    /// Its port.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// One received message, parsed as a mail client would.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Envelope recipients.
    pub rcpt_tos: Vec<String>,
    /// Envelope sender.
    pub mail_from: String,
    /// Decoded headers (lower-case names).
    pub headers: Value,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
}

impl Mail {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> String {
        self.headers[name.to_ascii_lowercase()][0]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl SmtpServer {
    /// Starts the server on a free port.
    pub async fn start() -> SmtpServer {
        Self::start_with(&[]).await
    }

    /// Starts the server on a free port with extra peer options.
    pub async fn start_with(args: &[&str]) -> SmtpServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(python())
            .arg(root().join("service/tests/peers/smtp_server.py"))
            .args(["--port", "0", "--maildir"])
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the SMTP server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        tokio::time::timeout(
            Duration::from_secs(30),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("SMTP server start")
        .expect("read its port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .expect("PORT line");
        SmtpServer {
            _child: child,
            port,
            dir,
        }
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<Mail> {
        let Ok(log) = std::fs::read_to_string(self.dir.path().join("messages.jsonl")) else {
            return Vec::new();
        };
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|r| self.parse(&r))
            .collect()
    }

    fn parse(&self, record: &Value) -> Mail {
        let file = self
            .dir
            .path()
            .join(record["file"].as_str().unwrap_or_default());
        let parsed = parse_eml(&file);
        let part = |ct: &str| {
            parsed["parts"]
                .as_array()
                .and_then(|parts| parts.iter().find(|p| p["content_type"] == ct))
                .and_then(|p| p["body"].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        Mail {
            rcpt_tos: record["rcpt_tos"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            mail_from: record["mail_from"].as_str().unwrap_or_default().to_owned(),
            headers: parsed["headers"].clone(),
            text: part("text/plain"),
            html: part("text/html"),
        }
    }

    /// Waits for a message to `to` whose subject or body satisfies `pick`, beyond the first `skip` such messages.
    pub async fn wait_for(&self, to: &str, skip: usize, timeout: Duration) -> Mail {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mine: Vec<Mail> = self
                .received()
                .into_iter()
                .filter(|m| m.rcpt_tos.iter().any(|r| r == to))
                .collect();
            if mine.len() > skip {
                return mine[skip].clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no message #{} to {to} within {timeout:?}",
                skip + 1
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many messages went to `to`.
    pub fn count_to(&self, to: &str) -> usize {
        self.received()
            .iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r == to))
            .count()
    }
}

fn parse_eml(path: &Path) -> Value {
    let out = std::process::Command::new(python())
        .arg(root().join("service/tests/peers/smtp_server.py"))
        .arg("--parse-eml")
        .arg(path)
        .output()
        .expect("parse a message");
    serde_json::from_slice(&out.stdout).expect("parsed message JSON")
}

/// A mailbridge service in this process; stopped when dropped.
pub struct Service {
    /// Its base URL.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Starts the service on `port`, delivering to `smtp_port`, sharing `secret`.
    pub async fn start(port: u16, smtp_port: u16, secret: &str) -> Service {
        Self::start_with_templates(port, smtp_port, secret, &root().join("templates")).await
    }

    /// As [`Service::start_with_templates`], with the TOML file `config`
    /// (`{smtp_port}` in it is replaced).
    pub async fn start_with_config(
        port: u16,
        smtp_port: u16,
        secret: &str,
        config: &str,
    ) -> Service {
        let file = tempfile::NamedTempFile::new().expect("config file");
        std::fs::write(
            file.path(),
            config.replace("{smtp_port}", &smtp_port.to_string()),
        )
        .expect("write the config");
        let path = file.path().display().to_string();
        let extra = [("MAILBRIDGE_CONFIG", path.as_str())];
        Self::start_with_vars(port, smtp_port, secret, &root().join("templates"), &extra).await
    }

    /// As [`Service::start`], rendering from the template directory `templates`.
    pub async fn start_with_templates(
        port: u16,
        smtp_port: u16,
        secret: &str,
        templates: &Path,
    ) -> Service {
        Self::start_with_vars(port, smtp_port, secret, templates, &[]).await
    }

    /// As [`Service::start_with_templates`], with `config` as its TOML file (tenants).
    pub async fn start_configured(
        port: u16,
        smtp_port: u16,
        secret: &str,
        templates: &Path,
        config: &str,
    ) -> Service {
        let file = tempfile::NamedTempFile::new().expect("config file");
        std::fs::write(file.path(), config).expect("write the config file");
        let path = file.path().display().to_string();
        let extra = [("MAILBRIDGE_CONFIG", path.as_str())];
        Self::start_with_vars(port, smtp_port, secret, templates, &extra).await
    }

    /// As [`Service::start_with_templates`], with more variables (`extra` wins).
    pub async fn start_with(
        port: u16,
        smtp_port: u16,
        secret: &str,
        templates: &Path,
        extra: &[(&str, String)],
    ) -> Service {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Self::start_with_vars(port, smtp_port, secret, templates, &extra).await
    }

    async fn start_with_vars(
        port: u16,
        smtp_port: u16,
        secret: &str,
        templates: &Path,
        extra: &[(&str, &str)],
    ) -> Service {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut vars = std::collections::BTreeMap::from([
            ("MAILBRIDGE_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
            (
                "MAILBRIDGE_DATABASE_URL".to_owned(),
                format!("sqlite://{}/mb.db", dir.path().display()),
            ),
            (
                "MAILBRIDGE_TRANSPORT".to_owned(),
                format!("smtp://127.0.0.1:{smtp_port}?tls=none"),
            ),
            (
                "MAILBRIDGE_TEMPLATES".to_owned(),
                templates.display().to_string(),
            ),
            ("MAILBRIDGE_JWT_SECRET".to_owned(), secret.to_owned()),
            ("MAILBRIDGE_RETRY_BASE".to_owned(), "200ms".to_owned()),
            ("MAILBRIDGE_SHUTDOWN_DELAY".to_owned(), "0s".to_owned()),
        ]);
        for (name, value) in extra {
            vars.insert((*name).to_owned(), (*value).to_owned());
        }
        let settings = mailbridge::config::load(&vars).expect("settings");
        let parts = mailbridge::server::build(&settings, mailbridge::server::AuthMode::Required)
            .await
            .expect("parts");
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .expect("bind the service");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(mailbridge::server::serve(parts, listener, async move {
            let _ = stopped.await;
        }));
        Service {
            url: format!("http://127.0.0.1:{port}"),
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Its working directory (the queue store).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Stops the service and waits until its port is closed.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
