//! Postmark's webhooks: one JSON object per request with a `RecordType`
//! (`Delivery`, `Bounce`, `SpamComplaint`, …), authenticated by HTTP basic
//! auth with the `user:password` written into the webhook's URL at Postmark
//! (the transport's `webhook_key`). Postmark signs nothing, so a replay cannot
//! be told apart: keep the URL's credentials secret and the endpoint on https.

use std::collections::BTreeMap;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::{Bounce, EventType, MessageRef, ProviderEvent, Unreadable, content_id, detail};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Record {
    record_type: String,
    #[serde(rename = "ID")]
    id: Option<serde_json::Value>,
    #[serde(rename = "MessageID")]
    message_id: Option<String>,
    #[serde(rename = "Type")]
    bounce_type: Option<String>,
    recipient: Option<String>,
    email: Option<String>,
    delivered_at: Option<String>,
    bounced_at: Option<String>,
    description: Option<String>,
    details: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// Bounce types Postmark will not deliver to again.
const HARD: [&str; 3] = ["HardBounce", "BadEmailAddress", "ManuallyDeactivated"];
/// Bounce types of a passing condition.
const SOFT: [&str; 5] = [
    "SoftBounce",
    "Transient",
    "DnsError",
    "Blocked",
    "SMTPApiError",
];

/// The event of a verified body, if it is one we act on.
pub fn parse(body: &[u8]) -> Result<Vec<ProviderEvent>, Unreadable> {
    let unreadable =
        |e: serde_json::Error| Unreadable(format!("not a Postmark webhook record: {e}"));
    let raw: serde_json::Value = serde_json::from_slice(body).map_err(unreadable)?;
    let record = Record::deserialize(&raw).map_err(unreadable)?;
    Ok(normalise(record, &raw).into_iter().collect())
}

/// `record`, read from `raw`.
fn normalise(record: Record, raw: &serde_json::Value) -> Option<ProviderEvent> {
    let bounce_type = record.bounce_type.as_deref().unwrap_or_default();
    let (kind, bounce, at) = match record.record_type.as_str() {
        "Delivery" => (EventType::Delivered, None, &record.delivered_at),
        "Bounce" if HARD.contains(&bounce_type) => {
            (EventType::Bounced, Some(Bounce::Hard), &record.bounced_at)
        }
        "Bounce" if SOFT.contains(&bounce_type) => {
            (EventType::Bounced, Some(Bounce::Soft), &record.bounced_at)
        }
        "SpamComplaint" => (EventType::Complained, None, &record.bounced_at),
        _ => return None,
    };
    let occurred_at = at
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .unwrap_or_else(OffsetDateTime::now_utc);
    // Bounces and complaints have an id; deliveries have none, and are
    // known by their content, so that Postmark's retry is a repeat.
    let provider_event_id = match record.id {
        Some(serde_json::Value::String(id)) => format!("{}:{id}", record.record_type),
        Some(id) => format!("{}:{id}", record.record_type),
        None => content_id(raw),
    };
    Some(ProviderEvent {
        message: MessageRef {
            ours: record
                .metadata
                .get("mailbridge-id")
                .and_then(|id| Uuid::try_parse(id).ok()),
            message_id_header: None,
            provider: record.message_id,
        },
        kind,
        bounce,
        recipient: record.recipient.or(record.email),
        detail: detail(record.details.as_deref().or(record.description.as_deref())),
        provider_event_id: Some(provider_event_id),
        occurred_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_postmarks_bounce_example() {
        let body = br#"{"RecordType":"Bounce","MessageStream":"outbound","ID":4323372036854775807,"Type":"HardBounce","TypeCode":1,"Name":"Hard bounce","Tag":"Test","MessageID":"883953f4-6105-42a2-a16a-77a8eac79483","Metadata":{"a_key":"a_value"},"ServerID":23,"Description":"The server was unable to deliver your message (ex: unknown user, mailbox not found).","Details":"Test bounce details","Email":"john@example.com","From":"sender@example.com","BouncedAt":"2019-11-05T16:33:54.9070259Z","DumpAvailable":true,"Inactive":true,"CanActivate":true,"Subject":"Test subject","Content":"<Full dump of bounce>"}"#;
        let events = parse(body).unwrap();
        assert_eq!(events[0].kind, EventType::Bounced);
        assert_eq!(events[0].bounce, Some(Bounce::Hard));
        assert_eq!(events[0].recipient.as_deref(), Some("john@example.com"));
        assert_eq!(
            events[0].message.provider.as_deref(),
            Some("883953f4-6105-42a2-a16a-77a8eac79483")
        );
        assert_eq!(events[0].occurred_at.year(), 2019);
    }
}
