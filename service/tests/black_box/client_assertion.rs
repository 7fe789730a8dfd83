//! A certificate instead of a client secret (RFC 7523 `private_key_jwt`)
//! for Microsoft Graph and SMTP XOAUTH2: a local token endpoint verifies the
//! client assertion as Entra does (signature with the registered
//! certificate's key, thumbprint, audience, issuer and subject, lifetime)
//! and only then hands out a token, which the send then uses.

use std::path::PathBuf;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::transport::{Dsn, from_dsn};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN_PATH: &str = "/T/oauth2/v2.0/token";
const SEND_PATH: &str = "/v1.0/users/no-reply@acme.example/sendMail";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/oauth")
        .join(name)
}

/// What Entra checks before it answers; `Err` names the rule broken.
fn check_assertion(request: &Request, token_url: &str) -> Result<(), String> {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or(format!("no {name}"))
    };
    if form.iter().any(|(k, _)| k == "client_secret") {
        return Err("a client secret was sent".into());
    }
    if field("client_assertion_type")? != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return Err("wrong client_assertion_type".into());
    }
    let assertion = field("client_assertion")?;
    let public = std::fs::read(fixture("app-public.pem")).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[token_url]);
    validation.set_issuer(&["app-id"]);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub", "nbf"]);
    let decoded = jsonwebtoken::decode::<Value>(
        &assertion,
        &DecodingKey::from_rsa_pem(&public).unwrap(),
        &validation,
    )
    .map_err(|e| format!("assertion refused: {e}"))?;
    if decoded.claims["sub"] != "app-id" || decoded.claims["jti"].as_str().is_none() {
        return Err(format!("claims: {}", decoded.claims));
    }
    let cert = CertificateDer::from_pem_file(fixture("app-cert.pem")).unwrap();
    let thumbprint = URL_SAFE_NO_PAD.encode(digest(&SHA256, cert.as_ref()));
    if decoded.header.x5t_s256.as_deref() != Some(thumbprint.as_str())
        || decoded.header.x5t.is_none()
    {
        return Err("the certificate's thumbprint is not named".into());
    }
    Ok(())
}

async fn token_endpoint(server: &MockServer) {
    let token_url = format!("{}{TOKEN_PATH}", server.uri());
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(move |request: &Request| match check_assertion(request, &token_url) {
            Ok(()) => ResponseTemplate::new(200)
                .set_body_json(json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "cert-token"})),
            Err(why) => ResponseTemplate::new(401)
                .set_body_json(json!({"error": "invalid_client", "error_description": why})),
        })
        .mount(server)
        .await;
}

fn message() -> OutgoingMessage {
    OutgoingMessage::plain(
        "acme",
        Mailbox::new("no-reply@acme.example"),
        Mailbox::new("ada@example.com"),
        "Reset your password",
        "Follow the link.",
    )
}

#[tokio::test]
async fn graph_gets_its_token_with_a_certificate() {
    let server = MockServer::start().await;
    token_endpoint(&server).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", "Bearer cert-token"))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    let uri = server.uri();
    let dsn = format!(
        "microsoftgraph+api://app-id@default?tenant=T&user=no-reply%40acme.example&endpoint={uri}\
         &token_url={uri}{TOKEN_PATH}&cert_file={}&key_file={}",
        fixture("app-cert.pem").display(),
        fixture("app-key.pem").display()
    );
    let graph = from_dsn(&Dsn::parse(&dsn).unwrap()).unwrap();
    let sent = graph.send(&message()).await;
    let requests = server.received_requests().await.unwrap();
    let token_answer = requests
        .iter()
        .find(|r| r.url.path() == TOKEN_PATH)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned());
    assert!(sent.is_ok(), "{sent:?}; token request: {token_answer:?}");
}

#[tokio::test]
async fn a_wrong_key_is_refused_by_the_token_endpoint() {
    let server = MockServer::start().await;
    token_endpoint(&server).await;
    let uri = server.uri();
    // The certificate registered, but another key signs: the endpoint refuses.
    let other_key =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/realm_keys/rsa-2.pem");
    let dsn = format!(
        "microsoftgraph+api://app-id@default?tenant=T&user=no-reply%40acme.example&endpoint={uri}\
         &token_url={uri}{TOKEN_PATH}&cert_file={}&key_file={}",
        fixture("app-cert.pem").display(),
        other_key.display()
    );
    let graph = from_dsn(&Dsn::parse(&dsn).unwrap()).unwrap();
    let error = graph.send(&message()).await.unwrap_err().to_string();
    assert!(error.contains("no Microsoft Graph access token"), "{error}");
}

#[test]
fn a_certificate_needs_its_key_and_excludes_a_secret() {
    let refusal = |dsn: &str| {
        from_dsn(&Dsn::parse(dsn).unwrap())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let cert = fixture("app-cert.pem");
    let only_cert = format!(
        "microsoftgraph+api://app-id@default?tenant=T&user=u%40acme.example&cert_file={}",
        cert.display()
    );
    assert!(refusal(&only_cert).contains("both cert_file and key_file"));
    let both = format!(
        "microsoftgraph+api://app-id:secret@default?tenant=T&user=u%40acme.example&cert_file={}&key_file={}",
        cert.display(),
        fixture("app-key.pem").display()
    );
    assert!(refusal(&both).contains("not both"));
    let xoauth2 = format!(
        "smtp://no-reply%40acme.example@smtp.office365.com:587?auth=xoauth2&token_url=https%3A%2F%2Flogin.example%2Ft\
         &client_id=app-id&cert_file={}&key_file={}",
        cert.display(),
        fixture("app-key.pem").display()
    );
    assert_eq!(refusal(&xoauth2), "", "XOAUTH2 takes a certificate too");
}
