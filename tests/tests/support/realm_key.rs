//! A realm that signs its requests with its own key (`mailbridgeSigning =
//! realm-key`) for a tenant that trusts only that realm's keys: it sends,
//! its keys are rotated the way an admin does it (a new generated key with a
//! higher priority, the old one passive, then deleted) and it keeps sending;
//! tokens forged around the realm's keys are refused.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};

use super::keycloak::{Admin, Keycloak};
use super::{Service, SmtpServer};

/// The realm (and tenant) of this scenario.
pub const REALM: &str = "keyed";
const BOB: &str = "bob@example.com";
const KEY_PROVIDER: &str = "org.keycloak.keys.KeyProvider";

/// The service's TOML for this scenario: the tenant trusts the realm at
/// `keycloak_url` and refuses shared-secret tokens.
pub fn tenant_config(keycloak_url: &str) -> String {
    format!(
        "[tenants.{REALM}]\nissuer = \"{keycloak_url}/realms/{REALM}\"\naccept_shared_secret = false\n"
    )
}

/// Runs the scenario against a Keycloak whose extension points at `service`.
pub async fn realm_key_signing_survives_rotation(
    kc: &Keycloak,
    admin: &Admin,
    smtp: &SmtpServer,
    service: &Service,
    shared_secret: &str,
) {
    admin.create_realm(REALM, smtp.port).await;
    let (status, body, _) = admin
        .call(
            Method::PUT,
            &format!("/{REALM}"),
            Some(json!({"smtpServer": {
                "host": "127.0.0.1", "port": smtp.port.to_string(),
                "from": format!("no-reply@{REALM}.example"), "mailbridgeSigning": "realm-key",
            }})),
        )
        .await;
    assert_eq!(status, 204, "realm setting mailbridgeSigning: {body}");
    let bob = admin.create_user(REALM, "bob", BOB, "en").await;
    let mut seen = 0;
    send(
        kc,
        admin,
        smtp,
        &bob,
        &mut seen,
        "signed with the realm's key",
    )
    .await;
    // The service fetched the realm's keys just now; a new key is refetched
    // at most once per 10 s, so let that window pass instead of racing it.
    let first_fetch = Instant::now();

    let old_key = active_key(admin).await;
    let realm_id = realm_id(admin).await;
    let old = generated_key_component(admin).await;
    let rotated = json!({
        "name": "rsa-rotated", "providerId": "rsa-generated", "providerType": KEY_PROVIDER,
        "parentId": realm_id,
        "config": {"priority": ["500"], "enabled": ["true"], "active": ["true"],
                   "algorithm": ["RS256"], "keySize": ["2048"]},
    });
    let (status, body, _) = admin
        .call(Method::POST, &format!("/{REALM}/components"), Some(rotated))
        .await;
    assert_eq!(status, 201, "add a new key: {body}");
    let new_key = active_key(admin).await;
    assert_ne!(new_key, old_key, "the new key is the active one");
    tokio::time::sleep(Duration::from_secs(11).saturating_sub(first_fetch.elapsed())).await;
    send(kc, admin, smtp, &bob, &mut seen, "signed with the new key").await;

    let mut passive = old.clone();
    passive["config"]["active"] = json!(["false"]);
    let path = format!("/{REALM}/components/{}", old["id"].as_str().unwrap());
    let (status, body, _) = admin.call(Method::PUT, &path, Some(passive)).await;
    assert_eq!(status, 204, "make the old key passive: {body}");
    send(kc, admin, smtp, &bob, &mut seen, "old key passive").await;
    let (status, body, _) = admin.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "remove the old key: {body}");
    send(kc, admin, smtp, &bob, &mut seen, "old key removed").await;

    forgeries_are_refused(admin, service, shared_secret, &new_key, kc).await;
}

/// Triggers one email to bob and waits for it at the SMTP server.
async fn send(
    kc: &Keycloak,
    admin: &Admin,
    smtp: &SmtpServer,
    bob: &str,
    seen: &mut usize,
    what: &str,
) {
    let (status, body, _) = admin
        .call(
            Method::PUT,
            &format!("/{REALM}/users/{bob}/execute-actions-email"),
            Some(json!(["UPDATE_PASSWORD"])),
        )
        .await;
    assert_eq!(status, 204, "{what}: {body}\n{}", kc.log_tail());
    smtp.wait_for(BOB, *seen, Duration::from_secs(30)).await;
    *seen += 1;
}

async fn forgeries_are_refused(
    admin: &Admin,
    service: &Service,
    shared_secret: &str,
    kid: &str,
    kc: &Keycloak,
) {
    let issuer = format!("{}/realms/{REALM}", kc.url);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": issuer, "aud": "mailbridge", "tenant": REALM,
        "iat": now, "exp": now + 60, "jti": "forged"});
    // The shared secret no longer acts for this tenant.
    let shared = mailbridge::auth::mint(shared_secret.as_bytes(), Some(REALM), false, 60).unwrap();
    assert_refused(service, &shared, "shared secret").await;
    // HS256 "signed" with the realm's public key (algorithm confusion).
    let public = public_key_pem(admin, kid).await;
    let input = unsigned(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}), &claims);
    let key = jsonwebtoken::EncodingKey::from_secret(public.as_bytes());
    let mac =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).unwrap();
    assert_refused(
        service,
        &format!("{input}.{mac}"),
        "HS256 with the public key",
    )
    .await;
    // `none`.
    let none = unsigned(&json!({"alg": "none", "kid": kid}), &claims);
    assert_refused(service, &format!("{none}."), "alg none").await;
    // Another realm's real signature (the master admin's token) over this realm's claims.
    let master = &admin.token();
    let mut parts = master.split('.');
    let (header, _, signature) = (parts.next(), parts.next(), parts.next());
    let forged = format!(
        "{}.{}.{}",
        header.unwrap(),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        signature.unwrap()
    );
    // Its `kid` is not among the realm's keys: refused, or, moments after a
    // fetch of them, asked to try again (a key rotated in since would come
    // with the next fetch); never taken.
    assert_refused_or_later(service, &forged, "another realm's signature").await;
    assert_refused(service, master, "a Keycloak access token of another realm").await;
}

async fn assert_refused_or_later(service: &Service, token: &str, what: &str) {
    let (status, body) = post_with(service, token).await;
    assert!(matches!(status, 401 | 503), "{what}: {status} {body}");
    assert!(body.contains("kid"), "{what}: {body}");
}

async fn assert_refused(service: &Service, token: &str, what: &str) {
    let (status, body) = post_with(service, token).await;
    assert_eq!(status, 401, "{what}: {body}");
}

/// Posts a message with `token`: the status and the body.
async fn post_with(service: &Service, token: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/messages", service.url))
        .bearer_auth(token)
        .json(&json!({"to": [{"email": BOB}], "subject": "Hi", "text": "Hello"}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

async fn realm_id(admin: &Admin) -> String {
    let (_, body, _) = admin.call(Method::GET, &format!("/{REALM}"), None).await;
    let realm: Value = serde_json::from_str(&body).unwrap();
    realm["id"].as_str().unwrap().to_owned()
}

/// The realm's active RS256 key id.
async fn active_key(admin: &Admin) -> String {
    let keys = keys(admin).await;
    keys["active"]["RS256"].as_str().unwrap().to_owned()
}

async fn keys(admin: &Admin) -> Value {
    let (status, body, _) = admin
        .call(Method::GET, &format!("/{REALM}/keys"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The realm's public key `kid` as PEM text, as an attacker would copy it.
async fn public_key_pem(admin: &Admin, kid: &str) -> String {
    let keys = keys(admin).await;
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the active key");
    let der = key["publicKey"].as_str().unwrap();
    format!("-----BEGIN PUBLIC KEY-----\n{der}\n-----END PUBLIC KEY-----\n")
}

/// The realm's original generated RSA key component.
async fn generated_key_component(admin: &Admin) -> Value {
    let (status, body, _) = admin
        .call(
            Method::GET,
            &format!("/{REALM}/components?type={KEY_PROVIDER}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let components: Vec<Value> = serde_json::from_str(&body).unwrap();
    components
        .into_iter()
        .find(|c| c["providerId"] == "rsa-generated")
        .expect("the realm's generated RSA key")
}
