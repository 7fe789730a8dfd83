//! A real mailbridge server on 127.0.0.1, port 0, in this test process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mailbridge::{config, server};
use serde_json::Value;

/// The secret every test server shares with its callers.
pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

/// A running server; stops when dropped.
pub struct TestServer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its working directory (database, outbox).
    pub dir: tempfile::TempDir,
    /// The HTTP client to call it with.
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts a server with the embedded defaults, overridden by `env`.
    pub async fn start(env: &[(&str, &str)]) -> TestServer {
        Self::start_as(env, server::AuthMode::Required, |_| {}).await
    }

    /// The same, with the built parts changed by `adjust` before serving
    /// (what only code, not configuration, can change: a test's HTTP client).
    pub async fn start_with(env: &[(&str, &str)], adjust: impl FnOnce(&mut server::Parts)) -> Self {
        Self::start_as(env, server::AuthMode::Required, adjust).await
    }

    /// Starts a server in `auth` mode; `prepare` sees (and may change) its
    /// parts before it serves.
    pub async fn start_as(
        env: &[(&str, &str)],
        auth: server::AuthMode,
        prepare: impl FnOnce(&mut server::Parts),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut vars: BTreeMap<String, String> = BTreeMap::from([
            ("MAILBRIDGE_LISTEN".into(), "127.0.0.1:0".into()),
            (
                "MAILBRIDGE_DATABASE_URL".into(),
                format!("sqlite://{}/mb.db", dir.path().display()),
            ),
            (
                "MAILBRIDGE_TRANSPORT".into(),
                format!("file://{}/outbox", dir.path().display()),
            ),
            (
                "MAILBRIDGE_TEMPLATES".into(),
                root.join("templates").display().to_string(),
            ),
            ("MAILBRIDGE_JWT_SECRET".into(), SECRET.into()),
            ("MAILBRIDGE_RETRY_BASE".into(), "100ms".into()),
            ("MAILBRIDGE_RETRY_MAX_INTERVAL".into(), "500ms".into()),
            ("MAILBRIDGE_WAIT_TIMEOUT".into(), "10s".into()),
            ("MAILBRIDGE_SHUTDOWN_DELAY".into(), "0s".into()),
        ]);
        for (k, v) in env {
            vars.insert((*k).into(), (*v).into());
        }
        let settings = config::load(&vars).expect("test settings");
        let mut parts = server::build(&settings, auth).await.expect("server parts");
        prepare(&mut parts);
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(parts, listener, async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            dir,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A token for `tenant` (admin if asked).
    pub fn token(&self, tenant: Option<&str>, admin: bool) -> String {
        mailbridge::auth::mint(SECRET.as_bytes(), tenant, admin, 120).expect("token")
    }

    /// POSTs `body` to `path` as `tenant`; answers status, headers and JSON body.
    pub async fn post(
        &self,
        path: &str,
        tenant: Option<&str>,
        body: &Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(self.token(tenant, false))
            .json(body)
            .send()
            .await
            .expect("request");
        split(resp).await
    }

    /// GETs `path` with `token`.
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let (status, _, body) = split(resp).await;
        (status, body)
    }

    /// Puts `email` on `tenant`'s suppression list, as an administrator.
    pub async fn suppress(&self, tenant: &str, email: &str) {
        let put = self
            .http
            .put(self.url(&format!("/v1/suppressions/{tenant}/{email}")))
            .bearer_auth(self.token(None, true))
            .send()
            .await
            .expect("request");
        assert_eq!(put.status(), 201, "suppressing {email}");
    }

    /// Polls a message until its status is `want` (or panics after `timeout`).
    pub async fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> Value {
        let admin = self.token(None, true);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (_, record) = self.get(&format!("/v1/messages/{id}"), &admin).await;
            if record["status"] == want {
                return record;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "message {id} never became {want}: {record}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until `count` messages of `tenant` through `transport` are
    /// `sent` (or panics after `timeout`).
    pub async fn wait_sent_through(
        &self,
        tenant: &str,
        transport: &str,
        count: usize,
        timeout: Duration,
    ) {
        let admin = self.token(None, true);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (_, page) = self
                .get(&format!("/v1/messages?tenant={tenant}&status=sent"), &admin)
                .await;
            let rows = page["messages"].as_array().cloned().unwrap_or_default();
            if rows.iter().filter(|m| m["transport"] == transport).count() >= count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {count} sent through {transport}: {page}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Status, headers and JSON body of a response (Null when the body is not JSON).
pub async fn split(resp: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}
