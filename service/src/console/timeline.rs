//! One message's timeline after its acceptance: every attempt with its
//! transport and answer, and every delivery event a provider reported, in
//! the order they happened.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::pages::stamp;
use crate::api::AppState;
use crate::events::DeliveryEvent;
use crate::queue::StoreError;
use crate::queue::history::AttemptRecord;

/// One entry of a message's timeline after its acceptance.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// When, as the pages show it.
    pub at: String,
    /// `attempt` or `event` (a provider's delivery event).
    pub entry: &'static str,
    /// What happened: an attempt's outcome (`sent`, `retrying`, `failed`) or
    /// an event's type (`delivered`, `deferred`, `bounced`, `complained`).
    pub what: String,
    /// Which attempt, for an attempt.
    pub attempt: Option<u32>,
    /// For a bounce: `hard` or `soft`.
    pub bounce: Option<&'static str>,
    /// The recipient an event is about.
    pub recipient: Option<String>,
    /// The transport it went through, or whose endpoint received the event.
    pub transport: String,
    /// The server's or provider's answer, or the provider's reason.
    pub answer: Option<String>,
    /// When, for the ordering.
    #[serde(skip)]
    pub happened: OffsetDateTime,
}

impl From<AttemptRecord> for Entry {
    fn from(a: AttemptRecord) -> Self {
        Entry {
            at: stamp(a.finished_at),
            entry: "attempt",
            what: a.outcome,
            attempt: Some(a.attempt),
            bounce: None,
            recipient: None,
            transport: a.transport,
            answer: a.answer,
            happened: a.finished_at,
        }
    }
}

impl From<DeliveryEvent> for Entry {
    fn from(e: DeliveryEvent) -> Self {
        Entry {
            at: stamp(e.occurred_at),
            entry: "event",
            what: e.kind.as_str().to_owned(),
            attempt: None,
            bounce: e.bounce.map(|b| b.as_str()),
            recipient: e.recipient,
            transport: e.transport,
            answer: e.detail,
            happened: e.occurred_at,
        }
    }
}

/// The timeline of message `id`, oldest first. Attempts and events that
/// happened at the same time keep attempts first: an event reports on an attempt.
pub async fn timeline(state: &AppState, id: Uuid) -> Result<Vec<Entry>, StoreError> {
    let attempts = state.store.attempts(id).await?;
    let events = state.store.events(id).await?;
    let mut entries: Vec<Entry> = attempts
        .into_iter()
        .map(Entry::from)
        .chain(events.into_iter().map(Entry::from))
        .collect();
    // A stable sort: equal times stay in the order above.
    entries.sort_by_key(|e| e.happened);
    Ok(entries)
}

/// The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`):
/// what an operator looks up in their tracing system. `None` if it is not one.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    let valid = trace.len() == 32
        && trace.bytes().all(|b| b.is_ascii_hexdigit())
        && trace.bytes().any(|b| b != b'0');
    valid.then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::trace_id;

    #[test]
    fn the_trace_id_is_the_second_field_of_a_traceparent() {
        let traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(traced), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(
            trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id("not a traceparent"), None);
    }
}
