//! Keycloak from Maven Central's distribution zip (cached under
//! `~/.cache/mailbridge`), started with `kc.sh start-dev` and the extension jar,
//! and a small admin REST client.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::{free_port, root};

/// The Keycloak version to run: `MAILBRIDGE_KEYCLOAK_VERSION` (set by
/// `scripts/keycloak-compat.sh`), else the one the extension is built against
/// (`keycloak.version` in its pom).
pub fn version() -> String {
    if let Ok(version) = std::env::var("MAILBRIDGE_KEYCLOAK_VERSION")
        && !version.trim().is_empty()
    {
        return version.trim().to_owned();
    }
    let pom = std::fs::read_to_string(root().join("keycloak-extension/pom.xml"))
        .expect("keycloak-extension/pom.xml");
    let start = pom
        .find("<keycloak.version>")
        .expect("a keycloak.version property")
        + "<keycloak.version>".len();
    let end = pom[start..].find('<').expect("end of keycloak.version");
    pom[start..start + end].trim().to_owned()
}

fn cache() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/mailbridge")
}

fn run(cmd: &mut std::process::Command, what: &str) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(status.success(), "{what} failed: {status}");
}

/// The extension jar, built if missing.
pub fn extension_jar() -> PathBuf {
    let jar = root().join("keycloak-extension/target/mailbridge-keycloak.jar");
    if !jar.exists() {
        run(
            std::process::Command::new("mvn")
                .args(["-B", "-ntp", "-q", "-DskipTests", "package", "-f"])
                .arg(root().join("keycloak-extension/pom.xml")),
            "building the Keycloak extension",
        );
    }
    jar
}

/// The unpacked Keycloak distribution, fetched and unpacked once.
pub fn install() -> PathBuf {
    let version = version();
    let home = cache().join(format!("keycloak-{version}"));
    if home.join("bin/kc.sh").exists() {
        return home;
    }
    std::fs::create_dir_all(cache()).expect("cache dir");
    let zip = cache().join(format!("keycloak-quarkus-dist-{version}.zip"));
    if !zip.exists() {
        run(
            std::process::Command::new("mvn").args([
                "-B",
                "-ntp",
                "-q",
                "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
                &format!("-Dartifact=org.keycloak:keycloak-quarkus-dist:{version}:zip"),
                &format!("-DoutputDirectory={}", cache().display()),
            ]),
            "downloading keycloak-quarkus-dist",
        );
    }
    let staging = cache().join(format!("unpacking-{version}"));
    let _ = std::fs::remove_dir_all(&staging);
    run(
        std::process::Command::new("unzip")
            .arg("-q")
            .arg(&zip)
            .arg("-d")
            .arg(&staging),
        "unzipping Keycloak",
    );
    std::fs::rename(staging.join(format!("keycloak-{version}")), &home)
        .expect("move Keycloak into place");
    let _ = std::fs::remove_dir_all(&staging);
    home
}

/// A running Keycloak; killed when dropped.
pub struct Keycloak {
    child: Child,
    /// Its base URL.
    pub url: String,
    /// Where its output goes.
    pub log: PathBuf,
    http: reqwest::Client,
}

impl Keycloak {
    /// Starts Keycloak with the extension selected and `options` (`key=value` for
    /// `--spi-email-sender--mailbridge--<key>`), and waits until it answers.
    pub async fn start(options: &[(&str, String)], log_dir: &std::path::Path) -> Keycloak {
        // Nothing listens there: the spans are dropped.
        Self::start_traced(
            options,
            log_dir,
            &format!("http://127.0.0.1:{}", free_port()),
        )
        .await
    }

    /// [`Keycloak::start`], exporting Keycloak's traces (OTLP/HTTP) to `traces`.
    /// Tracing is on in every start: it is a build option, and a start with
    /// other build options than the last would rebuild the shared installation.
    pub async fn start_traced(
        options: &[(&str, String)],
        log_dir: &std::path::Path,
        traces: &str,
    ) -> Keycloak {
        Self::start_traced_at(free_port(), options, log_dir, traces).await
    }

    /// [`Keycloak::start_traced`] on `port`, chosen beforehand so that a
    /// service started earlier can name the realms' issuer URLs.
    pub async fn start_traced_at(
        port: u16,
        options: &[(&str, String)],
        log_dir: &std::path::Path,
        traces: &str,
    ) -> Keycloak {
        let home = install();
        std::fs::copy(
            extension_jar(),
            home.join("providers/mailbridge-keycloak.jar"),
        )
        .expect("install the jar");
        let log = log_dir.join("keycloak.log");
        let mut cmd = Command::new("bash");
        cmd.arg(home.join("bin/kc.sh"))
            .arg("start-dev")
            .arg(format!("--http-port={port}"))
            .arg("--db=dev-mem")
            .arg(format!("--http-management-port={}", free_port()))
            .arg("--tracing-enabled=true")
            .arg("--tracing-protocol=http/protobuf")
            .arg(format!("--tracing-endpoint={traces}"))
            .arg("--spi-email-sender--provider=mailbridge")
            .arg("--spi-email-template--provider=mailbridge")
            .args(
                options
                    .iter()
                    .map(|(k, v)| format!("--spi-email-sender--mailbridge--{k}={v}")),
            )
            .env("KC_BOOTSTRAP_ADMIN_USERNAME", "admin")
            .env("KC_BOOTSTRAP_ADMIN_PASSWORD", "admin")
            .stdout(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .stderr(Stdio::from(
                std::fs::File::options()
                    .append(true)
                    .open(&log)
                    .expect("log file"),
            ))
            .kill_on_drop(true);
        let temurin = PathBuf::from("/usr/lib/jvm/temurin-25-jdk-amd64");
        if std::env::var_os("JAVA_HOME").is_none() && temurin.join("bin/java").exists() {
            cmd.env("JAVA_HOME", &temurin);
            // Keycloak's thread-local reset needs this on Java 24 and later.
            cmd.env(
                "JAVA_OPTS_APPEND",
                "--add-opens java.base/java.lang=ALL-UNNAMED",
            );
        }
        let child = cmd.spawn().expect("start Keycloak");
        let url = format!("http://127.0.0.1:{port}");
        let kc = Keycloak {
            child,
            url,
            log,
            http: reqwest::Client::new(),
        };
        kc.wait_ready(Duration::from_secs(240)).await;
        kc
    }

    async fn wait_ready(&self, timeout: Duration) {
        let started = Instant::now();
        let probe = format!(
            "{}/realms/master/.well-known/openid-configuration",
            self.url
        );
        while started.elapsed() < timeout {
            if self
                .http
                .get(&probe)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                eprintln!("Keycloak answered after {:.0?}", started.elapsed());
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "Keycloak did not start within {timeout:?}; log:\n{}",
            self.log_tail()
        );
    }

    /// The end of Keycloak's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// An admin REST client for the master admin.
    pub async fn admin(&self) -> Admin {
        let token_url = format!("{}/realms/master/protocol/openid-connect/token", self.url);
        let token = admin_token(&self.http, &token_url).await;
        Admin {
            base: format!("{}/admin/realms", self.url),
            token: std::sync::Mutex::new(token),
            token_url,
            http: self.http.clone(),
        }
    }

    /// Stops Keycloak.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// A fresh access token of the master realm's admin.
async fn admin_token(http: &reqwest::Client, token_url: &str) -> String {
    let resp: Value = http
        .post(token_url)
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", "admin"),
            ("password", "admin"),
        ])
        .send()
        .await
        .expect("admin token request")
        .json()
        .await
        .expect("admin token");
    resp["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// The admin REST API, as the master realm's admin. Master's tokens live 60 s,
/// less than a long test on a busy machine: a call answered 401 is sent once
/// more with a fresh token.
pub struct Admin {
    base: String,
    token: std::sync::Mutex<String>,
    token_url: String,
    http: reqwest::Client,
}

impl Admin {
    /// The master admin's current access token (signed with the master realm's key).
    pub fn token(&self) -> String {
        self.token.lock().expect("token").clone()
    }

    /// Sends what `build` makes with the current token; on 401, once more with a fresh one.
    async fn send(&self, build: impl Fn(&str) -> reqwest::RequestBuilder) -> reqwest::Response {
        let resp = build(&self.token()).send().await.expect("admin request");
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
            return resp;
        }
        let fresh = admin_token(&self.http, &self.token_url).await;
        *self.token.lock().expect("token") = fresh.clone();
        build(&fresh).send().await.expect("admin request")
    }

    /// Sends `method path` with an optional JSON body; answers status and body text.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String, Option<String>) {
        let url = format!("{}{path}", self.base);
        let resp = self
            .send(|token| {
                let req = self.http.request(method.clone(), &url).bearer_auth(token);
                match &body {
                    Some(body) => req.json(body),
                    None => req,
                }
            })
            .await;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        (status, resp.text().await.unwrap_or_default(), location)
    }

    /// Sends a form.
    pub async fn form(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let resp = self
            .send(|token| self.http.post(&url).bearer_auth(token).form(form))
            .await;
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }

    /// Creates a realm that sends as `from` through SMTP host:port.
    pub async fn create_realm(&self, name: &str, smtp_port: u16) {
        let realm = json!({
            "realm": name, "enabled": true,
            "resetPasswordAllowed": true,
            "internationalizationEnabled": true,
            "supportedLocales": ["en", "de"], "defaultLocale": "en",
            "organizationsEnabled": true,
            "smtpServer": {
                "host": "127.0.0.1", "port": smtp_port.to_string(),
                "from": format!("no-reply@{name}.example"), "fromDisplayName": format!("{name} login"),
                "replyTo": format!("help@{name}.example"),
                "password": "realm-smtp-password-never-forwarded", "user": "realm-user", "auth": "false",
            },
        });
        let (status, body, _) = self.call(reqwest::Method::POST, "", Some(realm)).await;
        assert_eq!(status, 201, "create realm {name}: {body}");
    }

    /// Creates a user and answers its id.
    pub async fn create_user(
        &self,
        realm: &str,
        username: &str,
        email: &str,
        locale: &str,
    ) -> String {
        let user = json!({
            "username": username, "email": email, "enabled": true, "emailVerified": false,
            "firstName": "Ada", "lastName": "Lovelace",
            "attributes": {"locale": [locale]},
        });
        let (status, body, location) = self
            .call(
                reqwest::Method::POST,
                &format!("/{realm}/users"),
                Some(user),
            )
            .await;
        assert_eq!(status, 201, "create user {username}: {body}");
        location
            .and_then(|l| l.rsplit('/').next().map(str::to_owned))
            .expect("the new user's id")
    }
}

/// Between `"` quotes around the first occurrence of `needle`.
fn quoted_around(html: &str, needle: &str) -> String {
    let at = html
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in page:\n{html}"));
    let start = html[..at].rfind('"').map(|i| i + 1).unwrap_or(0);
    let end = html[at..].find('"').map(|i| at + i).unwrap_or(html.len());
    html[start..end].replace("&amp;", "&")
}

/// "Forgot password?" on `realm`'s login page for `username`, as a browser does it.
pub async fn forgot_password(kc: &Keycloak, realm: &str, username: &str) {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let redirect = format!("{}/realms/{realm}/account/", kc.url);
    let auth = format!("{}/realms/{realm}/protocol/openid-connect/auth", kc.url);
    let login = http
        .get(&auth)
        .query(&[
            ("client_id", "account-console"),
            ("redirect_uri", redirect.as_str()),
            ("response_type", "code"),
            ("scope", "openid"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reset = quoted_around(&login, "login-actions/reset-credentials");
    if reset.starts_with('/') {
        reset = format!("{}{reset}", kc.url);
    }
    let form = http.get(&reset).send().await.unwrap().text().await.unwrap();
    let mut action = quoted_around(&form, "login-actions/reset-credentials?session_code");
    if action.starts_with('/') {
        action = format!("{}{action}", kc.url);
    }
    let done = http
        .post(&action)
        .form(&[("username", username)])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200, "reset-credentials form");
    let page = done.text().await.unwrap();
    assert!(
        page.contains("You should receive an email"),
        "no confirmation after POST {action}:\n{page}\nform was:\n{form}"
    );
}
