//! `POST /v1/events/{transport}`: a provider's delivery events, verified with
//! that provider's own scheme and the transport's `webhook_key`, matched to
//! our messages and stored. No bearer token: the provider's signature (or
//! basic auth) is the authentication.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use crate::events::source::{Delivered, Refused};
use crate::events::{DeliveryEvent, ProviderEvent};
use crate::queue::JobStore;

/// The answer to `POST /v1/events/{transport}`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Received {
    /// Events stored (matched to one of our messages, not seen before).
    pub stored: u32,
    /// Events about messages we do not know (sent by something else): dropped.
    pub unmatched: u32,
    /// Events stored before (a provider's repeated delivery): dropped.
    pub repeated: u32,
}

/// `POST /v1/events/{transport}`.
pub async fn receive(
    State(state): State<AppState>,
    Path(transport): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Received>, ApiError> {
    let Some(source) = state.event_sources.get(&transport) else {
        return Err(ApiError::not_found(format!(
            "transport `{transport}` takes no events (it is unknown or has no webhook_key)"
        )));
    };
    let body = body.map_err(|e| ApiError::new(e.status(), "the body could not be read"))?;
    let now = OffsetDateTime::now_utc();
    let delivered = source
        .receive(&headers, &body, now)
        .await
        .map_err(|refused| {
            tracing::warn!(%transport, reason = %refused, "delivery events refused");
            match refused {
                Refused::Unverified(why) => ApiError::unauthorized(format!(
                    "the events could not be verified as the provider's: {why}"
                )),
                Refused::Unreadable(why) => ApiError::bad_request(why.0),
                Refused::Unconfirmed(why) => ApiError::bad_gateway(why),
            }
        })?;
    let mut received = Received {
        stored: 0,
        unmatched: 0,
        repeated: 0,
    };
    let Delivered::Events(events) = delivered else {
        return Ok(Json(received));
    };
    for event in events {
        let Some(id) = find_message(state.store.as_ref(), &event).await? else {
            received.unmatched += 1;
            continue;
        };
        let event = DeliveryEvent::matched(event, id, &transport, now);
        if state.store.add_event(&event).await? {
            received.stored += 1;
            state
                .metrics
                .delivery_event(&transport, event.kind.as_str());
            tracing::info!(message_id = %id, %transport, event = event.kind.as_str(), "delivery event");
        } else {
            received.repeated += 1;
        }
    }
    Ok(Json(received))
}

/// The message an event is about: by our id, our `Message-ID`, or the
/// provider's id, whichever names a message we have.
async fn find_message(
    store: &dyn JobStore,
    event: &ProviderEvent,
) -> Result<Option<Uuid>, crate::queue::StoreError> {
    for id in [event.message.ours, event.message.id_from_header()]
        .into_iter()
        .flatten()
    {
        if store.get(id).await?.is_some() {
            return Ok(Some(id));
        }
    }
    match &event.message.provider {
        Some(provider_id) => store.find_by_provider_id(provider_id).await,
        None => Ok(None),
    }
}
