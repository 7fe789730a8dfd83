//! `POST /v1/events/{transport}`: a provider's delivery events, verified with
//! that provider's own scheme and the transport's `webhook_key`, matched to
//! our messages and stored. No bearer token: the provider's signature (or
//! basic auth) is the authentication.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::Instrument as _;

use super::AppState;
use super::error::ApiError;
use crate::events::source::{Delivered, Refused};
use crate::events::{Bounce, DeliveryEvent, EventType, ProviderEvent, Unreadable, address_key};
use crate::queue::{JobStore, Lane, MessageRecord, StoreError};
use crate::suppression::{Reason, Suppression, mailbox_of, normalise};
use crate::webhooks::WebhookType;

/// The answer to `POST /v1/events/{transport}`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Received {
    /// Events stored (matched to one of our messages, not seen before).
    pub stored: u32,
    /// Events about messages we do not know (sent by something else), or
    /// naming an address the message was not sent to: dropped.
    pub unmatched: u32,
    /// Events stored before (a provider's repeated delivery): dropped.
    pub repeated: u32,
}

/// `POST /v1/events/{transport}`.
pub async fn receive(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Received>, ApiError> {
    let Path(transport) = path?;
    let Some(source) = state.event_sources.get(&transport) else {
        return Err(ApiError::not_found(format!(
            "transport `{}` takes no events (it is unknown or has no webhook_key)",
            super::error::excerpt(&transport)
        )));
    };
    let body = body.map_err(|e| ApiError::new(e.status(), "the body could not be read"))?;
    let now = OffsetDateTime::now_utc();
    let delivered = source
        .receive(&headers, &body, now)
        .await
        .map_err(|refused| {
            // A parser's words about a body repeat its values: shortened.
            let refused = match refused {
                Refused::Unreadable(why) => {
                    Refused::Unreadable(Unreadable(super::error::shorten_quotes(&why.0)))
                }
                other => other,
            };
            tracing::warn!(%transport, reason = %refused, "delivery events refused");
            refusal(refused)
        })?;
    let mut received = Received {
        stored: 0,
        unmatched: 0,
        repeated: 0,
    };
    let events = match delivered {
        Delivered::Events(events) => events,
        Delivered::Signed(events, token) => {
            if !state.store.take_signature(&token, now).await? {
                tracing::warn!(%transport, "a webhook signature came again with another body: refused");
                return Err(ApiError::unauthorized(
                    "the events could not be verified as the provider's: the signature came before with another event (a replay?)",
                ));
            }
            events
        }
        Delivered::Subscription => return Ok(Json(received)),
    };
    for event in events {
        let Some(message) = find_message(state.store.as_ref(), &event).await? else {
            received.unmatched += 1;
            continue;
        };
        if !state
            .event_sources
            .may_concern(&transport, &message.transport)
        {
            tracing::warn!(
                message_id = %message.id,
                %transport,
                sent_through = %message.transport,
                "a delivery event names a message of another transport: dropped"
            );
            received.unmatched += 1;
            continue;
        }
        if !sent_to(state.store.as_ref(), message.id, &event).await? {
            tracing::warn!(
                message_id = %message.id,
                %transport,
                "a delivery event names an address its message was not sent to: dropped"
            );
            received.unmatched += 1;
            continue;
        }
        let event = DeliveryEvent::matched(event, message.id, &transport, now);
        // A span per event in the message's own trace (accept, deliveries,
        // events), carrying the message id that its delivery's spans carry too.
        let span = tracing::info_span!(
            "delivery_event",
            message_id = %message.id,
            transport = %transport,
            event = event.kind.as_str(),
            bounce = event.bounce.map(Bounce::as_str),
        );
        crate::telemetry::handoff::join_stored(&span, message.traceparent.as_deref());
        if keep(&state, &message, &event).instrument(span).await? {
            received.stored += 1;
        } else {
            received.repeated += 1;
        }
    }
    Ok(Json(received))
}

/// The answer to events not taken: 401 unverified, 400 unreadable, and
/// what the provider retries (5xx) when it may succeed later.
fn refusal(refused: Refused) -> ApiError {
    match refused {
        Refused::Unverified(why) => ApiError::unauthorized(format!(
            "the events could not be verified as the provider's: {why}"
        )),
        Refused::Unreadable(why) => ApiError::bad_request(why.0),
        Refused::Unconfirmed(why) => ApiError::bad_gateway(why),
        Refused::Busy(why) => ApiError::unavailable(why),
    }
}

/// Acts on a matched event (suppression, Keycloak feedback, webhook), then
/// stores it; false when it was stored before. In that order, because the
/// provider's next delivery of an event that was not stored is taken again:
/// a failure (or a stop) before the event is stored repeats what was done
/// (each harmless twice), where storing it first lost the rest for good.
async fn keep(
    state: &AppState,
    message: &MessageRecord,
    event: &DeliveryEvent,
) -> Result<bool, StoreError> {
    if stored_before(state.store.as_ref(), event).await? {
        return Ok(false);
    }
    suppress_after(state, &message.tenant, event).await?;
    tell_application(state, &message.tenant, event).await?;
    if !state.store.add_event(event).await? {
        // The same event, delivered twice at once: the other one stored it.
        return Ok(false);
    }
    let (id, transport, kind) = (message.id, &event.transport, event.kind.as_str());
    state.metrics.delivery_event(transport, kind);
    tracing::info!(message_id = %id, %transport, event = kind, "delivery event");
    Ok(true)
}

/// Whether the provider's event `event` (by its id) is stored already.
async fn stored_before(store: &dyn JobStore, event: &DeliveryEvent) -> Result<bool, StoreError> {
    let Some(provider_id) = &event.provider_event_id else {
        return Ok(false);
    };
    let provider_id = crate::queue::storable_id(provider_id);
    let stored = store.events(event.message_id).await?;
    Ok(stored.iter().any(|e| {
        e.transport == event.transport && e.provider_event_id.as_deref() == Some(&provider_id)
    }))
}

/// The message an event is about: by our id, our `Message-ID`, or the
/// provider's id, whichever names a message we have.
async fn find_message(
    store: &dyn JobStore,
    event: &ProviderEvent,
) -> Result<Option<MessageRecord>, StoreError> {
    for id in [event.message.ours, event.message.id_from_header()]
        .into_iter()
        .flatten()
    {
        if let Some(record) = store.get(id).await? {
            return Ok(Some(record));
        }
    }
    match &event.message.provider {
        Some(provider_id) => match store.find_by_provider_id(provider_id).await? {
            Some(id) => store.get(id).await,
            None => Ok(None),
        },
        None => Ok(None),
    }
}

/// Whether `event` names no recipient, or one of `message`'s. A report
/// about a message speaks for the addresses it was sent to only: whoever
/// received one of a tenant's emails can send a bounce (with its
/// `Message-ID`, or to its VERP address) naming anyone else, and that
/// address must not be suppressed or flagged in Keycloak for it.
async fn sent_to(
    store: &dyn JobStore,
    message: uuid::Uuid,
    event: &ProviderEvent,
) -> Result<bool, StoreError> {
    let Some(recipient) = &event.recipient else {
        return Ok(true);
    };
    let recipient = address_key(recipient);
    let recipients = store.recipients(message).await?;
    Ok(recipients.iter().any(|r| address_key(r) == recipient))
}

/// Queues the event's webhook (`message.delivered`, `message.bounced`,
/// `message.complained`) for the tenant, if it has a `webhook_url`.
async fn tell_application(
    state: &AppState,
    tenant: &str,
    event: &DeliveryEvent,
) -> Result<(), StoreError> {
    let kind = match event.kind {
        EventType::Delivered => WebhookType::Delivered,
        EventType::Bounced => WebhookType::Bounced,
        EventType::Complained => WebhookType::Complained,
        EventType::Deferred => return Ok(()),
    };
    let data = serde_json::to_value(event).unwrap_or_default();
    let store = state.store.as_ref();
    if state
        .webhooks
        .queue(store, tenant, kind, event.message_id, data)
        .await?
    {
        state.worker.notifier().due(Lane::Notices);
    }
    Ok(())
}

/// After a hard bounce or a complaint: tells the tenant's Keycloak (if it has
/// one), and puts the recipient on the tenant's suppression list if its
/// `suppress` setting says so.
async fn suppress_after(
    state: &AppState,
    tenant: &str,
    event: &DeliveryEvent,
) -> Result<(), StoreError> {
    let (reason, status) = match (event.kind, event.bounce) {
        (EventType::Bounced, Some(Bounce::Hard)) => (Reason::Bounce, "bounced"),
        (EventType::Complained, _) => (Reason::Complaint, "complained"),
        _ => return Ok(()),
    };
    let Some(recipient) = &event.recipient else {
        return Ok(());
    };
    // The bare address, its domain as the user's account is likely to have
    // it (Unicode), whatever the provider's spelling.
    let mailbox = &mailbox_of(recipient);
    let store = state.store.as_ref();
    if state
        .feedback
        .queue(store, tenant, mailbox, status, event.message_id)
        .await?
    {
        state.worker.notifier().due(Lane::Notices);
    }
    if !state.tenants.route(tenant).suppress.covers(reason) {
        return Ok(());
    }
    let entry = Suppression {
        tenant: tenant.to_owned(),
        // Every case spelling of it: the provider's may not be the message's.
        email: normalise(recipient),
        reason,
        detail: event.detail.clone(),
        message_id: Some(event.message_id),
        created_at: event.received_at,
    };
    if state.store.suppress(&entry).await? {
        tracing::info!(message_id = %event.message_id, %tenant, reason = reason.as_str(), "address suppressed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_may_succeed_later_is_answered_so_that_the_provider_retries() {
        let busy = refusal(Refused::Busy("try again shortly".into()));
        assert_eq!(busy.status.as_u16(), 503);
        assert!(busy.retry_after.is_some());
        let unconfirmed = refusal(Refused::Unconfirmed("SNS answered 500".into()));
        assert_eq!(unconfirmed.status.as_u16(), 502);
        let unverified = refusal(Refused::Unverified(crate::events::Unverified::new("no")));
        assert_eq!(unverified.status.as_u16(), 401);
    }
}
