//! Mailgun's webhooks: one JSON object, `{"signature": {"timestamp", "token",
//! "signature"}, "event-data": {…}}`, where `signature` is the hex
//! HMAC-SHA256 of `timestamp` followed by `token` under the HTTP webhook
//! signing key (the transport's `webhook_key`).

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::signature::{SignatureToken, Unverified, fresh, from_hex, hmac_sha256, same};
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

/// Verifies a body signed with the signing key `key`; answers its events
/// (the signature sits inside the body, so verifying reads it) and the
/// signature's token, which covers no event: the caller takes the events
/// only if the store has not seen the token with another body.
pub fn verify_and_parse(
    key: &str,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(Vec<ProviderEvent>, SignatureToken), Unverified> {
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
    let signed_at = OffsetDateTime::from_unix_timestamp(at).unwrap_or(now);
    let token = SignatureToken::new(&signature.token, raw, signed_at);
    Ok((body.event.and_then(normalise).into_iter().collect(), token))
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
        let (events, token) = verify_and_parse(key, &good, signed_at).unwrap();
        assert!(events.is_empty());
        assert_eq!(token.signed_at, signed_at);
        // The token is what the store keeps: the same for the same body
        // (Mailgun's retry), with another digest for another event.
        let mut forged = good.clone();
        forged.pop();
        forged.extend_from_slice(br#","event-data":{"id":"x","event":"failed","severity":"permanent","recipient":"ada@example.com"}}"#);
        let (events, replayed) = verify_and_parse(key, &forged, signed_at).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(replayed.token, token.token);
        assert_ne!(replayed.body, token.body);
        assert_eq!(verify_and_parse(key, &good, signed_at).unwrap().1, token);
        // The library's "bad" case: another token under the same signature.
        let tampered = body("owyldpe6nxhmrn78epljl6bj0orrki1u3d2v5e6cnlmmuox8jr");
        assert!(verify_and_parse(key, &tampered, signed_at).is_err());
        assert!(verify_and_parse("key-other", &good, signed_at).is_err());
        let today = OffsetDateTime::now_utc();
        assert!(verify_and_parse(key, &good, today).is_err(), "a replay");
    }

    #[test]
    fn a_permanent_failure_is_a_hard_bounce() {
        let now = OffsetDateTime::now_utc();
        let body = signed(
            "key-1",
            now.unix_timestamp(),
            r#"{"id":"ev1","event":"failed","severity":"permanent","recipient":"a@x.example","delivery-status":{"code":550,"message":"5.1.1 no such user"},"message":{"headers":{"message-id":"abc@x"}}}"#,
        );
        let (events, _) = verify_and_parse("key-1", &body, now).unwrap();
        assert_eq!(events[0].bounce, Some(Bounce::Hard));
        assert_eq!(events[0].detail.as_deref(), Some("5.1.1 no such user"));
        assert!(verify_and_parse("key-2", &body, now).is_err());
        let stale = now + time::Duration::minutes(11);
        assert!(verify_and_parse("key-1", &body, stale).is_err());
    }
}
