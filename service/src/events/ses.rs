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

/// What SES publishes to the topic of a configuration set's event
/// destination when it is set up: text, not an event.
const DESTINATION_VALIDATED: &str =
    "Successfully validated SNS topic for Amazon SES event publishing.";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    notification_type: Option<String>,
    event_type: Option<String>,
    /// Absent from SES's notice that a topic was subscribed
    /// (`AmazonSnsSubscriptionSucceeded`), which concerns no message.
    mail: Option<Mail>,
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
    if message.trim() == DESTINATION_VALIDATED {
        return Ok(Vec::new());
    }
    let event: Event =
        serde_json::from_str(message).map_err(|e| Unreadable(format!("not an SES event: {e}")))?;
    let Some(mail) = event.mail else {
        return match event.notification_type.as_deref() {
            Some("AmazonSnsSubscriptionSucceeded") => Ok(Vec::new()),
            _ => Err(Unreadable("not an SES event: no `mail`".into())),
        };
    };
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
        .or(mail.timestamp.as_deref())
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .unwrap_or_else(OffsetDateTime::now_utc);
    let reference = MessageRef {
        ours: mail
            .tags
            .get("mailbridge-id")
            .and_then(|v| v.first())
            .and_then(|id| Uuid::try_parse(id).ok()),
        message_id_header: None,
        provider: mail.message_id.clone(),
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

    /// What SES publishes when an identity's notifications are pointed at
    /// a topic, and when a configuration set's event destination is: no
    /// event, and not an unreadable body either (SNS would try again).
    #[test]
    fn ses_setup_notices_are_no_events() {
        let subscribed = r#"{"notificationType":"AmazonSnsSubscriptionSucceeded","message":"You have successfully subscribed your Amazon SNS topic 'arn:aws:sns:us-east-1:123456789012:ses' to receive 'Bounce' notifications from Amazon SES for identity 'acme.example'."}"#;
        assert!(parse(subscribed, "sns-1").unwrap().is_empty());
        let validated = "Successfully validated SNS topic for Amazon SES event publishing.";
        assert!(parse(validated, "sns-2").unwrap().is_empty());
        assert!(parse(r#"{"notificationType":"Bounce"}"#, "sns-3").is_err());
        assert!(parse("hello", "sns-4").is_err());
    }

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
