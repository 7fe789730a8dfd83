//! Tokens signed with a Keycloak realm's own keys, against a local stand-in
//! for the realm (discovery document and JWKS over HTTP): every accepted
//! algorithm, key rotation, the refresh rate limit on unknown `kid`s, and the
//! forgeries that must be refused (other realm's key, wrong `iss`,
//! algorithm confusion, `none`, a realm token claiming another tenant or the
//! admin scope). The shared HS256 secret stays on at the same time.
//!
//! The keys in `fixtures/realm_keys/` are test-only keys made with openssl.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::server::{TestServer, split};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mailbridge::auth::jwks::{MIN_REFRESH, WINDOW_WAIT};
use serde_json::{Value, json};

/// A realm as Keycloak serves it: discovery, then `jwks_uri`.
#[derive(Clone)]
struct Realm {
    issuer: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl Realm {
    async fn start(name: &str) -> Realm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}/realms/{name}", listener.local_addr().unwrap());
        let realm = Realm {
            issuer,
            keys: Arc::default(),
            fetches: Arc::default(),
        };
        let app = axum::Router::new()
            .route(
                &format!("/realms/{name}/.well-known/openid-configuration"),
                get(|State(r): State<Realm>| async move {
                    Json(json!({"issuer": r.issuer, "jwks_uri": format!("{}/protocol/openid-connect/certs", r.issuer)}))
                }),
            )
            .route(
                &format!("/realms/{name}/protocol/openid-connect/certs"),
                get(|State(r): State<Realm>| async move {
                    r.fetches.fetch_add(1, Ordering::SeqCst);
                    let keys = r.keys.lock().unwrap().clone();
                    Json(json!({ "keys": keys }))
                }),
            )
            .with_state(realm.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        realm
    }

    /// Publishes `key`'s public half under `kid`, next to an encryption key as Keycloak has.
    fn publish(&self, key: &SigningKey) {
        let mut jwk = serde_json::to_value(
            Jwk::from_encoding_key(&key.encoding, key.alg).expect("public key"),
        )
        .unwrap();
        jwk["kid"] = key.kid.into();
        jwk["use"] = "sig".into();
        let mut keys = self.keys.lock().unwrap();
        if keys.is_empty() {
            let mut enc = jwk.clone();
            enc["kid"] = "enc-key".into();
            enc["use"] = "enc".into();
            enc["alg"] = "RSA-OAEP".into();
            keys.push(enc);
        }
        keys.push(jwk);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

struct SigningKey {
    kid: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
}

fn key(file: &str, kid: &'static str, alg: Algorithm) -> SigningKey {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/realm_keys")
        .join(file);
    let pem = std::fs::read(path).unwrap();
    let encoding = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_ed_pem(&pem),
    }
    .unwrap();
    SigningKey { kid, alg, encoding }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims the Keycloak extension sends, with `extra` merged in.
fn claims(iss: &str, extra: Value) -> Value {
    let mut c = json!({"iss": iss, "aud": "mailbridge", "tenant": "acme",
        "iat": now(), "exp": now() + 60, "jti": "j"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// A server whose tenant `acme` trusts `acme` and tenant `globex` trusts `globex`.
async fn server(acme: &Realm, globex: &Realm) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[tenants.acme]\nissuer = \"{}\"\n\
             [tenants.globex]\nissuer = \"{}\"\naccept_shared_secret = false\n",
            acme.issuer, globex.issuer
        ),
    )
    .unwrap();
    let server = TestServer::start(&[("MAILBRIDGE_CONFIG", config.to_str().unwrap())]).await;
    // The file was read at start.
    drop(dir);
    server
}

async fn post(server: &TestServer, token: &str, tenant: Option<&str>) -> (u16, Value) {
    let mut body = json!({"to": [{"email": "ada@example.com"}], "subject": "Hi", "text": "Hello"});
    if let Some(t) = tenant {
        body["tenant"] = t.into();
    }
    let req = server
        .http
        .post(server.url("/v1/messages"))
        .bearer_auth(token)
        .json(&body);
    let (status, _, body) = split(req.send().await.unwrap()).await;
    (status, body)
}

async fn refused(server: &TestServer, token: &str, why: &str) -> String {
    let (status, body) = post(server, token, None).await;
    assert_eq!(status, 401, "{why}: {body}");
    body["detail"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn realm_keys_sign_for_their_own_tenant_only() {
    let (acme, globex) = (Realm::start("acme").await, Realm::start("globex").await);
    let rsa = key("rsa-1.pem", "rsa-1", Algorithm::RS256);
    let ec = key("ec.pem", "ec-1", Algorithm::ES256);
    let ed = key("ed25519.pem", "ed-1", Algorithm::EdDSA);
    let other = key("other-realm.pem", "globex-1", Algorithm::RS256);
    for k in [&rsa, &ec, &ed] {
        acme.publish(k);
    }
    globex.publish(&other);
    let server = server(&acme, &globex).await;

    for k in [&rsa, &ec, &ed] {
        let (status, body) = post(&server, &sign(k, &claims(&acme.issuer, json!({}))), None).await;
        assert_eq!(status, 202, "{:?}: {body}", k.alg);
        let id = body["id"].as_str().unwrap();
        let record = server
            .wait_status(id, "sent", Duration::from_secs(10))
            .await;
        assert_eq!(record["tenant"], "acme");
    }
    // Without a `tenant` claim the realm's tenant is meant, not `default`.
    let plain = claims(&acme.issuer, json!({}));
    let mut no_tenant = plain.clone();
    no_tenant.as_object_mut().unwrap().remove("tenant");
    let (status, body) = post(&server, &sign(&rsa, &no_tenant), Some("acme")).await;
    assert_eq!(status, 202, "{body}");
    // The shared secret works at the same time (a migration).
    let (status, _, _) = server
        .post(
            "/v1/messages",
            Some("acme"),
            &json!({
        "to": [{"email": "ada@example.com"}], "subject": "Hi", "text": "Hello"}),
        )
        .await;
    assert_eq!(status, 202);
    // ... unless the tenant turned it off (globex): then only an admin token passes.
    let (status, _, body) = server
        .post(
            "/v1/messages",
            Some("globex"),
            &json!({
        "to": [{"email": "ada@example.com"}], "subject": "Hi", "text": "Hello"}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("realm's keys"),
        "{body}"
    );
    let admin = server.token(None, true);
    let (status, body) = post(&server, &admin, Some("globex")).await;
    assert_eq!(status, 202, "{body}");

    // A realm's token may not name, or act for, another tenant.
    let claimed = claims(&acme.issuer, json!({"tenant": "globex"}));
    let detail = refused(
        &server,
        &sign(&rsa, &claimed),
        "tenant claim of another realm",
    )
    .await;
    assert!(detail.contains("tenant"), "{detail}");
    let (status, body) = post(&server, &sign(&rsa, &plain), Some("globex")).await;
    assert_eq!(status, 403, "body tenant of another realm: {body}");
    // A realm's admin scope is not mailbridge's admin scope.
    let admin = sign(
        &rsa,
        &claims(&acme.issuer, json!({"scope": "mailbridge:admin"})),
    );
    let (status, body) = server.get("/v1/messages?status=failed", &admin).await;
    assert_eq!(status, 403, "{body}");
    // Keycloak's own access tokens (claim `typ`) are not mailbridge tokens.
    let access = sign(&rsa, &claims(&acme.issuer, json!({"typ": "Bearer"})));
    refused(&server, &access, "a Keycloak access token").await;

    // Wrong issuer: acme's key with globex's `iss`, and globex's key for acme.
    let wrong_iss = claims(&globex.issuer, json!({"tenant": "globex"}));
    refused(&server, &sign(&rsa, &wrong_iss), "acme's key, globex's iss").await;
    // A kid the realm does not have: refused, or (moments after a fetch)
    // asked to try again; never taken.
    let (status, body) = post(&server, &sign(&other, &plain), None).await;
    assert!(
        matches!(status, 401 | 503),
        "globex's key, acme's iss: {body}"
    );
    assert!(body["detail"].as_str().unwrap().contains("kid"), "{body}");
    let unknown = claims("http://127.0.0.1:9/realms/nobody", json!({}));
    let detail = refused(&server, &sign(&rsa, &unknown), "unknown issuer").await;
    assert!(detail.contains("iss"), "{detail}");

    // Algorithm confusion: HS256 "signed" with the realm's public key.
    let public = rsa_public_pem();
    let hs_input = unsigned(
        json!({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}),
        &plain,
    );
    let mac = jsonwebtoken::crypto::sign(
        hs_input.as_bytes(),
        &EncodingKey::from_secret(&public),
        Algorithm::HS256,
    )
    .unwrap();
    refused(
        &server,
        &format!("{hs_input}.{mac}"),
        "HS256 with the public key",
    )
    .await;
    // An ES256 header over an RS256 key's kid, and `none`.
    let es_on_rsa = unsigned(json!({"alg": "ES256", "kid": "rsa-1"}), &plain);
    let forged = format!(
        "{es_on_rsa}.{}",
        sign(&rsa, &plain).rsplit('.').next().unwrap()
    );
    refused(&server, &forged, "ES256 header on the RSA key").await;
    let none = unsigned(json!({"alg": "none", "kid": "rsa-1"}), &plain);
    refused(&server, &format!("{none}."), "alg none").await;
    server.stop().await;
}

#[tokio::test]
async fn rotated_keys_are_fetched_and_unknown_kids_fetch_at_most_once_per_window() {
    let (acme, globex) = (Realm::start("acme").await, Realm::start("globex").await);
    let old = key("rsa-1.pem", "rsa-1", Algorithm::RS256);
    let new = key("rsa-2.pem", "rsa-2", Algorithm::RS256);
    acme.publish(&old);
    let server = server(&acme, &globex).await;
    let claims = claims(&acme.issuer, json!({}));
    let (status, body) = post(&server, &sign(&old, &claims), None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(acme.fetches(), 1);

    // Rotation: the realm signs with a new key; the service learns it on
    // first sight. Moments after a fetch, the next one is not due yet: try
    // again (503, which the extension's SMTP fallback takes up), not refused.
    acme.publish(&new);
    let (status, body) = post(&server, &sign(&new, &claims), None).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("kid"), "{body}");
    assert_eq!(acme.fetches(), 1);
    // Within a few seconds of the window, requests wait for it and share one
    // fetch: the rotated-in key is accepted, a burst of unknown kids refused.
    tokio::time::sleep(MIN_REFRESH - WINDOW_WAIT + Duration::from_millis(500)).await;
    let started = Instant::now();
    let bogus = |kid: &'static str| sign(&key("rsa-1.pem", kid, Algorithm::RS256), &claims);
    let tokens = [
        sign(&new, &claims),
        bogus("x-1"),
        bogus("x-2"),
        bogus("x-3"),
        bogus("x-4"),
    ];
    let burst = tokens.map(|token| {
        let server = &server;
        async move { post(server, &token, None).await }
    });
    let answers = futures::future::join_all(burst).await;
    assert_eq!(
        answers[0].0, 202,
        "the rotated-in key is fetched: {}",
        answers[0].1
    );
    for (status, body) in &answers[1..] {
        assert_eq!(*status, 401, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("kid"), "{body}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a bounded wait"
    );
    assert_eq!(acme.fetches(), 2, "one refresh for the whole burst");
    let (status, _) = post(&server, &sign(&old, &claims), None).await;
    assert_eq!(status, 202, "the old key stays valid while published");
    server.stop().await;
}

#[tokio::test]
async fn an_unreachable_realm_is_a_bounded_503() {
    let acme = Realm::start("acme").await;
    // Nothing listens on the discard port.
    let gone = Realm {
        issuer: "http://127.0.0.1:9/realms/gone".into(),
        keys: Arc::default(),
        fetches: Arc::default(),
    };
    let server = server(&gone, &acme).await;
    let rsa = key("rsa-1.pem", "rsa-1", Algorithm::RS256);
    let started = Instant::now();
    let token = sign(&rsa, &claims(&gone.issuer, json!({})));
    let (status, _, body) = split(
        server
            .http
            .post(server.url("/v1/messages"))
            .bearer_auth(token)
            .json(&json!({"to": [{"email": "ada@example.com"}], "subject": "Hi", "text": "Hello"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(20));
    server.stop().await;
}

/// `header.claims`, unsigned.
fn unsigned(header: Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The RSA public key as PEM, the bytes an attacker would use as an HMAC secret.
fn rsa_public_pem() -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/realm_keys/rsa-1.pub.pem"),
    )
    .unwrap()
}
