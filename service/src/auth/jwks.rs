//! One realm's signing keys: its discovery document names `jwks_uri`, whose
//! keys are cached by `kid`. Fetching never holds up a token whose key is
//! known: one fetch runs at a time, apart from the verifications.
//!
//! - A set older than [`MAX_AGE`] is fetched again in the background while
//!   its keys go on verifying; a key removed from the realm stops being
//!   accepted with the next fetch. Keys not confirmed by a fetch for
//!   [`MAX_STALE`] (the realm unreachable all that time) are no longer used.
//! - An unknown `kid` (a key rotated in) fetches the set, at most once per
//!   [`MIN_REFRESH`]; callers asking meanwhile share that fetch. When the
//!   window opens later than [`WINDOW_WAIT`] from now, or the realm could
//!   not be reached, the caller is answered at once (503: try again), never
//!   held past what a client waits.
//! - A fetch (discovery and keys together) is bounded by [`FETCH_TIMEOUT`];
//!   after a failed one the discovery document is read again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::time::Instant;

use super::TokenError;
use crate::transport::http::{MAX_DOCUMENT, body_at_most};

/// Shortest time between two fetches of a realm's keys.
pub const MIN_REFRESH: Duration = Duration::from_secs(10);
/// Age after which a realm's keys are fetched again (in the background).
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// Age after which keys no fetch has confirmed are no longer used.
pub const MAX_STALE: Duration = Duration::from_secs(24 * 3600);
/// Longest a token with an unknown `kid` waits for the next fetch's window.
pub const WINDOW_WAIT: Duration = Duration::from_secs(2);
/// Bound of one fetch: the discovery document and the key set together.
/// With [`WINDOW_WAIT`], under the Keycloak extension's default 5 s.
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(2500);

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
    /// When a fetch last brought the keys.
    fetched_at: Option<Instant>,
    /// When the last fetch began and ended, and whether it failed.
    started_at: Option<Instant>,
    tried_at: Option<Instant>,
    failed: bool,
    jwks_uri: Option<String>,
    /// A background fetch is asked for or running (cleared when it ends).
    refreshing: bool,
}

impl KeyState {
    /// The key `kid`, unless no fetch has confirmed the set for [`MAX_STALE`] by `now`.
    fn usable(&self, kid: &str, now: Instant) -> Option<RealmKey> {
        let confirmed = self.fetched_at?;
        (now.saturating_duration_since(confirmed) < MAX_STALE)
            .then(|| self.keys.get(kid).cloned())
            .flatten()
    }

    /// Whether a background fetch is due: the set is old, and no fetch
    /// ended within [`MIN_REFRESH`] (an unreachable realm is not asked more
    /// often than that).
    fn due(&self) -> bool {
        self.fetched_at.is_none_or(|at| at.elapsed() >= MAX_AGE)
            && self.tried_at.is_none_or(|at| at.elapsed() >= MIN_REFRESH)
    }
}

/// Why a `kid` not in `state`'s set is refused for a token that came at
/// `asked`: the realm cannot be reached (503); no fetch began since the token
/// came, so the next may bring a key rotated in (503, try again); or a
/// fetch after it did not bring it (401).
fn refusal(state: &KeyState, asked: Instant) -> TokenError {
    if state.failed || state.fetched_at.is_none() {
        TokenError::KeysUnavailable
    } else if state.started_at.is_none_or(|at| at < asked) {
        TokenError::KeyNotFetchedYet
    } else {
        TokenError::UnknownKey
    }
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
    state: std::sync::Mutex<KeyState>,
    /// Held by the one fetch that runs.
    fetching: tokio::sync::Mutex<()>,
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
            state: std::sync::Mutex::new(KeyState::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, KeyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key named `kid`, fetching the set when it is unknown or stale.
    pub async fn key(self: &Arc<Self>, kid: &str) -> Result<RealmKey, TokenError> {
        let (known, tried_at) = {
            let mut state = self.state();
            let known = state.usable(kid, Instant::now());
            if known.is_some() && state.due() && !state.refreshing {
                state.refreshing = true;
                let keys = Arc::clone(self);
                tokio::spawn(async move {
                    keys.refresh_if_due(None).await;
                    keys.state().refreshing = false;
                });
            }
            (known, state.tried_at)
        };
        if let Some(key) = known {
            return Ok(key);
        }
        let asked = Instant::now();
        if let Some(at) = tried_at {
            let opens = at + MIN_REFRESH;
            if opens > asked {
                if opens - asked > WINDOW_WAIT {
                    return Err(refusal(&self.state(), asked));
                }
                tokio::time::sleep_until(opens).await;
            }
        }
        // On a task of its own: a caller that goes away (its client gave
        // up) does not cut the fetch short, which is then recorded for all.
        let keys = Arc::clone(self);
        let _ = tokio::spawn(async move { keys.refresh_if_due(Some(asked)).await }).await;
        let state = self.state();
        state
            .usable(kid, Instant::now())
            .ok_or_else(|| refusal(&state, asked))
    }

    /// Fetches the set, unless a fetch began after `asked` (its answer is
    /// the one to use) or one ended within [`MIN_REFRESH`] (the caller is
    /// told to try again); for a background refresh (`asked` is `None`),
    /// unless one runs or the set is fresh.
    async fn refresh_if_due(&self, asked: Option<Instant>) {
        let fetching = match asked {
            Some(_) => Some(self.fetching.lock().await),
            None => self.fetching.try_lock().ok(),
        };
        let (uri, skip) = {
            let mut state = self.state();
            let skip = match asked {
                Some(asked) => {
                    state.started_at.is_some_and(|at| at >= asked)
                        || state.tried_at.is_some_and(|at| at.elapsed() < MIN_REFRESH)
                }
                None => fetching.is_none() || !state.due(),
            };
            if !skip {
                state.started_at = Some(Instant::now());
            }
            (state.jwks_uri.clone(), skip)
        };
        if skip {
            return;
        }
        let result = tokio::time::timeout(FETCH_TIMEOUT, self.fetch(uri.as_deref()))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {FETCH_TIMEOUT:?}")));
        let mut state = self.state();
        let now = Instant::now();
        state.tried_at = Some(now);
        state.failed = result.is_err();
        match result {
            Ok((jwks_uri, keys)) => {
                tracing::debug!(issuer = %self.issuer, keys = keys.len(), "fetched the realm's signing keys");
                state.jwks_uri = Some(jwks_uri);
                state.keys = keys;
                state.fetched_at = Some(now);
            }
            Err(reason) => {
                tracing::warn!(issuer = %self.issuer, %reason, "could not fetch the realm's signing keys");
                // The realm may have moved its keys: ask its discovery document next time.
                state.jwks_uri = None;
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

    async fn realm_naming(jwks_uri: impl Fn(&str) -> String) -> (MockServer, Arc<RealmKeySet>) {
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
        let set = Arc::new(RealmKeySet::new(&issuer, client()));
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

    /// A realm whose key set answers `keys` at first, then `later` (its
    /// discovery document always answers).
    async fn realm_answering(
        first: ResponseTemplate,
        later: ResponseTemplate,
    ) -> (MockServer, Arc<RealmKeySet>) {
        let server = MockServer::start().await;
        let issuer = format!("{}/realms/acme", server.uri());
        let discovery =
            serde_json::json!({"issuer": issuer, "jwks_uri": format!("{}/certs", server.uri())});
        Mock::given(path("/realms/acme/.well-known/openid-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(discovery))
            .mount(&server)
            .await;
        Mock::given(path("/certs"))
            .respond_with(first)
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(path("/certs"))
            .respond_with(later)
            .mount(&server)
            .await;
        (server, Arc::new(RealmKeySet::new(&issuer, client())))
    }

    fn ed25519_set() -> ResponseTemplate {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "e"}]}),
        )
    }

    async fn fetches(server: &MockServer) -> usize {
        let requests = server.received_requests().await.unwrap();
        requests.iter().filter(|r| r.url.path() == "/certs").count()
    }

    /// Makes the set look fetched `ago`.
    fn age(set: &RealmKeySet, ago: Duration) {
        let mut state = set.state();
        let then = Instant::now()
            .checked_sub(ago)
            .expect("the machine has been up longer than that");
        state.fetched_at = Some(then);
        state.tried_at = Some(then);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_known_key_verifies_while_its_set_is_fetched_again_slowly() {
        let slow = ed25519_set().set_delay(Duration::from_secs(2));
        let (server, set) = realm_answering(ed25519_set(), slow).await;
        assert!(set.key("e").await.is_ok());
        age(&set, MAX_AGE);
        // The stale set is fetched again in the background, taking 2 s…
        assert!(set.key("e").await.is_ok());
        for _ in 0..100 {
            if fetches(&server).await == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            fetches(&server).await,
            2,
            "the background fetch is under way"
        );
        // …while the known key answers at once, again and again.
        for _ in 0..3 {
            let answer = tokio::time::timeout(Duration::from_millis(500), set.key("e")).await;
            assert!(matches!(answer, Ok(Ok(_))), "held up by the fetch");
        }
        // An unknown kid waits for the running fetch instead of starting
        // one; that fetch began before it came: try again.
        let unknown = tokio::time::timeout(Duration::from_secs(4), set.key("rotated")).await;
        assert!(
            matches!(unknown, Ok(Err(TokenError::KeyNotFetchedYet))),
            "{:?}",
            unknown.map(|r| r.err())
        );
        assert_eq!(fetches(&server).await, 2, "one fetch at start, one refresh");
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_does_not_cut_its_fetch_short() {
        let slow = ed25519_set().set_delay(Duration::from_millis(500));
        let (server, set) = realm_answering(slow.clone(), slow).await;
        // The caller gives up before the fetch answers…
        let gave_up = tokio::time::timeout(Duration::from_millis(100), set.key("e")).await;
        assert!(gave_up.is_err());
        tokio::time::sleep(Duration::from_secs(1)).await;
        // …the fetch went on and was recorded: the key is known, no second fetch.
        assert!(set.key("e").await.is_ok());
        assert_eq!(fetches(&server).await, 1);
    }

    #[tokio::test]
    async fn an_unreachable_realm_is_answered_at_once_and_asked_once_a_window() {
        let (server, set) =
            realm_answering(ResponseTemplate::new(500), ResponseTemplate::new(500)).await;
        assert!(matches!(
            set.key("e").await,
            Err(TokenError::KeysUnavailable)
        ));
        for _ in 0..3 {
            let answer = tokio::time::timeout(Duration::from_millis(500), set.key("e")).await;
            assert!(
                matches!(answer, Ok(Err(TokenError::KeysUnavailable))),
                "not answered at once"
            );
        }
        assert_eq!(fetches(&server).await, 1);
    }

    #[tokio::test]
    async fn a_kid_unknown_moments_after_a_fetch_is_asked_again_later_not_refused() {
        let (server, set) = realm_answering(ed25519_set(), ed25519_set()).await;
        assert!(set.key("e").await.is_ok());
        // A key rotated in just after the fetch: try again (503), not refused for good.
        assert!(matches!(
            set.key("new").await,
            Err(TokenError::KeyNotFetchedYet)
        ));
        assert_eq!(fetches(&server).await, 1);
        // Once the window opens, the set is fetched again and the kid looked up.
        age(&set, MIN_REFRESH);
        assert!(matches!(set.key("new").await, Err(TokenError::UnknownKey)));
        assert_eq!(fetches(&server).await, 2);
    }

    #[tokio::test]
    async fn keys_no_fetch_confirmed_for_a_day_are_not_used() {
        let (server, set) = realm_answering(ed25519_set(), ResponseTemplate::new(503)).await;
        assert!(set.key("e").await.is_ok());
        // The realm unreachable ever since: the old set verifies for a day…
        age(&set, MAX_AGE);
        assert!(set.key("e").await.is_ok());
        let state = set.state();
        let confirmed = state.fetched_at.unwrap();
        assert!(
            state
                .usable("e", confirmed + MAX_STALE - Duration::from_secs(1))
                .is_some()
        );
        // …and then no longer: a key removed meanwhile stops being accepted.
        assert!(state.usable("e", confirmed + MAX_STALE).is_none());
        drop(state);
        drop(server);
    }

    #[tokio::test]
    async fn after_a_failed_fetch_the_discovery_document_is_read_again() {
        let (server, set) = realm_answering(ed25519_set(), ResponseTemplate::new(404)).await;
        assert!(set.key("e").await.is_ok());
        age(&set, MIN_REFRESH);
        assert!(matches!(
            set.key("other").await,
            Err(TokenError::KeysUnavailable)
        ));
        age(&set, MIN_REFRESH);
        let _ = set.key("other").await;
        let discoveries = (server.received_requests().await.unwrap().iter())
            .filter(|r| r.url.path().ends_with("openid-configuration"))
            .count();
        assert_eq!(discoveries, 2, "the realm may have moved its keys");
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
