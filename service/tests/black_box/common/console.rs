//! A console in a real server on 127.0.0.1, and a browser-like client of it
//! (its own cookies, redirects not followed).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailbridge::console::session::{COOKIE, Viewer};
use mailbridge::server::AuthMode;
use serde_json::{Value, json};

use super::server::TestServer;

/// A transport that refuses every connection: each attempt fails transiently,
/// the second is the last, so messages end `failed` with two attempts.
pub const FAILING: [(&str, &str); 2] = [
    ("MAILBRIDGE_TRANSPORT", "smtp://127.0.0.1:1?tls=none"),
    ("MAILBRIDGE_RETRY_MAX_ATTEMPTS", "2"),
];

/// A browser: its own cookies, redirects not followed.
pub struct Browser<'a> {
    server: &'a TestServer,
    http: reqwest::Client,
    /// The session cookie's value.
    pub cookie: Option<String>,
    /// Its other cookies, by name.
    pub jar: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    pub fn new(server: &'a TestServer, cookie: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Browser {
            server,
            http,
            cookie,
            jar: BTreeMap::new(),
        }
    }

    fn remember(&mut self, resp: &reqwest::Response) {
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str().expect("cookie");
            let pair = set.split(';').next().expect("pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            let kept = (!set.contains("Max-Age=0")).then(|| value.to_owned());
            if name == COOKIE {
                self.cookie = kept;
            } else if let Some(value) = kept {
                self.jar.insert(name.to_owned(), value);
            } else {
                self.jar.remove(name);
            }
        }
    }

    fn with_cookie(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let session = self.cookie.iter().map(|c| format!("{COOKIE}={c}"));
        let others = self
            .jar
            .iter()
            .map(|(name, value)| format!("{name}={value}"));
        let header = session.chain(others).collect::<Vec<_>>().join("; ");
        if header.is_empty() {
            req
        } else {
            req.header("cookie", header)
        }
    }

    pub async fn get(&mut self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let req = self.with_cookie(self.http.get(self.server.url(path)));
        let resp = req.send().await.expect("get");
        self.remember(&resp);
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.expect("body"))
    }

    /// POSTs `form`; answers status, headers and body.
    pub async fn submit(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let req = self.with_cookie(self.http.post(self.server.url(path)).form(form));
        let resp = req.send().await.expect("post");
        self.remember(&resp);
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.expect("body"))
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> u16 {
        let req = self.with_cookie(self.http.post(self.server.url(path)).form(form));
        let resp = req.send().await.expect("post");
        self.remember(&resp);
        resp.status().as_u16()
    }
}

/// The CSRF token in a page's forms.
pub fn csrf(page: &str) -> String {
    let start = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a token")
        + 19;
    page[start..].split('"').next().expect("token").to_owned()
}

/// How many `marker`s a page holds.
pub fn count(page: &str, marker: &str) -> usize {
    page.matches(marker).count()
}

/// Queues a message for `tenant` to `to`; answers its id.
pub async fn accept(server: &TestServer, tenant: &str, to: &str) -> String {
    let resp = server
        .http
        .post(server.url("/v1/messages"))
        .json(&json!({"tenant": tenant, "to": [{"email": to}], "subject": "Hello", "text": "secret body"}))
        .send()
        .await
        .expect("accept");
    assert_eq!(resp.status().as_u16(), 202);
    let body: Value = resp.json().await.expect("json");
    body["id"].as_str().expect("id").to_owned()
}

/// Polls the API until message `id` is `status`.
pub async fn wait_status(server: &TestServer, id: &str, status: &str) -> Value {
    for _ in 0..600 {
        let record: Value = server
            .http
            .get(server.url(&format!("/v1/messages/{id}")))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if record["status"] == status {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {id} never became {status}");
}

/// A local server with the console; `viewers` get sessions before it serves.
/// Answers each session's id and CSRF token.
pub async fn console(viewers: &[Viewer]) -> (TestServer, Vec<(String, String)>) {
    console_with(&FAILING, viewers).await
}

/// The same with the settings `env` instead of a failing transport.
pub async fn console_with(
    env: &[(&str, &str)],
    viewers: &[Viewer],
) -> (TestServer, Vec<(String, String)>) {
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let opened = sessions.clone();
    let viewers = viewers.to_vec();
    let server = TestServer::start_as(env, AuthMode::InsecureNoAuth, move |parts| {
        let console = parts.state.console.as_ref().expect("the console is on");
        for viewer in viewers {
            let id = console.sessions.open(viewer);
            let csrf = console.sessions.find(&id).expect("session").csrf;
            opened.lock().expect("lock").push((id, csrf));
        }
    })
    .await;
    let ids = sessions.lock().expect("lock").clone();
    (server, ids)
}

/// Copies the directory `from` (a template directory) to `to`.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}
