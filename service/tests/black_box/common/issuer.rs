//! A stand-in for the Keycloak realm the console signs in with, on
//! 127.0.0.1: discovery, keys, an authorization endpoint where one user is
//! already logged in (it answers with the redirect to the callback at once),
//! and a token endpoint that checks the PKCE verifier and answers an ID
//! token signed with a test-only RSA key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The console's client at the issuer.
pub const CLIENT_ID: &str = "mailbridge-console";

/// The realm's path under the stand-in's address.
const REALM: &str = "/realms/ops";

/// A code handed out by the authorization endpoint, waiting for the token request.
struct Grant {
    nonce: String,
    challenge: String,
}

#[derive(Clone)]
struct Realm {
    issuer: String,
    user: String,
    roles: Vec<String>,
    key: Arc<EncodingKey>,
    grants: Arc<Mutex<HashMap<String, Grant>>>,
}

/// A running issuer; `url` is its issuer URL (`MAILBRIDGE_CONSOLE_ISSUER`).
pub struct Issuer {
    pub url: String,
}

impl Issuer {
    /// An issuer where `user`, with the console client's `roles`, is logged in.
    pub async fn start(user: &str, roles: &[&str]) -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}{REALM}", listener.local_addr().expect("addr"));
        let realm = Realm {
            issuer: url.clone(),
            user: user.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            key: Arc::new(EncodingKey::from_rsa_pem(&key_pem()).expect("key")),
            grants: Arc::default(),
        };
        let oidc = |path: &str| format!("{REALM}/protocol/openid-connect/{path}");
        let app = Router::new()
            .route(
                &format!("{REALM}/.well-known/openid-configuration"),
                get(discovery),
            )
            .route(&oidc("certs"), get(certs))
            .route(&oidc("auth"), get(authorize))
            .route(&oidc("token"), post(token))
            .with_state(realm);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Issuer { url }
    }

    /// The settings of a console at `console_url` that signs in here.
    pub fn settings(&self, console_url: &str) -> Vec<(&'static str, String)> {
        vec![
            ("MAILBRIDGE_CONSOLE_ISSUER", self.url.clone()),
            ("MAILBRIDGE_CONSOLE_CLIENT_ID", CLIENT_ID.to_owned()),
            ("MAILBRIDGE_CONSOLE_URL", console_url.to_owned()),
        ]
    }
}

fn key_pem() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/realm_keys/rsa-1.pem");
    std::fs::read(path).expect("test key")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

async fn discovery(State(realm): State<Realm>) -> Json<Value> {
    let endpoint = |path: &str| format!("{}/protocol/openid-connect/{path}", realm.issuer);
    Json(json!({
        "issuer": realm.issuer,
        "authorization_endpoint": endpoint("auth"),
        "token_endpoint": endpoint("token"),
        "jwks_uri": endpoint("certs"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn certs(State(realm): State<Realm>) -> Json<Value> {
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&realm.key, Algorithm::RS256).expect("jwk"))
            .expect("json");
    jwk["kid"] = "rsa-1".into();
    jwk["use"] = "sig".into();
    Json(json!({ "keys": [jwk] }))
}

/// The user is logged in already: straight back to the client with a code.
async fn authorize(
    State(realm): State<Realm>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| query.get(name).cloned().unwrap_or_default();
    let code = format!("code-{}", uuid::Uuid::new_v4());
    let grant = Grant {
        nonce: field("nonce"),
        challenge: field("code_challenge"),
    };
    realm
        .grants
        .lock()
        .expect("lock")
        .insert(code.clone(), grant);
    let back = format!(
        "{}?code={code}&state={}",
        field("redirect_uri"),
        field("state")
    );
    Redirect::to(&back).into_response()
}

/// The code exchanged for an ID token, once, with the verifier of its challenge.
async fn token(State(realm): State<Realm>, Form(form): Form<HashMap<String, String>>) -> Response {
    let grant = form
        .get("code")
        .and_then(|code| realm.grants.lock().expect("lock").remove(code));
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let Some(grant) = grant
        .filter(|g| URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes())) == g.challenge)
    else {
        let refused = Json(json!({"error": "invalid_grant"}));
        return (axum::http::StatusCode::BAD_REQUEST, refused).into_response();
    };
    let claims = json!({
        "iss": realm.issuer, "sub": "user-1", "aud": CLIENT_ID, "azp": CLIENT_ID,
        "iat": now(), "exp": now() + 300, "nonce": grant.nonce,
        "preferred_username": realm.user,
        "resource_access": { CLIENT_ID: { "roles": realm.roles } },
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let id_token = jsonwebtoken::encode(&header, &claims, &realm.key).expect("sign");
    Json(json!({
        "access_token": "access", "token_type": "Bearer", "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}
