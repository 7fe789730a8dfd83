//! `ses+api://default?region=R` without keys: the AWS SDK's default
//! credential chain. The binary runs with an environment that holds no keys
//! and no profile, only (a) a web identity token file and a role, exchanged
//! at moto's STS (`AssumeRoleWithWebIdentity`, as on EKS), or (b) the address
//! of a local stand-in for the EC2 instance metadata service (IMDSv2: a
//! session token first, then the role's temporary credentials). The message
//! reaches moto's SES, which checks the SigV4 signature and session token.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Moto {
    endpoint: String,
    region: String,
    /// A sending role's temporary credentials (moto's STS `AssumeRoleWithWebIdentity`).
    temporary: Temporary,
    /// That role.
    role_arn: String,
}

#[derive(Deserialize)]
struct Temporary {
    access_key: String,
    secret_key: String,
    session_token: String,
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
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (
        serde_json::from_str(&line).expect("moto's JSON line"),
        child,
    )
}

const IMDS_TOKEN: &str = "imds-session-token";
const ROLE: &str = "mailbridge-role";

#[derive(Clone)]
struct Imds {
    access_key: String,
    secret_key: String,
    session_token: String,
    /// The paths asked with a valid IMDSv2 token.
    served: Arc<Mutex<Vec<String>>>,
}

fn with_token(headers: &HeaderMap) -> bool {
    headers
        .get("x-aws-ec2-metadata-token")
        .is_some_and(|t| t == IMDS_TOKEN)
}

/// IMDSv2 as EC2 serves it: `PUT /latest/api/token`, then every read with
/// that token (a read without it, IMDSv1, is refused).
async fn start_imds(moto: &Moto) -> (String, Imds) {
    let imds = Imds {
        access_key: moto.temporary.access_key.clone(),
        secret_key: moto.temporary.secret_key.clone(),
        session_token: moto.temporary.session_token.clone(),
        served: Arc::default(),
    };
    let app = axum::Router::new()
        .route(
            "/latest/api/token",
            put(|headers: HeaderMap| async move {
                let ttl = "x-aws-ec2-metadata-token-ttl-seconds";
                match headers.get(ttl).cloned() {
                    Some(seconds) => (StatusCode::OK, [(ttl, seconds)], IMDS_TOKEN.to_owned()),
                    None => (
                        StatusCode::BAD_REQUEST,
                        [(ttl, axum::http::HeaderValue::from_static("0"))],
                        String::new(),
                    ),
                }
            }),
        )
        .route(
            "/latest/meta-data/iam/security-credentials/",
            get(|State(imds): State<Imds>, headers: HeaderMap| async move {
                if !with_token(&headers) {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                imds.served.lock().unwrap().push("role".into());
                (StatusCode::OK, ROLE.to_owned())
            }),
        )
        .route(
            &format!("/latest/meta-data/iam/security-credentials/{ROLE}"),
            get(|State(imds): State<Imds>, headers: HeaderMap| async move {
                if !with_token(&headers) {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                imds.served.lock().unwrap().push("credentials".into());
                let expiration = time::OffsetDateTime::now_utc() + Duration::from_secs(3600);
                let body = json!({
                    "Code": "Success", "Type": "AWS-HMAC",
                    "LastUpdated": "2026-01-01T00:00:00Z",
                    "AccessKeyId": imds.access_key, "SecretAccessKey": imds.secret_key,
                    "Token": imds.session_token,
                    "Expiration": expiration.format(&time::format_description::well_known::Rfc3339).unwrap(),
                });
                (StatusCode::OK, body.to_string())
            }),
        )
        .with_state(imds.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, imds)
}

/// `mailbridge send --direct` through SES with `env` and nothing else of this
/// process's environment; answers its stdout, or panics with its output.
async fn send_direct(moto: &Moto, env: &[(&str, String)]) -> String {
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    let home = tempfile::tempdir().unwrap();
    let transport = format!(
        "ses+api://default?region={}&endpoint={}",
        moto.region,
        utf8_percent_encode(&moto.endpoint, NON_ALPHANUMERIC)
    );
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailbridge"));
    cmd.args(["send", "--direct", "--to", "ada@example.com"])
        .args([
            "--from",
            "no-reply@acme.example",
            "--subject",
            "Hi",
            "--text",
            "Hello",
        ])
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MAILBRIDGE_TRANSPORT", transport)
        .env("MAILBRIDGE_TEMPLATES", templates)
        // No keys, no profile: only what `env` names can answer.
        .env("AWS_CONFIG_FILE", home.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("send finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("sent "), "{stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn a_web_identity_token_file_is_exchanged_at_sts() {
    let (moto, _moto_process) = start_moto();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "web-identity-token-of-the-pod").unwrap();
    send_direct(
        &moto,
        &[
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("AWS_ROLE_ARN", moto.role_arn.clone()),
            ("AWS_ROLE_SESSION_NAME", "mailbridge".into()),
            ("AWS_ENDPOINT_URL_STS", moto.endpoint.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_metadata_v2_credentials_sign_ses_requests() {
    let (moto, _moto_process) = start_moto();
    let (imds_url, imds) = start_imds(&moto).await;
    send_direct(&moto, &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds_url)]).await;
    let served = imds.served.lock().unwrap().clone();
    assert!(
        served.contains(&"credentials".to_owned()),
        "the credentials came from IMDSv2: {served:?}"
    );
    let data: serde_json::Value = reqwest::get(format!("{}/moto-api/data.json", moto.endpoint))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        data["ses"]["RawMessage"].as_array().map(Vec::len),
        Some(1),
        "{data}"
    );
}
