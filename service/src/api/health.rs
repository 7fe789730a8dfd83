//! `/healthz` (the process runs) and `/readyz` (the store answers and we accept).

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
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
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check: the store does not answer");
        ApiError::unavailable("the queue store does not answer or cannot commit")
    })?;
    Ok(Json(json!({"status": "ready"})))
}
