//! Google's service-account grant: a JWT signed with the account's key,
//! exchanged for an access token (RFC 7523), acting for a Workspace user
//! through domain-wide delegation.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::cache::TokenCache;
use super::token_endpoint::request_token;
use super::{AccessToken, OAuthError, TokenSource};

/// The scope that allows sending mail through Gmail's SMTP servers.
pub const GMAIL_SCOPE: &str = "https://mail.google.com/";

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime of the signed assertion; Google accepts at most one hour.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

/// The fields we use of a service account's JSON key file.
#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    token_uri: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// Tokens of a Google service account acting for `subject`, cached.
/// `Debug` hides the key.
pub struct GoogleServiceAccount {
    http: reqwest::Client,
    client_email: String,
    key: EncodingKey,
    key_id: Option<String>,
    token_uri: String,
    subject: String,
    scope: String,
    cache: TokenCache,
}

impl GoogleServiceAccount {
    /// A source from the JSON key file at `path`, acting for the user
    /// `subject` with `scope` (e.g. [`GMAIL_SCOPE`]).
    pub fn from_key_file(
        http: reqwest::Client,
        path: &Path,
        subject: String,
        scope: String,
    ) -> Result<Self, OAuthError> {
        let json = std::fs::read_to_string(path).map_err(|e| {
            OAuthError::Config(format!("cannot read key file {}: {e}", path.display()))
        })?;
        Self::from_json(http, &json, subject, scope)
    }

    /// A source from the key file's JSON text.
    pub fn from_json(
        http: reqwest::Client,
        json: &str,
        subject: String,
        scope: String,
    ) -> Result<Self, OAuthError> {
        // The serde error could quote the file, key included: say only where.
        let file: KeyFile = serde_json::from_str(json).map_err(|e| {
            OAuthError::Config(format!(
                "not a service-account key file (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let key = EncodingKey::from_rsa_pem(file.private_key.as_bytes()).map_err(|_| {
            OAuthError::Config("private_key of the key file is not an RSA key in PEM".into())
        })?;
        Ok(Self {
            http,
            client_email: file.client_email,
            key,
            key_id: file.private_key_id,
            token_uri: file.token_uri,
            subject,
            scope,
            cache: TokenCache::default(),
        })
    }

    /// The signed assertion (RS256) for the token request.
    fn assertion(&self) -> Result<String, OAuthError> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| OAuthError::Config("the system clock is before 1970".into()))?
            .as_secs();
        let claims = Claims {
            iss: &self.client_email,
            sub: &self.subject,
            scope: &self.scope,
            aud: &self.token_uri,
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.key_id);
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| OAuthError::Config(format!("cannot sign the assertion: {e}")))
    }

    async fn fetch(&self) -> Result<AccessToken, OAuthError> {
        tracing::debug!(token_url = %self.token_uri, service_account = %self.client_email, "requesting a Google access token");
        let assertion = self.assertion()?;
        let form = [
            ("grant_type", JWT_BEARER),
            ("assertion", assertion.as_str()),
        ];
        request_token(&self.http, &self.token_uri, &form, &[&assertion]).await
    }
}

#[async_trait]
impl TokenSource for GoogleServiceAccount {
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

impl fmt::Debug for GoogleServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleServiceAccount")
            .field("client_email", &self.client_email)
            .field("key", &"<redacted>")
            .field("token_uri", &self.token_uri)
            .field("subject", &self.subject)
            .field("scope", &self.scope)
            .finish()
    }
}
