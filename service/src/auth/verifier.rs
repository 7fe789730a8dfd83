//! [`Verifier`]: a token's header first (`crit`, the algorithm), then the
//! shared secret (HS256) or the realm that signed it (RS256, ES256, EdDSA).

use std::collections::HashSet;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{
    ADMIN_SCOPE, AUDIENCE, Caller, Claims, DEFAULT_TENANT, TokenError, realm, refusal, times,
    unix_secs,
};

/// Checks tokens against the shared secret and the trusted realms' keys.
pub struct Verifier {
    shared: Option<(DecodingKey, Validation)>,
    realms: realm::RealmKeys,
    /// Tenants for which a non-admin shared-secret token is refused.
    realm_key_only: HashSet<String>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("shared_secret", &self.shared.is_some())
            .field("realms", &self.realms)
            .finish()
    }
}

impl Verifier {
    /// A verifier for HS256 tokens signed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self::with(
            Some(secret),
            realm::RealmKeys::new([], reqwest::Client::new()),
        )
    }

    /// A verifier for HS256 tokens signed with `secret` (if any) and for tokens of `realms`.
    pub fn with(secret: Option<&[u8]>, realms: realm::RealmKeys) -> Self {
        let shared = secret.map(|secret| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_audience(&[AUDIENCE]);
            validation.set_required_spec_claims(&["aud"]);
            // Times are checked in `times`, against the time we are given.
            validation.validate_exp = false;
            validation.validate_nbf = false;
            (DecodingKey::from_secret(secret), validation)
        });
        Self {
            shared,
            realms,
            realm_key_only: HashSet::new(),
        }
    }

    /// Refuses shared-secret tokens that act for these tenants (admin tokens excepted).
    pub fn realm_key_only<'a>(mut self, tenants: impl IntoIterator<Item = &'a str>) -> Self {
        self.realm_key_only = tenants.into_iter().map(str::to_owned).collect();
        self
    }

    /// The caller a bearer token stands for at time `now`, or the rule it breaks.
    pub async fn verify(&self, token: &str, now: SystemTime) -> Result<Caller, TokenError> {
        let header = check_header(token)?;
        let (claims, tenant, admin) = match (header.alg.as_str(), &self.shared) {
            ("HS256", Some((key, validation))) => self.verify_shared(token, key, validation)?,
            (name, _) => {
                let alg = realm::algorithm(name)
                    .filter(|_| !self.realms.is_empty())
                    .ok_or(TokenError::Algorithm)?;
                let (claims, tenant) = self
                    .realms
                    .verify(token, alg, header.kid.as_deref())
                    .await?;
                (claims, tenant, false)
            }
        };
        times(&claims, unix_secs(now))?;
        Ok(Caller { tenant, admin })
    }

    /// An HS256 token: its claims, its tenant and whether it is an administrator's.
    fn verify_shared(
        &self,
        token: &str,
        key: &DecodingKey,
        validation: &Validation,
    ) -> Result<(Claims, String, bool), TokenError> {
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| refusal(e.kind()))?
            .claims;
        let admin = claims
            .scope
            .as_deref()
            .is_some_and(|s| s.split_whitespace().any(|s| s == ADMIN_SCOPE));
        let tenant = claims
            .tenant
            .clone()
            .unwrap_or_else(|| DEFAULT_TENANT.to_owned());
        if !admin && self.realm_key_only.contains(&tenant) {
            return Err(TokenError::SharedSecretOff);
        }
        Ok((claims, tenant, admin))
    }
}

/// What the header says before the signature is checked.
struct TokenHeader {
    alg: String,
    kid: Option<String>,
}

/// The header, read before the library does: `crit` is refused (RFC 7515
/// 4.1.11: a recipient that does not understand it must refuse the token),
/// and an algorithm we never accept is named as such, not as a parse error.
fn check_header(token: &str) -> Result<TokenHeader, TokenError> {
    let (encoded, _) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| TokenError::Malformed)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    if header.contains_key("crit") {
        return Err(TokenError::Critical);
    }
    let alg = match header.get("alg").and_then(|a| a.as_str()) {
        Some(alg) if alg == "HS256" || realm::algorithm(alg).is_some() => alg.to_owned(),
        _ => return Err(TokenError::Algorithm),
    };
    let kid = header
        .get("kid")
        .and_then(|k| k.as_str())
        .map(str::to_owned);
    Ok(TokenHeader { alg, kid })
}
