//! Delivery events: what happened to a message after its transport took it,
//! as each provider reports it to `POST /v1/events/{transport}`. Each
//! provider's file verifies its own signature scheme and reads its own event
//! format into [`ProviderEvent`]s; the API matches them to messages.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

pub mod dsn_report;
pub mod mailgun;
pub mod mailjet;
pub mod postmark;
pub mod resend;
pub mod sendgrid;
pub mod ses;
pub mod signature;
pub mod sns;
pub mod source;

pub use signature::Unverified;

/// How old a signed timestamp may be (and how far ahead): older ones are replays.
pub const MAX_AGE: time::Duration = time::Duration::minutes(10);

/// What happened, normalised across providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The recipient's server accepted the message.
    Delivered,
    /// The recipient's server refused for now; the provider tries again.
    Deferred,
    /// The message came back (see [`Bounce`]).
    Bounced,
    /// The recipient marked it as spam.
    Complained,
}

impl EventType {
    /// The name used in the API, the store and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Delivered => "delivered",
            EventType::Deferred => "deferred",
            EventType::Bounced => "bounced",
            EventType::Complained => "complained",
        }
    }

    /// Parses a name given by [`EventType::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "delivered" => EventType::Delivered,
            "deferred" => EventType::Deferred,
            "bounced" => EventType::Bounced,
            "complained" => EventType::Complained,
            _ => return None,
        })
    }
}

/// Whether a bounce is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bounce {
    /// The address does not work (unknown user, no such domain): do not send again.
    Hard,
    /// A passing condition (mailbox full, greylisting, a block that may lift).
    Soft,
}

impl Bounce {
    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Bounce::Hard => "hard",
            Bounce::Soft => "soft",
        }
    }

    /// Parses a name given by [`Bounce::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "hard" => Some(Bounce::Hard),
            "soft" => Some(Bounce::Soft),
            _ => None,
        }
    }
}

/// How a provider's event names the message it is about; tried in this order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageRef {
    /// Our id, from the metadata we gave the provider.
    pub ours: Option<Uuid>,
    /// Our `Message-ID` header value (with or without brackets).
    pub message_id_header: Option<String>,
    /// The provider's id of the message, as its send answer gave it.
    pub provider: Option<String>,
}

impl MessageRef {
    /// Our id as read from our `Message-ID` (`<simple-uuid@domain>`), if it is one of ours.
    pub fn id_from_header(&self) -> Option<Uuid> {
        let value = self.message_id_header.as_deref()?.trim();
        let value = value.trim_start_matches('<').trim_end_matches('>');
        let (local, _) = value.split_once('@')?;
        (local.len() == 32)
            .then(|| Uuid::try_parse(local).ok())
            .flatten()
    }
}

/// One event as a provider reported it, not yet matched to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEvent {
    /// Which message.
    pub message: MessageRef,
    /// What happened.
    pub kind: EventType,
    /// For a bounce: hard or soft.
    pub bounce: Option<Bounce>,
    /// The recipient it is about.
    pub recipient: Option<String>,
    /// The provider's reason (an SMTP reply, a description), shortened.
    pub detail: Option<String>,
    /// The provider's id of the event, so that a repeated delivery is stored once.
    pub provider_event_id: Option<String>,
    /// When it happened, as the provider says.
    pub occurred_at: OffsetDateTime,
}

/// An event matched to a message, as stored and shown by `GET /v1/messages/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryEvent {
    /// The message (our id).
    #[serde(skip)]
    pub message_id: Uuid,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// For `bounced`: `hard` or `soft`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounce: Option<Bounce>,
    /// The recipient it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The provider's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The transport whose endpoint received it.
    pub transport: String,
    /// The provider's id of the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_event_id: Option<String>,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// When we received it.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

impl DeliveryEvent {
    /// `event` about message `id`, received now through `transport`.
    pub fn matched(event: ProviderEvent, id: Uuid, transport: &str, now: OffsetDateTime) -> Self {
        Self {
            message_id: id,
            kind: event.kind,
            bounce: event.bounce,
            recipient: event.recipient,
            detail: event.detail,
            transport: transport.to_owned(),
            provider_event_id: event.provider_event_id,
            occurred_at: happened(event.occurred_at, now),
            received_at: now,
        }
    }
}

/// A provider's time of an event received at `now`, or `now` when no
/// clock could have given it: before 1970 (PostgreSQL keeps no time before
/// 4713 BC, and refuses the event) or further ahead than a clock's skew (it
/// would stay the message's latest event for good).
fn happened(at: OffsetDateTime, now: OffsetDateTime) -> OffsetDateTime {
    if at < OffsetDateTime::UNIX_EPOCH || at > now + MAX_AGE {
        now
    } else {
        at
    }
}

/// An id for a provider's event that carries none (Mailjet's, Postmark's
/// deliveries): `sha256:` and the digest of the event object as the
/// provider sent it, in hex. A batch delivered again (after a `503` or a
/// timeout on the provider's side) holds the same objects, so each is a
/// repeat, and the unique index on a transport's event ids drops it; two
/// events that differ in any field keep two ids. The object is written out
/// again before its digest is taken, so the spacing of the body does not
/// count.
pub fn content_id(event: &serde_json::Value) -> String {
    let text = serde_json::to_vec(event).unwrap_or_default();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &text);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A provider's event body could not be read (after its signature was verified).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// Longest provider reason kept with an event.
const MAX_DETAIL: usize = 500;

/// A provider's reason, trimmed and shortened to [`MAX_DETAIL`] bytes on a character boundary.
pub fn detail(text: Option<&str>) -> Option<String> {
    let text = text?.trim();
    if text.is_empty() {
        return None;
    }
    let mut end = text.len().min(MAX_DETAIL);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_owned())
}

/// The address in `text`: `Name <addr>` and `<addr>` give `addr`, anything
/// else itself, without surrounding space.
pub fn bare_address(text: &str) -> &str {
    let text = text.trim();
    match (text.rfind('<'), text.strip_suffix('>')) {
        // The `<` comes before the final `>`, so it is inside `inner`.
        (Some(open), Some(inner)) => inner[open + 1..].trim(),
        _ => text,
    }
}

/// An address as an event's recipient is compared with a message's: no
/// display name, angle brackets or surrounding space, lower case, the
/// domain in ASCII (an IDN as punycode), so that a provider's spelling of
/// an address matches the one the message was sent to.
pub fn address_key(address: &str) -> String {
    let address = bare_address(address).to_lowercase();
    crate::email::ascii_address(&address).into_owned()
}

/// A unix time in seconds (possibly fractional) as a time, if in range.
pub fn unix_seconds(seconds: f64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos((seconds * 1e9) as i128).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_message_id_names_our_message() {
        let id = Uuid::now_v7();
        let header = format!("<{}@acme.example>", id.simple());
        let reference = MessageRef {
            message_id_header: Some(header),
            ..MessageRef::default()
        };
        assert_eq!(reference.id_from_header(), Some(id));
        let foreign = MessageRef {
            message_id_header: Some("<20130503182626.18666.16540@mg.example>".into()),
            ..MessageRef::default()
        };
        assert_eq!(foreign.id_from_header(), None);
    }

    #[test]
    fn addresses_compare_as_a_provider_may_spell_them() {
        let sent = address_key("ada@münchen.example");
        for spelling in [
            "Ada@München.example",
            " <ada@xn--mnchen-3ya.example> ",
            "Ada Lovelace <ada@münchen.example>",
            "ADA@XN--MNCHEN-3YA.EXAMPLE",
        ] {
            assert_eq!(address_key(spelling), sent, "{spelling}");
        }
        assert_ne!(
            address_key("ada@example.com"),
            address_key("ada@example.co")
        );
        assert_ne!(
            address_key("ada@example.com"),
            address_key("bob@example.com")
        );
        for odd in ["", "<", ">", "<>", "a<>", "x>y<", "<<a>>"] {
            let _ = address_key(odd);
        }
        assert_eq!(bare_address("<<a>>"), "a>");
    }

    #[test]
    fn a_time_no_clock_could_give_is_the_time_received() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let at = |seconds: i64| OffsetDateTime::from_unix_timestamp(seconds).unwrap();
        for kept in [now, at(0), at(1_700_000_000), now + MAX_AGE] {
            assert_eq!(happened(kept, now), kept);
        }
        for far in [
            at(-1),
            at(-300_000_000_000),
            now + MAX_AGE + time::Duration::seconds(1),
            at(253_402_300_000),
        ] {
            assert_eq!(happened(far, now), now, "{far}");
        }
    }

    #[test]
    fn details_are_cut_on_a_character_boundary() {
        let long = "é".repeat(400);
        let cut = detail(Some(&long)).unwrap();
        assert!(cut.len() <= MAX_DETAIL && cut.chars().all(|c| c == 'é'));
        assert_eq!(detail(Some("  ")), None);
    }
}
