//! The token rules as a caller meets them on a real server: `nbf` and a
//! future `iat` are honoured, `crit` headers and other algorithms refused,
//! the `Bearer` scheme in any case, exactly one `Authorization` header, and
//! 401 details that name the rule broken.

use crate::common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::server::{SECRET, TestServer, split};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token with exactly this header and these claims, signed with the server's secret.
fn token(header: Value, claims: Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{input}.{signature}")
}

fn claims(extra: Value) -> Value {
    let mut claims =
        json!({"aud": "mailbridge", "exp": now() + 60, "iat": now(), "tenant": "acme"});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

/// POSTs a valid message with these `Authorization` header values.
async fn post(server: &TestServer, authorization: &[String]) -> (u16, Value) {
    let mut req = server.http.post(server.url("/v1/messages")).json(&json!({
        "to": [{"email": "ada@example.com"}], "subject": "Hi", "text": "Hello"
    }));
    for value in authorization {
        req = req.header("authorization", value);
    }
    let (status, _, body) = split(req.send().await.unwrap()).await;
    (status, body)
}

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn time_claims_and_headers_are_checked() {
    let server = TestServer::start(&[]).await;
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let cases = [
        (
            token(hs256.clone(), claims(json!({"nbf": now() + 300}))),
            "nbf",
        ),
        (
            token(
                hs256.clone(),
                claims(json!({"iat": now() + 120, "exp": now() + 180})),
            ),
            "iat",
        ),
        (
            token(
                json!({"alg": "HS256", "crit": ["b64"], "b64": false}),
                claims(json!({})),
            ),
            "crit",
        ),
        (
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
                URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
            ),
            "HS256",
        ),
        (token(json!({"alg": "HS384"}), claims(json!({}))), "HS256"),
        (token(hs256.clone(), claims(json!({"aud": "other"}))), "aud"),
        (token(hs256.clone(), json!({"aud": "mailbridge"})), "exp"),
        (
            token(hs256.clone(), claims(json!({"exp": "soon"}))),
            "claims",
        ),
    ];
    for (token, rule) in cases {
        let (status, body) = post(&server, &[format!("Bearer {token}")]).await;
        assert_eq!(status, 401, "{rule}: {body}");
        assert!(detail(&body).contains(rule), "{rule}: {body}");
        for internal in ["JSON", "variant", "line ", "column"] {
            assert!(!detail(&body).contains(internal), "{body}");
        }
    }
    // Within the 30 s of tolerated skew, and a past nbf: accepted.
    let fine = token(
        hs256,
        claims(json!({"nbf": now() - 5, "iat": now() + 10, "exp": now() + 70})),
    );
    let (status, body) = post(&server, &[format!("Bearer {fine}")]).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn one_bearer_header_in_any_case() {
    let server = TestServer::start(&[]).await;
    let good = server.token(Some("acme"), false);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let (status, body) = post(&server, &[format!("{scheme} {good}")]).await;
        assert_eq!(status, 202, "{scheme}: {body}");
    }
    for pair in [
        [format!("Bearer {good}"), "Bearer forged".to_owned()],
        ["Bearer forged".to_owned(), format!("Bearer {good}")],
        [format!("Bearer {good}"), format!("Bearer {good}")],
    ] {
        let (status, body) = post(&server, &pair).await;
        assert_eq!(status, 401, "{body}");
        assert!(detail(&body).contains("more than one"), "{body}");
    }
    let (status, body) = post(&server, &[format!("Basic {good}")]).await;
    assert_eq!(status, 401, "{body}");
    assert!(detail(&body).contains("Bearer"), "{body}");
}
