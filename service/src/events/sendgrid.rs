//! SendGrid's Event Webhook: a JSON array of events, signed with ECDSA P-256
//! over SHA-256 of the `X-Twilio-Email-Event-Webhook-Timestamp` value followed
//! by the raw body; the signature (`X-Twilio-Email-Event-Webhook-Signature`)
//! is base64 DER, the verification key (the transport's `webhook_key`) base64
//! DER SubjectPublicKeyInfo, as SendGrid's settings page shows it.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey, UnparsedPublicKey};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::signature::{Unverified, fresh, header};
use super::{Bounce, EventType, MessageRef, ProviderEvent, Unreadable, detail, unix_seconds};

/// Header of the signature.
pub const SIGNATURE: &str = "x-twilio-email-event-webhook-signature";
/// Header of the signed timestamp.
pub const TIMESTAMP: &str = "x-twilio-email-event-webhook-timestamp";

/// Whether `key` can verify SendGrid's signatures (base64 DER of a P-256
/// public key), checked at start: a key that cannot would refuse every event.
pub fn check_key(key: &str) -> Result<(), &'static str> {
    let der = STANDARD
        .decode(key.trim())
        .map_err(|_| "`webhook_key` is not base64 (SendGrid's verification key)")?;
    ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der)
        .map(drop)
        .map_err(|_| "`webhook_key` is not a P-256 public key (SendGrid's verification key)")
}

/// Verifies a request signed with the key whose base64 DER is `key`.
pub fn verify(
    key: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), Unverified> {
    let timestamp = header(headers, TIMESTAMP)?;
    fresh(timestamp, now)?;
    let signature = STANDARD
        .decode(header(headers, SIGNATURE)?.trim())
        .map_err(|_| Unverified::new("the signature is not base64"))?;
    verify_signature(key, timestamp, body, &signature)
}

fn verify_signature(
    key: &str,
    timestamp: &str,
    body: &[u8],
    signature: &[u8],
) -> Result<(), Unverified> {
    let key = STANDARD
        .decode(key.trim())
        .map_err(|_| Unverified::new("the transport's webhook_key is not base64"))?;
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
        .verify(&signed, signature)
        .map_err(|_| Unverified::new("the signature does not match"))
}

/// One SendGrid event (the fields we read; the custom args we sent come back at the top level).
#[derive(Debug, Deserialize)]
struct Event {
    event: String,
    email: Option<String>,
    timestamp: Option<f64>,
    sg_event_id: Option<String>,
    sg_message_id: Option<String>,
    #[serde(rename = "smtp-id")]
    smtp_id: Option<String>,
    #[serde(rename = "type")]
    bounce_type: Option<String>,
    reason: Option<String>,
    response: Option<String>,
    #[serde(rename = "mailbridge-id")]
    ours: Option<String>,
}

/// The events of a verified body we act on (opens, clicks and the like are left out).
pub fn parse(body: &[u8]) -> Result<Vec<ProviderEvent>, Unreadable> {
    let events: Vec<Event> = serde_json::from_slice(body)
        .map_err(|e| Unreadable(format!("not a SendGrid event array: {e}")))?;
    Ok(events.into_iter().filter_map(normalise).collect())
}

fn normalise(event: Event) -> Option<ProviderEvent> {
    let (kind, bounce) = match event.event.as_str() {
        "delivered" => (EventType::Delivered, None),
        "deferred" => (EventType::Deferred, None),
        // `blocked` is SendGrid's temporary kind of bounce.
        "bounce" if event.bounce_type.as_deref() == Some("blocked") => {
            (EventType::Bounced, Some(Bounce::Soft))
        }
        "bounce" => (EventType::Bounced, Some(Bounce::Hard)),
        "spamreport" => (EventType::Complained, None),
        _ => return None,
    };
    // `sg_message_id` is the `X-Message-Id` of the send answer, a dot and a suffix.
    let provider = event
        .sg_message_id
        .as_deref()
        .map(|id| id.split('.').next().unwrap_or(id).to_owned());
    Some(ProviderEvent {
        message: MessageRef {
            ours: event
                .ours
                .as_deref()
                .and_then(|id| Uuid::try_parse(id).ok()),
            message_id_header: event.smtp_id,
            provider,
        },
        kind,
        bounce,
        recipient: event.email,
        detail: detail(event.reason.as_deref().or(event.response.as_deref())),
        provider_event_id: event.sg_event_id,
        occurred_at: event
            .timestamp
            .and_then(unix_seconds)
            .unwrap_or_else(OffsetDateTime::now_utc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SendGrid's published example (the test data of its helper libraries).
    const PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    const SIGNATURE_B64: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
    const TIMESTAMP_VALUE: &str = "1588788367";
    const PAYLOAD: &str =
        r#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;

    #[test]
    fn the_published_example_verifies() {
        let signature = STANDARD.decode(SIGNATURE_B64).unwrap();
        assert!(
            verify_signature(PUBLIC_KEY, TIMESTAMP_VALUE, PAYLOAD.as_bytes(), &signature).is_ok()
        );
        assert!(
            verify_signature(PUBLIC_KEY, "1388788367", PAYLOAD.as_bytes(), &signature).is_err()
        );
        assert!(verify_signature(PUBLIC_KEY, TIMESTAMP_VALUE, b"payload", &signature).is_err());
    }

    #[test]
    fn the_published_example_is_refused_as_a_replay() {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE, SIGNATURE_B64.parse().unwrap());
        headers.insert(TIMESTAMP, TIMESTAMP_VALUE.parse().unwrap());
        let error = verify(
            PUBLIC_KEY,
            &headers,
            PAYLOAD.as_bytes(),
            OffsetDateTime::now_utc(),
        );
        assert!(error.unwrap_err().0.contains("10 minutes"));
    }

    #[test]
    fn bounces_are_hard_unless_blocked() {
        let body = br#"[{"event":"bounce","type":"bounce","email":"a@x.example","sg_message_id":"abc.filter1","sg_event_id":"e1","reason":"550 5.1.1 no such user","timestamp":1700000000},
                       {"event":"bounce","type":"blocked","email":"a@x.example","sg_event_id":"e2"},
                       {"event":"open","email":"a@x.example"}]"#;
        let events = parse(body).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].bounce, Some(Bounce::Hard));
        assert_eq!(events[0].message.provider.as_deref(), Some("abc"));
        assert_eq!(events[1].bounce, Some(Bounce::Soft));
    }
}
