//! What the providers' signature schemes share: HMAC-SHA256 compared in
//! constant time, HTTP basic auth, and the freshness of a signed timestamp.

use aws_lc_rs::{constant_time, hmac};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;

use super::MAX_AGE;

/// Why a request could not be verified (answered 401; the text names the
/// rule broken, never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unverified(pub String);

impl Unverified {
    /// An [`Unverified`] with `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// A signature that covers no event (Mailgun signs a timestamp and a token
/// only): whoever saw it once could send it again with any event within
/// [`MAX_AGE`]. The store takes each token with one body only
/// ([`crate::queue::JobStore::take_signature`]), on every replica and across
/// restarts; the same body again is the provider's own retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureToken {
    /// SHA-256 of the provider's token, in hex.
    pub token: String,
    /// SHA-256 of the body it came with.
    pub body: Vec<u8>,
    /// When the provider signed it.
    pub signed_at: OffsetDateTime,
}

impl SignatureToken {
    /// The token `token` signed at `signed_at` for `body`.
    pub fn new(token: &str, body: &[u8], signed_at: OffsetDateTime) -> Self {
        let sha = |bytes: &[u8]| {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
                .as_ref()
                .to_vec()
        };
        Self {
            token: sha(token.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            body: sha(body),
            signed_at,
        }
    }
}

/// A header's value as text, or why not.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Unverified> {
    let mut values = headers.get_all(name).iter();
    let value = values
        .next()
        .ok_or_else(|| Unverified::new(format!("the `{name}` header is missing")))?;
    if values.next().is_some() {
        return Err(Unverified::new(format!("more than one `{name}` header")));
    }
    value
        .to_str()
        .map_err(|_| Unverified::new(format!("the `{name}` header is not text")))
}

/// Checks that unix time `seconds` (as the provider signed it) is within
/// [`MAX_AGE`] of `now`, either way: an older one is a replay.
pub fn fresh(seconds: &str, now: OffsetDateTime) -> Result<(), Unverified> {
    let at: i64 = seconds
        .trim()
        .parse()
        .map_err(|_| Unverified::new("the signed timestamp is not a unix time"))?;
    let age = now.unix_timestamp().saturating_sub(at);
    if age.unsigned_abs() > MAX_AGE.whole_seconds().unsigned_abs() {
        return Err(Unverified::new(
            "the signed timestamp is more than 10 minutes away from now (a replay?)",
        ));
    }
    Ok(())
}

/// HMAC-SHA256 of `parts` (concatenated) under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut context = hmac::Context::with_key(&key);
    for part in parts {
        context.update(part);
    }
    context.sign().as_ref().to_vec()
}

/// Whether `a` equals `b`, in time independent of where they differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// Checks `Authorization: Basic …` against `expected` (`user:password`).
pub fn basic_auth(headers: &HeaderMap, expected: &str) -> Result<(), Unverified> {
    let value = header(headers, "authorization")?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| Unverified::new("the Authorization header is not Basic"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Unverified::new("the Authorization header is not Basic"));
    }
    let given = STANDARD
        .decode(token.trim())
        .map_err(|_| Unverified::new("the Basic credentials are not base64"))?;
    if !same(&given, expected.as_bytes()) {
        return Err(Unverified::new("wrong user or password"));
    }
    Ok(())
}

/// Bytes from lower- or upper-case hex, if it is hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_older_or_newer_than_ten_minutes_are_refused() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert!(fresh("1700000000", now).is_ok());
        assert!(fresh("1699999401", now).is_ok());
        assert!(fresh("1699999399", now).is_err());
        assert!(fresh("1700000601", now).is_err());
        assert!(fresh("soon", now).is_err());
    }

    #[test]
    fn basic_auth_compares_user_and_password() {
        let mut headers = HeaderMap::new();
        let good = format!("Basic {}", STANDARD.encode("hooks:s3cret"));
        headers.insert("authorization", good.parse().unwrap());
        assert!(basic_auth(&headers, "hooks:s3cret").is_ok());
        assert!(basic_auth(&headers, "hooks:other").is_err());
        assert!(basic_auth(&HeaderMap::new(), "hooks:s3cret").is_err());
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(from_hex("00ff1A"), Some(vec![0, 255, 26]));
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None);
    }
}
