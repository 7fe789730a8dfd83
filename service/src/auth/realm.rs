//! Tokens signed with a Keycloak realm's own keys (RS256, ES256, EdDSA).
//!
//! A tenant with an `issuer` trusts exactly that realm: the token's `iss`
//! picks the realm, the realm's key (by `kid`) must verify it, and the caller
//! then acts for that tenant only. A `tenant` claim naming another tenant is
//! refused, and such a token is never an administrator: a realm's keys also
//! sign the tokens of its users and admins, who must not reach other tenants.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};

use super::jwks::RealmKeySet;
use super::{AUDIENCE, Claims, TokenError, refusal};

/// Checks an `issuer` setting: an absolute https URL (http only to a
/// loopback host, for trials and tests), without query or fragment.
pub fn check_issuer(issuer: &str) -> Result<(), String> {
    check_fetch_url(issuer)?;
    let url = url::Url::parse(issuer).map_err(|e| format!("`{issuer}` is not a URL ({e})"))?;
    if url.query().is_some() || url.fragment().is_some() || issuer.ends_with('/') {
        return Err(format!(
            "`{issuer}` must be the realm URL exactly as its tokens' `iss` (no query, fragment or trailing slash)"
        ));
    }
    Ok(())
}

/// Checks a URL keys are fetched from: https, or http to a loopback host.
pub fn check_fetch_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("`{text}` has no host")),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!("`{text}` must be an https URL")),
    }
}

/// Every trusted realm, by issuer, with the tenant it acts for.
pub struct RealmKeys {
    realms: HashMap<String, (String, Arc<RealmKeySet>)>,
}

impl std::fmt::Debug for RealmKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.realms.keys()).finish()
    }
}

impl RealmKeys {
    /// The realms of `(tenant, issuer)` pairs (validated settings).
    pub fn new<'a>(
        issuers: impl IntoIterator<Item = (&'a str, &'a str)>,
        http: reqwest::Client,
    ) -> Self {
        let realms = issuers
            .into_iter()
            .map(|(tenant, issuer)| {
                let keys = Arc::new(RealmKeySet::new(issuer, http.clone()));
                (issuer.to_owned(), (tenant.to_owned(), keys))
            })
            .collect();
        Self { realms }
    }

    /// Whether any realm is trusted.
    pub fn is_empty(&self) -> bool {
        self.realms.is_empty()
    }

    /// Verifies a token whose header names `alg` and `kid`; answers its
    /// claims and the tenant of its realm.
    pub async fn verify(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<(Claims, String), TokenError> {
        let issuer = unverified_issuer(token)?;
        let (tenant, keys) = self.realms.get(&issuer).ok_or(TokenError::UnknownIssuer)?;
        let kid = kid.ok_or(TokenError::UnknownKey)?;
        let key = keys.key(kid).await?;
        // The key decides the algorithm, never the token (algorithm confusion).
        if key.alg != alg {
            return Err(TokenError::Algorithm);
        }
        let mut validation = Validation::new(key.alg);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[issuer.as_str()]);
        validation.set_required_spec_claims(&["aud", "iss"]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| refusal(e.kind()))?
            .claims;
        if claims.typ.is_some() {
            // Keycloak's own access, ID and refresh tokens carry `typ`; ours do not.
            return Err(TokenError::NotForMailbridge);
        }
        if claims.tenant.as_ref().is_some_and(|t| t != tenant) {
            return Err(TokenError::OtherTenant);
        }
        Ok((claims, tenant.clone()))
    }
}

/// The `iss` of a token not yet verified: only to choose whose keys verify it.
fn unverified_issuer(token: &str) -> Result<String, TokenError> {
    let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| TokenError::Claims)?;
    claims.iss.ok_or(TokenError::UnknownIssuer)
}

/// Parses an algorithm name we accept from a realm.
pub fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_are_https_realm_urls() {
        assert!(check_issuer("https://sso.example/realms/acme").is_ok());
        assert!(check_issuer("http://127.0.0.1:8080/realms/acme").is_ok());
        assert!(check_issuer("http://localhost:8080/realms/acme").is_ok());
        for bad in [
            "http://sso.example/realms/acme",
            "https://sso.example/realms/acme/",
            "https://sso.example/realms/acme?x=1",
            "realms/acme",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
    }
}
