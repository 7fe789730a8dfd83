//! `/healthz` (the process runs) and `/readyz` (the store answers and we accept).

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;

/// How long `/readyz` waits for the store.
const PING_BOUND: std::time::Duration = std::time::Duration::from_secs(2);
use super::error::ApiError;

/// `GET /healthz`: 200 while the process runs.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the store answers and commits, and the delivery
/// worker runs; 503 otherwise or while shutting down.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !state.accepting.load(Ordering::SeqCst) {
        return Err(ApiError::unavailable("shutting down"));
    }
    if !state.worker.is_running() {
        tracing::warn!("readiness check: the delivery worker has stopped");
        return Err(ApiError::unavailable("the delivery worker has stopped"));
    }
    // Bounded: probes expect an answer within a second or two, not the
    // store's own connection timeout.
    match tokio::time::timeout(PING_BOUND, state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: the store does not answer");
            return Err(ApiError::unavailable(
                "the queue store does not answer or cannot commit",
            ));
        }
        Err(_) => {
            tracing::warn!("readiness check: the store did not answer in time");
            return Err(ApiError::unavailable(
                "the queue store did not answer in time",
            ));
        }
    }
    Ok(Json(json!({"status": "ready"})))
}
