//! Sign-in through OpenID Connect: the authorization code flow with PKCE
//! (S256) as a public client, the issuer's discovery document and keys
//! fetched (and refreshed) by the `openidconnect` crate, the ID token checked
//! for signature, issuer, audience, nonce and expiry; the viewer's roles are
//! the console client's roles in the token (`resource_access.<client>.roles`).
//! Sign-out ends the session here and at the issuer (RP-initiated logout).
//!
//! A sign-in is bound to the browser that began it: that browser gets a
//! random value in the [`COOKIE`] cookie, and the callback is accepted only
//! with it. Without that, a link to a callback of someone else's sign-in
//! would sign the browser that opens it in as that someone (login CSRF).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken};
use openidconnect::{
    AuthorizationCode, ClientId, CsrfToken, IssuerUrl, LogoutRequest, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl,
    TokenResponse as _,
};
use serde_json::Value;

use super::issuer_http::Http;
use super::session::{Viewer, random_token, same_token};
use crate::config::ConsoleSettings;

/// Discovery and keys are fetched again after this long (key rotation).
const METADATA_TTL: Duration = Duration::from_secs(600);

/// A sign-in not finished within this long must start again.
pub const PENDING_TTL: Duration = Duration::from_secs(600);

/// The cookie that binds a sign-in to the browser that began it.
pub const COOKIE: &str = "mailbridge_console_signin";

/// Sign-ins in progress kept at most (each is a browser sent to the issuer).
const MAX_PENDING: usize = 10_000;

/// Why a sign-in did not succeed. Messages name the step, never a token.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The issuer could not be asked (discovery, keys, token endpoint).
    #[error("the identity provider could not be reached: {0}")]
    Unreachable(String),
    /// The callback does not belong to a sign-in begun here, or came too late.
    #[error("this sign-in is unknown or expired")]
    UnknownState,
    /// The callback reached a browser other than the one that began the sign-in.
    #[error("this sign-in was begun in another browser")]
    OtherBrowser,
    /// The issuer's answer was refused (no ID token, or one that fails its checks).
    #[error("the identity provider's answer was refused: {0}")]
    Refused(String),
}

/// A sign-in sent to the issuer, waiting for its callback.
struct Pending {
    /// The value of the [`COOKIE`] cookie of the browser that began it.
    browser: String,
    verifier: PkceCodeVerifier,
    nonce: Nonce,
    started: Instant,
}

/// Drops sign-ins past their time, and the oldest while `pending` holds
/// `max` or more. Refusing new sign-ins instead would let anyone lock every
/// operator out for the sign-ins' lifetime with `max` unauthenticated
/// requests; this way a flood only displaces sign-ins while it lasts.
fn make_room(pending: &mut HashMap<String, Pending>, max: usize) {
    pending.retain(|_, p| p.started.elapsed() < PENDING_TTL);
    while pending.len() >= max.max(1) {
        let oldest = (pending.iter())
            .min_by_key(|(_, p)| p.started)
            .map(|(state, _)| state.clone());
        match oldest {
            Some(state) => pending.remove(&state),
            None => break,
        };
    }
}

/// The OpenID Connect relying party of the console.
pub struct Oidc {
    settings: ConsoleSettings,
    http: Http,
    metadata: tokio::sync::Mutex<Option<(ProviderMetadataWithLogout, Instant)>>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.settings.issuer.as_str())
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

/// A sign-in begun: where to send the browser, and its [`COOKIE`] cookie's value.
pub struct Started {
    /// The issuer's authorization URL.
    pub url: String,
    /// The value that binds the sign-in to this browser.
    pub browser: String,
}

/// A finished sign-in: who, and the ID token (kept for sign-out's hint).
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The viewer and their roles.
    pub viewer: Viewer,
    /// The ID token as received.
    pub id_token: String,
}

impl Oidc {
    /// A relying party for `settings`; nothing is fetched until the first sign-in.
    pub fn new(settings: ConsoleSettings) -> anyhow::Result<Oidc> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Oidc {
            settings,
            http: Http::new(client),
            metadata: tokio::sync::Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// The issuer's origin (`https://sso.example`): sign-out's form goes on there.
    pub fn issuer_origin(&self) -> String {
        self.settings.issuer.origin().ascii_serialization()
    }

    /// Whether the session cookie must be `Secure` (the console is behind https).
    pub fn secure(&self) -> bool {
        self.settings.url.scheme() == "https"
    }

    /// `<URL>/console/` plus `path`.
    fn console_url(&self, path: &str) -> String {
        let base = self.settings.url.as_str().trim_end_matches('/');
        let base = base.strip_suffix("/console").unwrap_or(base);
        format!("{base}/console/{path}")
    }

    /// The issuer's discovery document and keys, fetched when missing, old, or `stale`.
    async fn metadata(&self, stale: bool) -> Result<ProviderMetadataWithLogout, SignInError> {
        let mut cached = self.metadata.lock().await;
        if let Some((metadata, fetched)) = cached.as_ref()
            && !stale
            && fetched.elapsed() < METADATA_TTL
        {
            return Ok(metadata.clone());
        }
        let issuer = IssuerUrl::new(
            self.settings
                .issuer
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
        )
        .map_err(|e| SignInError::Unreachable(e.to_string()))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| SignInError::Unreachable(error_chain(&e)))?;
        *cached = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    fn client(
        &self,
        metadata: ProviderMetadataWithLogout,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        SignInError,
    > {
        let redirect = RedirectUrl::new(self.console_url("callback"))
            .map_err(|e| SignInError::Refused(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            None,
        )
        .set_redirect_uri(redirect))
    }

    /// Begins a sign-in: the issuer's URL to send the browser to, and the
    /// value the browser must bring back to the callback.
    pub async fn start(&self) -> Result<Started, SignInError> {
        let client = self.client(self.metadata(false).await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .url();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        make_room(&mut pending, MAX_PENDING);
        let browser = random_token();
        pending.insert(
            state.secret().clone(),
            Pending {
                browser: browser.clone(),
                verifier,
                nonce,
                started: Instant::now(),
            },
        );
        Ok(Started {
            url: url.to_string(),
            browser,
        })
    }

    /// Finishes the sign-in `state` names with the issuer's `code`, in the
    /// browser whose [`COOKIE`] cookie is `browser`. The sign-in is used up
    /// either way: a callback refused here cannot be tried again.
    pub async fn finish(
        &self,
        code: &str,
        state: &str,
        browser: Option<&str>,
    ) -> Result<SignedIn, SignInError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(state)
            .filter(|p| p.started.elapsed() < PENDING_TTL)
            .ok_or(SignInError::UnknownState)?;
        if !browser.is_some_and(|b| same_token(b, &pending.browser)) {
            return Err(SignInError::OtherBrowser);
        }
        let client = self.client(self.metadata(false).await?)?;
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| SignInError::Refused(e.to_string()))?
            .set_pkce_verifier(pending.verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| SignInError::Refused(error_chain(&e)))?;
        let id_token = answer
            .id_token()
            .ok_or_else(|| SignInError::Refused("no ID token".into()))?
            .clone();
        if let Err(first) = id_token.claims(&client.id_token_verifier(), &pending.nonce) {
            // A key the cached set does not know may be a rotated one: fetch once more.
            let client = self.client(self.metadata(true).await?)?;
            id_token
                .claims(&client.id_token_verifier(), &pending.nonce)
                .map_err(|_| SignInError::Refused(first.to_string()))?;
        }
        let viewer = self.viewer(&id_token)?;
        Ok(SignedIn {
            viewer,
            id_token: id_token.to_string(),
        })
    }

    /// The viewer from a verified ID token: `preferred_username` and the console client's roles.
    fn viewer(&self, id_token: &CoreIdToken) -> Result<Viewer, SignInError> {
        let text = id_token.to_string();
        let payload = text
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            .ok_or_else(|| SignInError::Refused("unreadable ID token".into()))?;
        Ok(viewer_from_claims(&payload, &self.settings.client_id))
    }

    /// Where to send the browser to end the issuer's session too.
    pub async fn sign_out_url(&self, id_token: &str) -> Option<String> {
        let metadata = self.metadata(false).await.ok()?;
        let end = metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut request =
            LogoutRequest::from(end).set_client_id(ClientId::new(self.settings.client_id.clone()));
        if let Ok(hint) = id_token.parse::<CoreIdToken>() {
            request = request.set_id_token_hint(&hint);
        }
        if let Ok(back) = PostLogoutRedirectUrl::new(self.console_url("")) {
            request = request.set_post_logout_redirect_uri(back);
        }
        Some(request.http_get_url().to_string())
    }
}

/// The viewer the claims describe: the name, and the roles of `client_id`.
pub fn viewer_from_claims(claims: &Value, client_id: &str) -> Viewer {
    let name = ["preferred_username", "email", "sub"]
        .iter()
        .find_map(|k| claims[k].as_str())
        .unwrap_or("unknown");
    let roles = claims["resource_access"][client_id]["roles"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .unwrap_or_default();
    Viewer::from_roles(name, roles)
}

/// An error and its causes on one line (the crate's errors wrap the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::viewer_from_claims;

    #[test]
    fn a_flood_of_sign_ins_displaces_the_oldest_instead_of_locking_out() {
        use super::{Nonce, Pending, PkceCodeVerifier, make_room};
        let mut pending = std::collections::HashMap::new();
        let start = std::time::Instant::now();
        for i in 0..5u64 {
            pending.insert(
                format!("s{i}"),
                Pending {
                    browser: format!("b{i}"),
                    verifier: PkceCodeVerifier::new(format!("v{i}")),
                    nonce: Nonce::new(format!("n{i}")),
                    started: start + std::time::Duration::from_millis(i),
                },
            );
        }
        make_room(&mut pending, 4);
        assert_eq!(pending.len(), 3, "room for one more");
        assert!(!pending.contains_key("s0") && !pending.contains_key("s1"));
        assert!(pending.contains_key("s4"), "the newest stay");
    }

    #[test]
    fn roles_come_from_the_console_clients_entry_only() {
        let claims = json!({
            "preferred_username": "ada",
            "resource_access": {
                "mailbridge-console": {"roles": ["tenant:acme"]},
                "other-client": {"roles": ["admin"]}
            }
        });
        let viewer = viewer_from_claims(&claims, "mailbridge-console");
        assert_eq!(viewer.name, "ada");
        assert!(!viewer.admin, "another client's admin role gives nothing");
        assert!(viewer.can_see("acme"));
        assert!(!viewer.can_see("globex"));
    }
}
