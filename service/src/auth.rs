//! Who is calling: HS256 JWT verification and the [`Caller`] extractor.
//!
//! Tokens carry `aud` = `mailbridge`, `exp` (at most 10 minutes ahead), an
//! optional `tenant`, and an optional `scope` that may hold `mailbridge:admin`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::error::ApiError;

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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
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
}

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
    pub fn tenant_for(&self, requested: Option<&str>) -> Result<String, ApiError> {
        match requested {
            None => Ok(self.tenant.clone()),
            Some(t) if t == self.tenant || self.admin => Ok(t.to_owned()),
            Some(t) => Err(ApiError::forbidden(format!(
                "this token acts for tenant `{}`, not `{t}`",
                self.tenant
            ))),
        }
    }

    /// Refuses a caller without the admin scope.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this endpoint needs the `{ADMIN_SCOPE}` scope"
            )))
        }
    }
}

/// Checks tokens against the shared secret.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(HS256)")
    }
}

impl Verifier {
    /// A verifier for HS256 tokens signed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// The caller a bearer token stands for, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Caller, String> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| format!("invalid token: {e}"))?;
        let claims = data.claims;
        let now = unix_now();
        let lifetime_ok = match claims.iat {
            Some(iat) => claims.exp.saturating_sub(iat) <= MAX_LIFETIME_SECS,
            None => claims.exp <= now + MAX_LIFETIME_SECS + LEEWAY_SECS,
        };
        if !lifetime_ok || claims.exp > now + MAX_LIFETIME_SECS + LEEWAY_SECS {
            return Err(format!(
                "token lifetime exceeds {MAX_LIFETIME_SECS} seconds"
            ));
        }
        let admin = claims
            .scope
            .as_deref()
            .is_some_and(|s| s.split_whitespace().any(|s| s == ADMIN_SCOPE));
        let tenant = claims.tenant.unwrap_or_else(|| DEFAULT_TENANT.to_owned());
        crate::api::request::check_tenant_name(&tenant).map_err(|e| e.reason)?;
        Ok(Caller { tenant, admin })
    }
}

/// Makes a token for `tenant` valid for `ttl_secs` (the CLI and tests use it).
pub fn mint(
    secret: &[u8],
    tenant: Option<&str>,
    admin: bool,
    ttl_secs: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = unix_now();
    let claims = Claims {
        aud: AUDIENCE.to_owned(),
        exp: now + ttl_secs.min(MAX_LIFETIME_SECS),
        iat: Some(now),
        iss: Some("mailbridge-cli".to_owned()),
        tenant: tenant.map(str::to_owned),
        scope: admin.then(|| ADMIN_SCOPE.to_owned()),
        jti: Some(uuid::Uuid::new_v4().to_string()),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(verifier) = &state.verifier else {
            // `--insecure-no-auth` on a loopback address: every caller is an administrator.
            return Ok(Caller {
                tenant: DEFAULT_TENANT.to_owned(),
                admin: true,
            });
        };
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized("missing `Authorization: Bearer <token>` header")
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        verifier
            .verify(token.trim())
            .map_err(ApiError::unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_a_fresh_token_and_reads_claims() {
        let v = Verifier::new(SECRET);
        let caller = v
            .verify(&mint(SECRET, Some("acme"), false, 60).unwrap())
            .unwrap();
        assert_eq!(
            caller,
            Caller {
                tenant: "acme".into(),
                admin: false
            }
        );
        let admin = v.verify(&mint(SECRET, None, true, 60).unwrap()).unwrap();
        assert_eq!(admin.tenant, "default");
        assert!(admin.admin);
    }

    #[test]
    fn refuses_foreign_long_lived_and_unsigned_tokens() {
        let v = Verifier::new(SECRET);
        let foreign = mint(b"another-secret-another-secret-xx", Some("acme"), false, 60).unwrap();
        assert!(v.verify(&foreign).is_err());
        let now = unix_now();
        let long = Claims {
            aud: AUDIENCE.into(),
            exp: now + 3600,
            iat: Some(now),
            iss: None,
            tenant: None,
            scope: None,
            jti: None,
        };
        let long = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &long,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(v.verify(&long).unwrap_err().contains("lifetime"));
        // alg: none, with the same claims.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(format!(r#"{{"aud":"mailbridge","exp":{}}}"#, now + 60))
        );
        assert!(v.verify(&none).is_err());
        let wrong_aud = Claims {
            aud: "other".into(),
            exp: now + 60,
            iat: Some(now),
            iss: None,
            tenant: None,
            scope: None,
            jti: None,
        };
        let wrong_aud = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &wrong_aud,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(v.verify(&wrong_aud).is_err());
        let expired = Claims {
            aud: AUDIENCE.into(),
            exp: now - 120,
            iat: Some(now - 180),
            iss: None,
            tenant: None,
            scope: None,
            jti: None,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(v.verify(&expired).is_err());
    }

    #[test]
    fn tenant_rules() {
        let caller = Caller {
            tenant: "acme".into(),
            admin: false,
        };
        assert_eq!(caller.tenant_for(None).unwrap(), "acme");
        assert_eq!(caller.tenant_for(Some("acme")).unwrap(), "acme");
        assert_eq!(
            caller
                .tenant_for(Some("other"))
                .unwrap_err()
                .status
                .as_u16(),
            403
        );
        let admin = Caller {
            tenant: "default".into(),
            admin: true,
        };
        assert_eq!(admin.tenant_for(Some("other")).unwrap(), "other");
    }
}
