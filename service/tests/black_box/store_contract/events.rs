//! A message's delivery events are bounded: a provider, or anyone who
//! mails the bounce address a report naming one of its messages, may report
//! on it without end.

use std::sync::Arc;
use std::time::Duration;

use mailbridge::events::{Bounce, DeliveryEvent, EventType};
use mailbridge::queue::{JobStore, MAX_EVENTS_PER_MESSAGE};
use time::OffsetDateTime;

use super::{claim, job};

/// Past [`MAX_EVENTS_PER_MESSAGE`] events, a message's oldest passing
/// events (`deferred`, soft bounces) go first and its final ones (a
/// delivery, a hard bounce, a complaint) stay; once only final ones are
/// left, the oldest of them go. The event just stored always stays.
pub async fn a_messages_events_are_bounded_keeping_the_final_and_the_latest(
    store: Arc<dyn JobStore>,
) {
    let now = OffsetDateTime::now_utc();
    store.enqueue(job("acme", None, now)).await.unwrap();
    let id = claim(&store, now, 1).await[0].message.id;
    let add = |kind, bounce, event_id: String, seconds_ago: u64| {
        let store = store.clone();
        async move {
            let event = DeliveryEvent {
                message_id: id,
                kind,
                bounce,
                recipient: Some("ada@example.com".into()),
                detail: None,
                transport: "mj".into(),
                provider_event_id: Some(event_id),
                occurred_at: now - Duration::from_secs(seconds_ago),
                received_at: now,
            };
            assert!(store.add_event(&event).await.unwrap());
        }
    };
    let kept = || async {
        let events = store.events(id).await.unwrap();
        let ids: Vec<String> = events
            .iter()
            .map(|e| e.provider_event_id.clone().unwrap())
            .collect();
        ids
    };
    let bound = MAX_EVENTS_PER_MESSAGE as usize;
    add(
        EventType::Bounced,
        Some(Bounce::Hard),
        "bounce".into(),
        1000,
    )
    .await;
    add(EventType::Complained, None, "complaint".into(), 999).await;
    for n in 0..110 {
        add(EventType::Deferred, None, format!("deferred-{n}"), 900 - n).await;
    }
    let ids = kept().await;
    assert_eq!(ids.len(), bound);
    assert_eq!(ids[..2], ["bounce", "complaint"]);
    assert_eq!(ids[2], "deferred-12", "the oldest passing ones went");
    assert_eq!(ids.last().unwrap(), "deferred-109");

    // Reported late, an event older than all the others is kept all the same.
    add(EventType::Bounced, Some(Bounce::Soft), "late".into(), 2000).await;
    let ids = kept().await;
    assert_eq!(ids.len(), bound);
    assert_eq!(ids[..4], ["late", "bounce", "complaint", "deferred-13"]);

    for n in 0..bound as u64 {
        add(
            EventType::Delivered,
            None,
            format!("delivered-{n}"),
            500 - n,
        )
        .await;
    }
    let ids = kept().await;
    assert_eq!(ids.len(), bound);
    assert_eq!(ids[0], "delivered-0", "{ids:?}");
    assert_eq!(ids.last().unwrap(), &format!("delivered-{}", bound - 1));
}
