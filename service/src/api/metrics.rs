//! `GET /metrics`: the service's metrics in the Prometheus text format.
//!
//! Open like `/healthz`: Prometheus scrapes without a token. The labels name
//! tenants (realms) and transports, never addresses; restrict the path at the
//! network if realm names are private.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use super::AppState;
use super::error::ApiError;

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: reads the queue gauges from the store, then answers every metric.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    // A store that does not answer leaves the gauges at their last values:
    // the counters still tell what happened, and `/readyz` tells the rest.
    match state.store.stats().await {
        Ok(stats) => state
            .metrics
            .observe_queue(&stats, OffsetDateTime::now_utc()),
        Err(error) => tracing::warn!(%error, "metrics: cannot read the queue figures"),
    }
    let text = state.metrics.encode().map_err(|e| ApiError::internal(&e))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
