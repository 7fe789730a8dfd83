//! The [`Caller`] of a request, from its one `Authorization: Bearer <token>`
//! header; the token itself is checked by [`crate::auth`].

use std::time::SystemTime;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};

use super::AppState;
use super::error::ApiError;
use super::request::check_tenant_name;
use crate::auth::{Caller, DEFAULT_TENANT, Forbidden, TokenError};

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
        let token = bearer_token(&parts.headers)?;
        let caller = verifier
            .verify(token, SystemTime::now())
            .await
            .map_err(|e| match e {
                // Not the caller's fault: its realm's keys cannot be fetched now.
                TokenError::KeysUnavailable | TokenError::KeyNotFetchedYet => {
                    ApiError::unavailable(e.to_string())
                }
                e => ApiError::unauthorized(e.to_string()),
            })?;
        check_tenant_name(&caller.tenant)
            .map_err(|e| ApiError::unauthorized(format!("the token's {e}")))?;
        Ok(caller)
    }
}

impl From<Forbidden> for ApiError {
    fn from(forbidden: Forbidden) -> Self {
        ApiError::forbidden(forbidden.0)
    }
}

/// The token of the request's only `Authorization` header, whose scheme is
/// `Bearer` in any case (RFC 9110 11.1). Two headers are refused: proxies
/// and frameworks disagree on which one counts.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values
        .next()
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>` header"))?;
    if values.next().is_some() {
        return Err(ApiError::unauthorized(
            "more than one Authorization header; send exactly one",
        ));
    }
    token_of(value)
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))
}

fn token_of(value: &HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr   abc "] {
            assert_eq!(bearer_token(&headers(&[value])).unwrap(), "abc", "{value}");
        }
        for value in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "abc"] {
            assert!(bearer_token(&headers(&[value])).is_err(), "{value}");
        }
    }

    #[test]
    fn exactly_one_header() {
        assert!(bearer_token(&headers(&[])).is_err());
        let two = bearer_token(&headers(&["Bearer a", "Bearer b"])).unwrap_err();
        assert!(two.detail.contains("more than one"), "{}", two.detail);
    }
}
