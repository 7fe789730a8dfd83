//! A certificate instead of a client secret (RFC 7523 `private_key_jwt`, as
//! Microsoft Entra takes it): each token request carries a fresh JWT signed
//! with the application's private key (RS256), naming its certificate by
//! thumbprint (`x5t#S256`, and the SHA-1 `x5t` Entra still reads). Only the
//! certificate is registered with the identity provider; no secret is shared.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;

use super::OAuthError;

/// Lifetime of one assertion: it is used once, right away.
const LIFETIME_SECS: u64 = 300;

/// The `client_assertion_type` of a JWT client assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The application's certificate and private key. `Debug` shows neither.
pub struct ClientAssertion {
    key: EncodingKey,
    x5t: String,
    x5t_s256: String,
}

impl std::fmt::Debug for ClientAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientAssertion(x5t#S256={})", self.x5t_s256)
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

impl ClientAssertion {
    /// Reads the PEM certificate `cert_file` and its RSA private key `key_file`.
    pub fn from_files(cert_file: &Path, key_file: &Path) -> Result<Self, OAuthError> {
        let config = |what: &str, path: &Path, why: String| {
            OAuthError::Config(format!("{what} {}: {why}", path.display()))
        };
        let cert = CertificateDer::from_pem_file(cert_file)
            .map_err(|e| config("cert_file", cert_file, e.to_string()))?;
        let pem =
            std::fs::read(key_file).map_err(|e| config("key_file", key_file, e.to_string()))?;
        let key = EncodingKey::from_rsa_pem(&pem)
            .map_err(|_| config("key_file", key_file, "not an RSA private key in PEM".into()))?;
        Ok(Self {
            key,
            x5t: URL_SAFE_NO_PAD.encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, cert.as_ref())),
            x5t_s256: URL_SAFE_NO_PAD.encode(digest(&SHA256, cert.as_ref())),
        })
    }

    /// A fresh assertion of `client_id` for the token endpoint `token_url`.
    pub fn sign(&self, client_id: &str, token_url: &str) -> Result<String, OAuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut header = Header::new(Algorithm::RS256);
        header.x5t = Some(self.x5t.clone());
        header.x5t_s256 = Some(self.x5t_s256.clone());
        let claims = Claims {
            iss: client_id,
            sub: client_id,
            aud: token_url,
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            nbf: now,
            exp: now + LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| OAuthError::Config(format!("signing the client assertion: {e}")))
    }
}
