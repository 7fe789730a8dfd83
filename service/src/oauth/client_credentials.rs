//! The OAuth2 client-credentials grant (RFC 6749 §4.4): Microsoft Entra
//! (Microsoft 365, Graph, Azure Communication Services) and any OAuth2 server.

use std::fmt;

use async_trait::async_trait;

use super::cache::TokenCache;
use super::client_assertion::{ASSERTION_TYPE, ClientAssertion};
use super::token_endpoint::request_token;
use super::{AccessToken, OAuthError, TokenSource};

/// Tokens of an application (client id and secret, or certificate) from a
/// token endpoint, cached. `Debug` hides the secret.
pub struct ClientCredentials {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    credential: Credential,
    scope: String,
    cache: TokenCache,
}

/// How the application proves who it is.
enum Credential {
    /// `client_secret` in the body (client_secret_post).
    Secret(String),
    /// A signed JWT (RFC 7523 private_key_jwt).
    Assertion(ClientAssertion),
}

impl ClientCredentials {
    /// A source asking `token_url` for tokens of `scope` (space-separated;
    /// empty to leave it out) as `client_id` with `client_secret`.
    pub fn new(
        http: reqwest::Client,
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: String,
    ) -> Self {
        Self {
            http,
            token_url,
            client_id,
            credential: Credential::Secret(client_secret),
            scope,
            cache: TokenCache::default(),
        }
    }

    /// As [`ClientCredentials::new`], proving the client with a certificate
    /// instead of a secret.
    pub fn with_certificate(
        http: reqwest::Client,
        token_url: String,
        client_id: String,
        assertion: ClientAssertion,
        scope: String,
    ) -> Self {
        Self {
            http,
            token_url,
            client_id,
            credential: Credential::Assertion(assertion),
            scope,
            cache: TokenCache::default(),
        }
    }

    async fn fetch(&self) -> Result<AccessToken, OAuthError> {
        tracing::debug!(token_url = %self.token_url, client_id = %self.client_id, "requesting an OAuth2 access token");
        // The secret travels in the body (client_secret_post): Entra, Keycloak
        // and most servers accept it there, not all accept HTTP Basic.
        let proof = match &self.credential {
            Credential::Secret(secret) => secret.clone(),
            Credential::Assertion(assertion) => assertion.sign(&self.client_id, &self.token_url)?,
        };
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
        ];
        match self.credential {
            Credential::Secret(_) => form.push(("client_secret", proof.as_str())),
            Credential::Assertion(_) => {
                form.push(("client_assertion_type", ASSERTION_TYPE));
                form.push(("client_assertion", proof.as_str()));
            }
        }
        if !self.scope.is_empty() {
            form.push(("scope", self.scope.as_str()));
        }
        request_token(&self.http, &self.token_url, &form, &[&proof]).await
    }
}

#[async_trait]
impl TokenSource for ClientCredentials {
    async fn token(&self) -> Result<AccessToken, OAuthError> {
        self.cache.get(|| self.fetch()).await
    }

    fn invalidate(&self, token: &AccessToken) {
        self.cache.invalidate(token);
    }

    fn fetches(&self) -> u64 {
        self.cache.fetches()
    }

    fn freshness(&self) -> super::TokenFreshness {
        self.cache.freshness()
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scope", &self.scope)
            .finish()
    }
}
