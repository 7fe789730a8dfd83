//! Resend's webhooks, delivered by Svix: one JSON event per request, signed
//! with the `whsec_…` secret (the transport's `webhook_key`): `svix-signature`
//! holds space-separated `v1,<base64 HMAC-SHA256>` of
//! `{svix-id}.{svix-timestamp}.{body}` under the base64 key after `whsec_`.

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::signature::{Unverified, fresh, header, hmac_sha256, same};
use super::{Bounce, EventType, MessageRef, ProviderEvent, Unreadable, detail};

/// Verifies a request signed with `secret` (`whsec_…`); answers the `svix-id`.
pub fn verify(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<String, Unverified> {
    let id = header(headers, "svix-id")?;
    let timestamp = header(headers, "svix-timestamp")?;
    fresh(timestamp, now)?;
    verify_signature(
        secret,
        id,
        timestamp,
        body,
        header(headers, "svix-signature")?,
    )?;
    Ok(id.to_owned())
}

/// Whether `secret` is a Svix signing secret (`whsec_` and base64),
/// checked at start: one that is not would refuse every event.
pub fn check_key(secret: &str) -> Result<(), &'static str> {
    key_of(secret)
        .filter(|key| !key.is_empty())
        .map(drop)
        .ok_or("`webhook_key` is not a signing secret (`whsec_` and base64)")
}

/// The HMAC key a `whsec_…` secret carries.
fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.trim().trim_start_matches("whsec_"))
        .ok()
}

fn verify_signature(
    secret: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
    signatures: &str,
) -> Result<(), Unverified> {
    let key = key_of(secret)
        .ok_or_else(|| Unverified::new("the transport's webhook_key is not a whsec_ secret"))?;
    let expected = hmac_sha256(
        &key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    // Several signatures appear while a secret is rotated; one must match.
    let matches = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .any(|given| same(&given, &expected));
    if matches {
        Ok(())
    } else {
        Err(Unverified::new("no v1 signature matches"))
    }
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    created_at: Option<String>,
    data: Data,
}

#[derive(Debug, Deserialize)]
struct Data {
    email_id: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    bounce: Option<BounceData>,
}

#[derive(Debug, Deserialize)]
struct BounceData {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

/// The event of a verified body, if it is one we act on; `svix_id` names it.
pub fn parse(body: &[u8], svix_id: String) -> Result<Vec<ProviderEvent>, Unreadable> {
    let event: Event = serde_json::from_slice(body)
        .map_err(|e| Unreadable(format!("not a Resend webhook event: {e}")))?;
    let bounce_type = event.data.bounce.as_ref().and_then(|b| b.kind.as_deref());
    let (kind, bounce) = match event.kind.as_str() {
        "email.delivered" => (EventType::Delivered, None),
        "email.delivery_delayed" => (EventType::Deferred, None),
        "email.bounced" if bounce_type == Some("Permanent") => {
            (EventType::Bounced, Some(Bounce::Hard))
        }
        "email.bounced" => (EventType::Bounced, Some(Bounce::Soft)),
        "email.complained" => (EventType::Complained, None),
        _ => return Ok(Vec::new()),
    };
    let reason = event
        .data
        .bounce
        .as_ref()
        .and_then(|b| b.message.as_deref());
    Ok(vec![ProviderEvent {
        message: MessageRef {
            ours: None,
            message_id_header: None,
            provider: event.data.email_id,
        },
        kind,
        bounce,
        // `to` lists every address of the message (as it gave them, names
        // and all), not the one the event is about: only a message to one
        // address names its recipient; for more, nobody is suppressed.
        recipient: match event.data.to.as_slice() {
            [to] => Some(super::bare_address(to).to_owned()),
            _ => None,
        },
        detail: detail(reason),
        provider_event_id: Some(svix_id),
        occurred_at: event
            .created_at
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .unwrap_or_else(OffsetDateTime::now_utc),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_svix_example_verifies() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let body = br#"{"test": 2432232314}"#;
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        assert!(verify_signature(secret, id, "1614265330", body, signature).is_ok());
        let rotated = format!("v1,bm90IGl0 {signature}");
        assert!(verify_signature(secret, id, "1614265330", body, &rotated).is_ok());
        assert!(verify_signature(secret, id, "1614265331", body, signature).is_err());
    }

    #[test]
    fn a_permanent_bounce_is_hard() {
        let body = br#"{"type":"email.bounced","created_at":"2024-11-22T23:41:12.126Z","data":{"email_id":"56761188-7520-42d8-8898-ff6fc54ce618","to":["delivered@resend.dev"],"bounce":{"message":"The recipient's mail server permanently rejected the email.","subType":"Suppressed","type":"Permanent"}}}"#;
        let events = parse(body, "msg_1".into()).unwrap();
        assert_eq!(events[0].bounce, Some(Bounce::Hard));
        assert_eq!(
            events[0].message.provider.as_deref(),
            Some("56761188-7520-42d8-8898-ff6fc54ce618")
        );
        assert_eq!(events[0].recipient.as_deref(), Some("delivered@resend.dev"));
    }

    #[test]
    fn a_bounce_of_a_message_to_several_names_no_one_in_particular() {
        let body = br#"{"type":"email.bounced","created_at":"2024-11-22T23:41:12.126Z","data":{"email_id":"5676","to":["Ada <ada@example.com>","bob@bad.example"],"bounce":{"type":"Permanent"}}}"#;
        let events = parse(body, "msg_2".into()).unwrap();
        assert_eq!(events[0].bounce, Some(Bounce::Hard));
        assert_eq!(events[0].recipient, None);
    }
}
