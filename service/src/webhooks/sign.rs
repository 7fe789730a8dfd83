//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256
//! of "{webhook-id}.{webhook-timestamp}.{body}">` under the key that the
//! `whsec_` secret carries in base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::events::signature::hmac_sha256;

/// A `whsec_…` secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a webhook secret must be `whsec_` followed by base64 (as Standard Webhooks and Svix give them)"
)]
pub struct BadSecret;

/// The signing key of a `whsec_…` secret.
pub fn key(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let encoded = secret.trim().strip_prefix("whsec_").ok_or(BadSecret)?;
    let key = STANDARD.decode(encoded).map_err(|_| BadSecret)?;
    if key.is_empty() {
        return Err(BadSecret);
    }
    Ok(key)
}

/// The `webhook-signature` value of `body` sent as `id` at unix time `timestamp`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let mac = hmac_sha256(
        key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (also Svix's).
    #[test]
    fn signs_the_published_example() {
        let key = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_secret_needs_its_prefix_and_base64() {
        assert_eq!(key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(BadSecret));
        assert_eq!(key("whsec_not base64!"), Err(BadSecret));
        assert_eq!(key("whsec_"), Err(BadSecret));
    }
}
