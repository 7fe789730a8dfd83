//! Who is calling: verification of the JWTs callers present, from the
//! token, the keys and the time. The HTTP side (reading the `Authorization`
//! header) is `api::caller`.
//!
//! Two kinds of token are accepted, each only when configured: HS256 with
//! the secret shared with Keycloak, and RS256/ES256/EdDSA signed with a
//! Keycloak realm's own keys (`realm`, keys fetched by `jwks`).
//! Tokens carry `aud` = `mailbridge`, `exp` (at most 10 minutes after `iat`),
//! an optional `tenant`, and an optional `scope` that may hold
//! `mailbridge:admin` (honoured for shared-secret tokens only). `nbf` is
//! honoured, an `iat` in the future and any `crit` header are refused, and
//! so is every other algorithm (`none` included).

pub mod jwks;
pub mod realm;
mod verifier;

pub use verifier::Verifier;

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// The audience every token must name.
pub const AUDIENCE: &str = "mailbridge";
/// The scope that lets a caller act for any tenant and use the admin endpoints.
pub const ADMIN_SCOPE: &str = "mailbridge:admin";
/// The tenant of a caller whose token names none.
pub const DEFAULT_TENANT: &str = "default";
/// Longest token lifetime we accept, in seconds.
pub const MAX_LIFETIME_SECS: u64 = 600;
/// Clock skew we tolerate, in seconds.
const LEEWAY_SECS: u64 = 30;

/// The claims we read and write.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Claims {
    /// Audience (refused when missing, by the verification).
    #[serde(default)]
    pub aud: String,
    /// Expiry, seconds since the epoch (required when reading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not valid before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issue time, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Issuer (the Keycloak realm URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The tenant the caller acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Keycloak's token type (`Bearer`, `ID`, `Refresh`): present only on
    /// Keycloak's own tokens, which are never accepted as a mailbridge token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

/// Why a token is refused: the rule it breaks, in words fit for the caller
/// (never a parser's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with a JSON header.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// `alg` is not one this service is configured for (`none` included),
    /// or not the algorithm of the key it names.
    #[error(
        "the token's algorithm is not accepted (HS256 with the shared secret, or RS256, ES256, EdDSA with a trusted realm's key)"
    )]
    Algorithm,
    /// `iss` names no tenant's `issuer`.
    #[error("the token's `iss` is not the issuer of any tenant")]
    UnknownIssuer,
    /// The realm has no signing key with the token's `kid`.
    #[error("the token's `kid` is not a signing key of its realm")]
    UnknownKey,
    /// The realm's keys could not be fetched.
    #[error("the keys of the token's realm cannot be fetched now")]
    KeysUnavailable,
    /// The `kid` was not among the realm's keys fetched moments ago; the
    /// next fetch (within seconds) may bring it.
    #[error(
        "the token's `kid` is not among its realm's keys fetched moments ago; they are fetched again within seconds"
    )]
    KeyNotFetchedYet,
    /// The `tenant` claim is not the tenant of the realm that signed it.
    #[error("the token's `tenant` is not the tenant of its issuer")]
    OtherTenant,
    /// A shared-secret token for a tenant that accepts only its realm's keys.
    #[error("the token's tenant accepts only tokens signed with its realm's keys")]
    SharedSecretOff,
    /// A Keycloak access, ID or refresh token (it has a `typ` claim).
    #[error("a Keycloak access, ID or refresh token is not a mailbridge token")]
    NotForMailbridge,
    /// The header has a `crit` parameter: extensions we do not understand.
    #[error("the token's header has a `crit` parameter, which is not supported")]
    Critical,
    /// The signature does not match the key.
    #[error("the token's signature does not match")]
    Signature,
    /// The claims are not a JSON object of the expected types.
    #[error("the token's claims are malformed")]
    Claims,
    /// `aud` is missing or is not `mailbridge`.
    #[error("the token's `aud` must be `mailbridge`")]
    Audience,
    /// No `exp` claim.
    #[error("the token has no `exp` claim")]
    NoExpiry,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is still ahead.
    #[error("the token is not valid yet (`nbf` is in the future)")]
    NotYetValid,
    /// `iat` is ahead by more than the tolerated skew.
    #[error("the token's `iat` is in the future")]
    IssuedInFuture,
    /// `exp` is too far after `iat` (or after now).
    #[error("the token's lifetime exceeds {MAX_LIFETIME_SECS} seconds")]
    Lifetime,
}

/// Why an authenticated caller may not do what it asks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub String);

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant it acts for (`default` when the token names none).
    pub tenant: String,
    /// Whether it holds `mailbridge:admin`.
    pub admin: bool,
}

impl Caller {
    /// The tenant a request acts for: the body's, which must match unless the caller is admin.
    pub fn tenant_for(&self, requested: Option<&str>) -> Result<String, Forbidden> {
        match requested {
            None => Ok(self.tenant.clone()),
            Some(t) if t == self.tenant || self.admin => Ok(t.to_owned()),
            Some(t) => Err(Forbidden(format!(
                "this token acts for tenant `{}`, not `{t}`",
                self.tenant
            ))),
        }
    }

    /// Refuses a caller without the admin scope.
    pub fn require_admin(&self) -> Result<(), Forbidden> {
        if self.admin {
            Ok(())
        } else {
            Err(Forbidden(format!(
                "this endpoint needs the `{ADMIN_SCOPE}` scope"
            )))
        }
    }
}

/// The library's verdict as the rule broken.
fn refusal(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::InvalidAudience | ErrorKind::MissingRequiredClaim(_) => TokenError::Audience,
        ErrorKind::InvalidIssuer => TokenError::UnknownIssuer,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm => TokenError::Algorithm,
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            TokenError::Malformed
        }
        _ => TokenError::Claims,
    }
}

/// `exp`, `nbf`, `iat` and the lifetime, each with [`LEEWAY_SECS`] of skew.
fn times(claims: &Claims, now: u64) -> Result<(), TokenError> {
    let exp = claims.exp.ok_or(TokenError::NoExpiry)?;
    if exp.saturating_add(LEEWAY_SECS) < now {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
        return Err(TokenError::NotYetValid);
    }
    if claims.iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
        return Err(TokenError::IssuedInFuture);
    }
    let from_issue = claims
        .iat
        .is_some_and(|iat| exp.saturating_sub(iat) > MAX_LIFETIME_SECS);
    if from_issue || exp > now + MAX_LIFETIME_SECS + LEEWAY_SECS {
        return Err(TokenError::Lifetime);
    }
    Ok(())
}

/// Makes a token for `tenant` valid for `ttl_secs` (the CLI and tests use it).
pub fn mint(
    secret: &[u8],
    tenant: Option<&str>,
    admin: bool,
    ttl_secs: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = unix_secs(SystemTime::now());
    let claims = Claims {
        aud: AUDIENCE.to_owned(),
        exp: Some(now + ttl_secs.min(MAX_LIFETIME_SECS)),
        iat: Some(now),
        iss: Some("mailbridge-cli".to_owned()),
        tenant: tenant.map(str::to_owned),
        scope: admin.then(|| ADMIN_SCOPE.to_owned()),
        jti: Some(uuid::Uuid::new_v4().to_string()),
        nbf: None,
        typ: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
