//! Mailgun's webhooks: one JSON object, `{"signature": {"timestamp", "token",
//! "signature"}, "event-data": {…}}`, where `signature` is the hex
//! HMAC-SHA256 of `timestamp` followed by `token` under the HTTP webhook
//! signing key (the transport's `webhook_key`).

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::signature::{Unverified, fresh, from_hex, hmac_sha256, same};
use super::{Bounce, EventType, MessageRef, ProviderEvent, detail, unix_seconds};

#[derive(Debug, Deserialize)]
struct Body {
    signature: Signature,
    #[serde(rename = "event-data")]
    event: Option<Event>,
}

#[derive(Debug, Deserialize)]
struct Signature {
    timestamp: String,
    token: String,
    signature: String,
}

#[derive(Debug, Deserialize)]
struct Event {
    id: Option<String>,
    event: String,
    timestamp: Option<f64>,
    severity: Option<String>,
    recipient: Option<String>,
    reason: Option<String>,
    message: Option<Value>,
    #[serde(rename = "delivery-status")]
    delivery_status: Option<Value>,
    #[serde(rename = "user-variables")]
    variables: Option<Value>,
}

/// The tokens of the signatures taken in the last [`super::MAX_AGE`], with
/// the digest of the body each came with: Mailgun signs only a timestamp and
/// a token, not the event, so a signature seen once (by any receiver of the
/// account's webhooks) would otherwise carry any event within its window.
/// The same body again is Mailgun's own retry (its event id makes it a
/// no-op). Kept per process: a replay to another replica within the window
/// is not caught.
#[derive(Debug, Default)]
pub struct SeenTokens(std::sync::Mutex<std::collections::HashMap<String, (i64, Vec<u8>)>>);

/// Most tokens kept; beyond, the oldest window's are let go first.
const MAX_TOKENS: usize = 200_000;

impl SeenTokens {
    /// Records `token` signed at unix time `at` for `body`; false if it came
    /// before with another body.
    fn first_use(&self, token: &str, at: i64, body: &[u8], now: OffsetDateTime) -> bool {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body)
            .as_ref()
            .to_vec();
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, before)) = seen.get(token) {
            return *before == digest;
        }
        if seen.len() >= MAX_TOKENS {
            let oldest = now.unix_timestamp() - super::MAX_AGE.whole_seconds();
            seen.retain(|_, (signed, _)| *signed >= oldest);
            if seen.len() >= MAX_TOKENS {
                seen.clear();
            }
        }
        seen.insert(token.to_owned(), (at, digest));
        true
    }
}

/// Verifies a body signed with the signing key `key` whose token is not in
/// `seen`; answers its events (the signature sits inside the body, so
/// verifying reads it).
pub fn verify_and_parse(
    key: &str,
    seen: &SeenTokens,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Vec<ProviderEvent>, Unverified> {
    let raw = body;
    let body: Body = serde_json::from_slice(body)
        .map_err(|_| Unverified::new("not a Mailgun webhook body with a `signature`"))?;
    let signature = &body.signature;
    fresh(&signature.timestamp, now)?;
    let expected = hmac_sha256(
        key.as_bytes(),
        &[signature.timestamp.as_bytes(), signature.token.as_bytes()],
    );
    let given = from_hex(&signature.signature)
        .ok_or_else(|| Unverified::new("the signature is not hex"))?;
    if !same(&given, &expected) {
        return Err(Unverified::new("the signature does not match"));
    }
    let at = signature.timestamp.trim().parse().unwrap_or_default();
    if !seen.first_use(&signature.token, at, raw, now) {
        return Err(Unverified::new(
            "the signature came before with another event (a replay?)",
        ));
    }
    Ok(body.event.and_then(normalise).into_iter().collect())
}

fn normalise(event: Event) -> Option<ProviderEvent> {
    let permanent = event.severity.as_deref() == Some("permanent");
    let (kind, bounce) = match event.event.as_str() {
        "delivered" => (EventType::Delivered, None),
        // A temporary failure is retried by Mailgun.
        "failed" if permanent => (EventType::Bounced, Some(Bounce::Hard)),
        "failed" => (EventType::Deferred, None),
        "complained" => (EventType::Complained, None),
        _ => return None,
    };
    let text = |value: Option<&Value>, path: &[&str]| -> Option<String> {
        let mut at = value?;
        for key in path {
            at = at.get(key)?;
        }
        at.as_str().map(str::to_owned)
    };
    let header = text(event.message.as_ref(), &["headers", "message-id"]);
    let reason = text(event.delivery_status.as_ref(), &["message"])
        .filter(|m| !m.is_empty())
        .or_else(|| text(event.delivery_status.as_ref(), &["description"]))
        .or(event.reason);
    Some(ProviderEvent {
        message: MessageRef {
            ours: text(event.variables.as_ref(), &["mailbridge-id"])
                .and_then(|id| Uuid::try_parse(&id).ok()),
            // Mailgun's id of a message is its Message-ID (without brackets).
            provider: header.clone(),
            message_id_header: header,
        },
        kind,
        bounce,
        recipient: event.recipient,
        detail: detail(reason.as_deref()),
        provider_event_id: event.id,
        occurred_at: event
            .timestamp
            .and_then(unix_seconds)
            .unwrap_or_else(OffsetDateTime::now_utc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(key: &str, timestamp: i64, event: &str) -> Vec<u8> {
        let token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0";
        let mac = hmac_sha256(
            key.as_bytes(),
            &[timestamp.to_string().as_bytes(), token.as_bytes()],
        );
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            r#"{{"signature":{{"timestamp":"{timestamp}","token":"{token}","signature":"{hex}"}},"event-data":{event}}}"#
        )
        .into_bytes()
    }

    /// Mailgun's published example: the signing key, timestamp, token and
    /// signature of the webhook tests of its official PHP library
    /// (`tests/Api/WebhookTest.php` of mailgun/mailgun-php).
    #[test]
    fn the_published_example_verifies() {
        let key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
        let body = |token: &str| {
            format!(
                r#"{{"signature":{{"timestamp":"1403645220","token":"{token}","signature":"9cfc5c41582e51246e73c88d34db3af0a3a2692a76fbab81492842f000256d33"}}}}"#
            )
            .into_bytes()
        };
        let signed_at = OffsetDateTime::from_unix_timestamp(1_403_645_220).unwrap();
        let good = body("5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6");
        let seen = SeenTokens::default();
        assert_eq!(
            verify_and_parse(key, &seen, &good, signed_at)
                .unwrap()
                .len(),
            0
        );
        // The same body again is a retry; the signature with another event, a replay.
        assert!(verify_and_parse(key, &seen, &good, signed_at).is_ok());
        let mut forged = good.clone();
        forged.pop();
        forged.extend_from_slice(br#","event-data":{"id":"x","event":"failed","severity":"permanent","recipient":"ada@example.com"}}"#);
        let again = verify_and_parse(key, &seen, &forged, signed_at).unwrap_err();
        assert!(again.to_string().contains("another event"), "{again}");
        // The library's "bad" case: another token under the same signature.
        let tampered = body("owyldpe6nxhmrn78epljl6bj0orrki1u3d2v5e6cnlmmuox8jr");
        let fresh = SeenTokens::default();
        assert!(verify_and_parse(key, &fresh, &tampered, signed_at).is_err());
        assert!(verify_and_parse("key-other", &fresh, &good, signed_at).is_err());
        let today = OffsetDateTime::now_utc();
        assert!(
            verify_and_parse(key, &fresh, &good, today).is_err(),
            "a replay"
        );
    }

    #[test]
    fn a_permanent_failure_is_a_hard_bounce() {
        let now = OffsetDateTime::now_utc();
        let body = signed(
            "key-1",
            now.unix_timestamp(),
            r#"{"id":"ev1","event":"failed","severity":"permanent","recipient":"a@x.example","delivery-status":{"code":550,"message":"5.1.1 no such user"},"message":{"headers":{"message-id":"abc@x"}}}"#,
        );
        let seen = SeenTokens::default();
        let events = verify_and_parse("key-1", &seen, &body, now).unwrap();
        assert_eq!(events[0].bounce, Some(Bounce::Hard));
        assert_eq!(events[0].detail.as_deref(), Some("5.1.1 no such user"));
        let fresh = SeenTokens::default();
        assert!(verify_and_parse("key-2", &fresh, &body, now).is_err());
        let stale = now + time::Duration::minutes(11);
        assert!(verify_and_parse("key-1", &fresh, &body, stale).is_err());
    }
}
