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

/// How long a scrape waits for the queue figures: Prometheus' own scrape
/// timeout is 10 s by default.
const STATS_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: reads the queue gauges from the store, then answers every metric.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    // A store that does not answer leaves the gauges at their last values:
    // the counters still tell what happened, and `/readyz` tells the rest.
    // So does a scrape while another reads them, or within a second of it.
    if let Some(_read) = state.metrics.queue_read_due() {
        match tokio::time::timeout(STATS_BOUND, state.store.stats()).await {
            Ok(Ok(stats)) => state
                .metrics
                .observe_queue(&stats, OffsetDateTime::now_utc()),
            Ok(Err(error)) => tracing::warn!(%error, "metrics: cannot read the queue figures"),
            Err(_) => tracing::warn!("metrics: the queue figures did not come in time"),
        }
    }
    let text = state.metrics.encode().map_err(|e| ApiError::internal(&e))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
