//! Mailjet's event API: a JSON array of events (or one event when grouping is
//! off), authenticated by HTTP basic auth with the `user:password` written
//! into the callback URL at Mailjet (the transport's `webhook_key`). Mailjet
//! signs nothing, so a replay cannot be told apart: keep the credentials
//! secret and the endpoint on https.

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Bounce, EventType, MessageRef, ProviderEvent, Unreadable, content_id, detail};

#[derive(Debug, Deserialize)]
struct Event {
    event: String,
    time: Option<i64>,
    email: Option<String>,
    #[serde(rename = "MessageID")]
    message_id: Option<Value>,
    #[serde(rename = "Message_GUID")]
    message_guid: Option<String>,
    #[serde(rename = "CustomID")]
    custom_id: Option<String>,
    #[serde(default)]
    hard_bounce: bool,
    error_related_to: Option<String>,
    error: Option<String>,
    smtp_reply: Option<String>,
}

/// The events of a verified body we act on (opens, clicks and the like are left out).
pub fn parse(body: &[u8]) -> Result<Vec<ProviderEvent>, Unreadable> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Unreadable(format!("not a Mailjet event body: {e}")))?;
    let list = match value {
        Value::Array(list) => list,
        single => vec![single],
    };
    list.iter()
        .map(|v| {
            Event::deserialize(v)
                .map(|event| (event, v))
                .map_err(|e| Unreadable(format!("not a Mailjet event: {e}")))
        })
        .filter_map(|event| event.map(|(event, v)| normalise(event, v)).transpose())
        .collect()
}

/// `event`, read from `raw`; Mailjet's events carry no id of their own, so
/// each is known by its content ([`content_id`]).
fn normalise(event: Event, raw: &Value) -> Option<ProviderEvent> {
    let (kind, bounce) = match event.event.as_str() {
        // Mailjet's `sent` is the recipient's server accepting the message.
        "sent" => (EventType::Delivered, None),
        "bounce" if event.hard_bounce => (EventType::Bounced, Some(Bounce::Hard)),
        "bounce" => (EventType::Bounced, Some(Bounce::Soft)),
        "spam" => (EventType::Complained, None),
        _ => return None,
    };
    let provider = event.message_id.map(|id| match id {
        Value::String(s) => s,
        other => other.to_string(),
    });
    let reason = match (&event.error_related_to, &event.error) {
        (Some(about), Some(error)) => Some(format!("{about}: {error}")),
        (None, Some(error)) => Some(error.clone()),
        _ => None,
    };
    Some(ProviderEvent {
        message: MessageRef {
            ours: event
                .custom_id
                .as_deref()
                .and_then(|id| Uuid::try_parse(id).ok()),
            message_id_header: None,
            provider: provider.or(event.message_guid),
        },
        kind,
        bounce,
        recipient: event.email,
        detail: detail(event.smtp_reply.as_deref().or(reason.as_deref())),
        provider_event_id: Some(content_id(raw)),
        occurred_at: event
            .time
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .unwrap_or_else(OffsetDateTime::now_utc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mailjets_bounce_example_alone_and_grouped() {
        let one = r#"{"event":"bounce","time":1430812195,"MessageID":13792286917004336,"Message_GUID":"1ab23cd4-e567-8901-2345-6789f0gh1i2j","email":"bounce@mailjet.com","mj_campaign_id":0,"mj_contact_id":0,"customcampaign":"","CustomID":"helloworld","Payload":"","blocked":false,"hard_bounce":true,"error_related_to":"recipient","error":"user unknown"}"#;
        let events = parse(one.as_bytes()).unwrap();
        assert_eq!(events[0].bounce, Some(Bounce::Hard));
        assert_eq!(
            events[0].message.provider.as_deref(),
            Some("13792286917004336")
        );
        assert_eq!(events[0].detail.as_deref(), Some("recipient: user unknown"));
        let grouped = format!(r#"[{one},{{"event":"open","time":1}}]"#);
        assert_eq!(parse(grouped.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn an_event_is_known_by_its_content_whatever_the_spacing() {
        let id = |body: &str| parse(body.as_bytes()).unwrap()[0].provider_event_id.clone();
        let sent = r#"{"event":"sent","time":1430812195,"MessageID":1,"email":"ada@example.com"}"#;
        let spaced = r#"[ { "email" : "ada@example.com", "event": "sent", "time": 1430812195, "MessageID": 1 } ]"#;
        assert!(id(sent).unwrap().starts_with("sha256:"));
        assert_eq!(id(sent), id(spaced));
        let later = sent.replace("1430812195", "1430812196");
        assert_ne!(id(sent), id(&later));
    }
}
