//! Amazon SES events, as SNS delivers them (see [`super::sns`]): SES
//! notifications (`notificationType`) or configuration-set event publishing
//! (`eventType`): `Delivery`, `DeliveryDelay`, `Bounce` (`Permanent` is hard),
//! `Complaint`; one event per recipient.

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::{Bounce, EventType, MessageRef, ProviderEvent, Unreadable, detail};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    notification_type: Option<String>,
    event_type: Option<String>,
    mail: Mail,
    bounce: Option<Value>,
    complaint: Option<Value>,
    delivery: Option<Value>,
    delivery_delay: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mail {
    message_id: Option<String>,
    timestamp: Option<String>,
    /// Configuration-set event publishing: tag name → values.
    #[serde(default)]
    tags: std::collections::BTreeMap<String, Vec<String>>,
}

/// The events of an SES event `message` (the SNS Message text); `sns_id`
/// names them, one per recipient.
pub fn parse(message: &str, sns_id: &str) -> Result<Vec<ProviderEvent>, Unreadable> {
    let event: Event =
        serde_json::from_str(message).map_err(|e| Unreadable(format!("not an SES event: {e}")))?;
    let kind = event
        .notification_type
        .as_deref()
        .or(event.event_type.as_deref());
    let none = Value::Null;
    let (kind, bounce, body, list, address) = match kind {
        Some("Delivery") => (
            EventType::Delivered,
            None,
            event.delivery.as_ref(),
            "recipients",
            None,
        ),
        Some("DeliveryDelay") => (
            EventType::Deferred,
            None,
            event.delivery_delay.as_ref(),
            "delayedRecipients",
            Some("emailAddress"),
        ),
        Some("Bounce") => {
            let body = event.bounce.as_ref();
            let hard = body
                .and_then(|b| b.get("bounceType"))
                .and_then(Value::as_str)
                == Some("Permanent");
            let bounce = if hard { Bounce::Hard } else { Bounce::Soft };
            (
                EventType::Bounced,
                Some(bounce),
                body,
                "bouncedRecipients",
                Some("emailAddress"),
            )
        }
        Some("Complaint") => (
            EventType::Complained,
            None,
            event.complaint.as_ref(),
            "complainedRecipients",
            Some("emailAddress"),
        ),
        _ => return Ok(Vec::new()),
    };
    let body = body.unwrap_or(&none);
    let occurred_at = body
        .get("timestamp")
        .and_then(Value::as_str)
        .or(event.mail.timestamp.as_deref())
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .unwrap_or_else(OffsetDateTime::now_utc);
    let reference = MessageRef {
        ours: event
            .mail
            .tags
            .get("mailbridge-id")
            .and_then(|v| v.first())
            .and_then(|id| Uuid::try_parse(id).ok()),
        message_id_header: None,
        provider: event.mail.message_id.clone(),
    };
    let smtp_response = body.get("smtpResponse").and_then(Value::as_str);
    let recipients = body
        .get(list)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(recipients
        .iter()
        .enumerate()
        .map(|(n, recipient)| {
            let email = match address {
                Some(field) => recipient.get(field).and_then(Value::as_str),
                None => recipient.as_str(),
            };
            let reason = recipient
                .get("diagnosticCode")
                .and_then(Value::as_str)
                .or(smtp_response);
            ProviderEvent {
                message: reference.clone(),
                kind,
                bounce,
                recipient: email.map(str::to_owned),
                detail: detail(reason),
                provider_event_id: Some(format!("{sns_id}:{n}")),
                occurred_at,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ses_bounce_example() {
        let message = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",
            "bouncedRecipients":[{"emailAddress":"jane@example.com","status":"5.1.1","action":"failed",
            "diagnosticCode":"smtp; 550 5.1.1 user unknown"},{"emailAddress":"richard@example.com"}],
            "timestamp":"2016-01-27T14:59:38.237Z","feedbackId":"00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
            "remoteMtaIp":"127.0.2.0"},"mail":{"timestamp":"2016-01-27T14:59:38.237Z",
            "messageId":"00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000","source":"john@example.com",
            "destination":["jane@example.com","richard@example.com"]}}"#;
        let events = parse(message, "sns-1").unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].bounce, Some(Bounce::Hard));
        assert_eq!(events[0].recipient.as_deref(), Some("jane@example.com"));
        assert_eq!(
            events[0].detail.as_deref(),
            Some("smtp; 550 5.1.1 user unknown")
        );
        assert_eq!(events[1].provider_event_id.as_deref(), Some("sns-1:1"));
        assert_eq!(
            events[0].message.provider.as_deref(),
            Some("00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000")
        );
    }
}
