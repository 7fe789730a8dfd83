//! Admin endpoints (scope `mailbridge:admin`): list messages, retry a failed one.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::messages::Accepted;
use crate::auth::Caller;
use crate::queue::{ListFilter, MessageRecord, Status};

/// Largest page of `GET /v1/messages`.
const MAX_PAGE: u32 = 500;

/// Query of `GET /v1/messages`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Page size (default 100, at most 500).
    pub limit: Option<u32>,
    /// Only messages older than this id (the previous page's `next`).
    pub before: Option<Uuid>,
}

/// A page of status rows.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = MessagePage)]
pub struct Page {
    /// The rows, newest first.
    pub messages: Vec<MessageRecord>,
    /// The `before` of the next page, if there may be one.
    pub next: Option<Uuid>,
}

/// `GET /v1/messages?status=failed&tenant=…`
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    caller.require_admin()?;
    let Query(query) = query?;
    let status = match query.status.as_deref() {
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown status `{}` (queued, sending, sent, retrying, failed)",
                super::error::excerpt(s)
            ))
        })?),
        None => None,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let filter = ListFilter {
        status,
        tenant: query.tenant,
        limit,
        before: query.before,
    };
    let messages = state.store.list(&filter).await?;
    let next = (messages.len() == limit as usize)
        .then(|| messages.last().map(|m| m.id))
        .flatten();
    Ok(Json(Page { messages, next }))
}

/// `DELETE /v1/messages/{id}`: removes a `failed` or `sent` message.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
) -> Result<axum::http::StatusCode, ApiError> {
    caller.require_admin()?;
    let Path(id) = path.map_err(|_| ApiError::not_found("no such message (ids are UUIDs)"))?;
    let Some(record) = state.store.get(id).await? else {
        return Err(ApiError::not_found(format!("no message {id}")));
    };
    if !state.store.delete(id).await? {
        return Err(ApiError::conflict(format!(
            "message {id} is {}, only sent or failed messages can be deleted",
            record.status.as_str()
        )));
    }
    tracing::info!(message_id = %id, tenant = %record.tenant, "message deleted by an admin");
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `POST /v1/messages/{id}/retry`: a `failed` message back to `queued`.
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Accepted>, ApiError> {
    caller.require_admin()?;
    let Path(id) = path.map_err(|_| ApiError::not_found("no such message (ids are UUIDs)"))?;
    let Some(record) = state.store.get(id).await? else {
        return Err(ApiError::not_found(format!("no message {id}")));
    };
    if !state
        .store
        .requeue_failed(id, OffsetDateTime::now_utc())
        .await?
    {
        return Err(ApiError::conflict(format!(
            "message {id} is {}, only failed messages can be retried",
            record.status.as_str()
        )));
    }
    tracing::info!(message_id = %id, tenant = %record.tenant, "failed message queued again by an admin");
    state.worker.notifier().any();
    Ok(Json(Accepted::new(id, Status::Queued)))
}
