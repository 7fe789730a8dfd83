//! One realm's signing keys: its discovery document names `jwks_uri`, whose
//! keys are cached by `kid`. An unknown `kid` (a key rotated in) refreshes
//! the set, at most once per [`MIN_REFRESH`]; a caller waits for that
//! refresh at most until the window opens plus one bounded fetch. The whole
//! set is also refreshed when it is older than [`MAX_AGE`], so a key removed
//! from the realm stops being accepted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::TokenError;
use crate::transport::http::{MAX_DOCUMENT, body_at_most};

/// Shortest time between two fetches of a realm's keys.
pub const MIN_REFRESH: Duration = Duration::from_secs(10);
/// Age after which a realm's keys are fetched again before use.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// Bound of one HTTP request for the discovery document or the key set.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A public key of the realm, and the one algorithm it may verify.
#[derive(Clone)]
pub struct RealmKey {
    /// The key.
    pub key: Arc<DecodingKey>,
    /// Its algorithm (RS256, ES256 or EdDSA).
    pub alg: Algorithm,
}

#[derive(Default)]
struct KeyState {
    keys: HashMap<String, RealmKey>,
    fetched_at: Option<Instant>,
    jwks_uri: Option<String>,
}

/// An HTTP client for realms' keys: bounded, and never following a
/// redirect (keys come from the URL the realm names, and nowhere else).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// The cached key set of one realm.
pub struct RealmKeySet {
    issuer: String,
    http: reqwest::Client,
    state: Mutex<KeyState>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct KeySetDocument {
    keys: Vec<serde_json::Value>,
}

impl RealmKeySet {
    /// An empty cache for the realm `issuer`; nothing is fetched until a token needs it.
    pub fn new(issuer: &str, http: reqwest::Client) -> Self {
        Self {
            issuer: issuer.to_owned(),
            http,
            state: Mutex::new(KeyState::default()),
        }
    }

    /// The key named `kid`, fetching the set when it is unknown or stale.
    pub async fn key(&self, kid: &str) -> Result<RealmKey, TokenError> {
        let wait_until = {
            let mut state = self.state.lock().await;
            if state.fetched_at.is_none_or(|at| at.elapsed() >= MAX_AGE) {
                self.refresh(&mut state).await?;
            }
            if let Some(key) = state.keys.get(kid) {
                return Ok(key.clone());
            }
            state.fetched_at.map(|at| at + MIN_REFRESH)
        };
        // Not holding the lock while waiting: tokens with known keys go on being verified.
        if let Some(at) = wait_until {
            tokio::time::sleep_until(at).await;
        }
        let mut state = self.state.lock().await;
        // Another caller may have refreshed while this one waited.
        if state
            .fetched_at
            .is_none_or(|at| at.elapsed() >= MIN_REFRESH)
        {
            self.refresh(&mut state).await?;
        }
        state.keys.get(kid).cloned().ok_or(TokenError::UnknownKey)
    }

    /// Fetches the key set; on failure keeps what it had (and answers an
    /// error only when it has nothing), and still counts the attempt so an
    /// unreachable realm is not asked more often than once per window.
    async fn refresh(&self, state: &mut KeyState) -> Result<(), TokenError> {
        let result = self.fetch(state.jwks_uri.as_deref()).await;
        state.fetched_at = Some(Instant::now());
        match result {
            Ok((jwks_uri, keys)) => {
                tracing::debug!(issuer = %self.issuer, keys = keys.len(), "fetched the realm's signing keys");
                state.jwks_uri = Some(jwks_uri);
                state.keys = keys;
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(issuer = %self.issuer, %reason, "could not fetch the realm's signing keys");
                if state.keys.is_empty() {
                    Err(TokenError::KeysUnavailable)
                } else {
                    Ok(())
                }
            }
        }
    }

    async fn fetch(
        &self,
        known_uri: Option<&str>,
    ) -> Result<(String, HashMap<String, RealmKey>), String> {
        let jwks_uri = match known_uri {
            Some(uri) => uri.to_owned(),
            None => self.discover().await?,
        };
        let set: KeySetDocument = self.get_json(&jwks_uri).await?;
        let keys = set.keys.iter().filter_map(signing_key).collect();
        Ok((jwks_uri, keys))
    }

    /// The realm's `jwks_uri`, from a discovery document that names the same issuer.
    async fn discover(&self) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let discovery: Discovery = self.get_json(&url).await?;
        if discovery.issuer != self.issuer {
            return Err(format!(
                "the discovery document names issuer `{}`, not `{}`",
                discovery.issuer, self.issuer
            ));
        }
        // The keys decide who may send: fetched over TLS, as the issuer is
        // (plain HTTP only on this machine, as for the issuer).
        super::realm::check_fetch_url(&discovery.jwks_uri)
            .map_err(|e| format!("the discovery document's jwks_uri: {e}"))?;
        Ok(discovery.jwks_uri)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let response = self
            .http
            .get(url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", without_url(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        let body = body_at_most(response, MAX_DOCUMENT)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not the expected JSON ({e})"))
    }
}

fn without_url(error: &reqwest::Error) -> String {
    let mut error = error.to_string();
    if let Some(start) = error.find(" for url") {
        error.truncate(start);
    }
    error
}

/// A usable signing key of a JWK set: with a `kid`, for signatures, and of
/// one of the algorithms we accept. Anything else (encryption keys, HMAC
/// keys, other curves, keys we cannot parse) is skipped, not an error.
fn signing_key(value: &serde_json::Value) -> Option<(String, RealmKey)> {
    let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
    let kid = jwk.common.key_id.clone()?;
    if value.get("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let alg = algorithm_of(&jwk)?;
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((
        kid,
        RealmKey {
            key: Arc::new(key),
            alg,
        },
    ))
}

/// The algorithm the key's type and curve allow, which its `alg` (if any) must name.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(by_type),
        Some(named) if named == KeyAlgorithm::from(by_type) => Some(by_type),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    async fn realm_naming(jwks_uri: impl Fn(&str) -> String) -> (MockServer, RealmKeySet) {
        let server = MockServer::start().await;
        let issuer = format!("{}/realms/acme", server.uri());
        let discovery = serde_json::json!({"issuer": issuer, "jwks_uri": jwks_uri(&server.uri())});
        Mock::given(path("/realms/acme/.well-known/openid-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(discovery))
            .mount(&server)
            .await;
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let keys =
            serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "e"}]});
        Mock::given(path("/certs"))
            .respond_with(ResponseTemplate::new(200).set_body_json(keys))
            .mount(&server)
            .await;
        Mock::given(path("/moved"))
            .respond_with(
                ResponseTemplate::new(302)
                    .insert_header("location", format!("{}/certs", server.uri())),
            )
            .mount(&server)
            .await;
        let set = RealmKeySet::new(&issuer, client());
        (server, set)
    }

    #[tokio::test]
    async fn keys_come_from_the_named_url_only() {
        let (_server, set) = realm_naming(|base| format!("{base}/certs")).await;
        assert!(set.key("e").await.is_ok(), "the realm's own keys");

        let (server, set) = realm_naming(|base| format!("{base}/moved")).await;
        assert!(matches!(
            set.key("e").await,
            Err(TokenError::KeysUnavailable)
        ));
        let fetched: Vec<String> = (server.received_requests().await.unwrap().iter())
            .map(|r| r.url.path().to_owned())
            .collect();
        assert!(
            !fetched.contains(&"/certs".to_owned()),
            "followed a redirect: {fetched:?}"
        );

        // Keys over plain HTTP from another host could be anyone's.
        let (server, set) =
            realm_naming(|base| base.replace("127.0.0.1", "keys.example") + "/certs").await;
        let refused = set.fetch(None).await.err().unwrap();
        assert!(refused.contains("must be an https URL"), "{refused}");
        let fetched = server.received_requests().await.unwrap();
        assert_eq!(fetched.len(), 1, "the discovery document only");
    }

    fn key(json: serde_json::Value) -> Option<Algorithm> {
        signing_key(&json).map(|(_, k)| k.alg)
    }

    #[test]
    fn only_signing_keys_of_accepted_algorithms() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let ed = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "e"});
        assert_eq!(key(ed.clone()), Some(Algorithm::EdDSA));
        let mut no_kid = ed.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        assert_eq!(key(no_kid), None, "a key without kid cannot be chosen");
        let mut enc = ed.clone();
        enc["use"] = "enc".into();
        assert_eq!(key(enc), None, "encryption keys never verify");
        let mut wrong_alg = ed.clone();
        wrong_alg["alg"] = "RS256".into();
        assert_eq!(key(wrong_alg), None, "alg must fit the key type");
        let hmac = serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h", "alg": "HS256"});
        assert_eq!(
            key(hmac),
            None,
            "a symmetric key is never taken from a JWKS"
        );
    }
}
