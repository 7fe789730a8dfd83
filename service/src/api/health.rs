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

/// `GET /readyz`: 200 when the store answers, 503 otherwise or while shutting down.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !state.accepting.load(Ordering::SeqCst) {
        return Err(ApiError::unavailable("shutting down"));
    }
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check: the store does not answer");
        ApiError::unavailable("the queue store does not answer")
    })?;
    Ok(Json(json!({"status": "ready"})))
}
