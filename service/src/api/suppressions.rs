//! The suppression list: `GET /v1/suppressions`, `PUT` and `DELETE
//! /v1/suppressions/{tenant}/{email}` (admin), and what `POST /v1/messages`
//! does with suppressed recipients: leaves them out, or, when no `to`
//! recipient is left, keeps the message as `suppressed` and sends nothing.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::AppState;
use super::error::ApiError;
use super::messages::{Accepted, ApiQuery};
use super::request::{MessageRequest, check_tenant_name};
use crate::auth::Caller;
use crate::email::Mailbox;
use crate::queue::{JobStore, Lane, Lease, Outcome, Status};
use crate::suppression::{Reason, Suppression, normalise};
use crate::webhooks::WebhookType;

pub use crate::suppression::LeftOut;

/// Finds the request's suppressed recipients and, unless that is every `to`
/// recipient, takes them out of `to`, `cc` and `bcc`.
pub async fn leave_out(
    store: &dyn JobStore,
    tenant: &str,
    req: &mut MessageRequest,
) -> Result<LeftOut, ApiError> {
    let lists = [&mut req.to, &mut req.cc, &mut req.bcc];
    Ok(crate::suppression::screen(store, tenant, lists).await?)
}

/// Settles a message stored claimed under `lease` as `suppressed`; answers 202.
pub async fn settle(
    state: &AppState,
    tenant: &str,
    lease: &Lease,
    addresses: Vec<String>,
) -> Result<Response, ApiError> {
    let outcome = Outcome::Suppressed {
        reason: "not sent: every recipient is on the tenant's suppression list".into(),
    };
    // The message is stored from here on: whatever fails now, the answer is
    // 202, never the 503 that tells a caller (Keycloak's extension) that
    // nothing was stored and it may send the email some other way.
    let data = serde_json::json!({"suppressed_recipients": &addresses});
    let notice = (state.webhooks).notice(tenant, WebhookType::Suppressed, lease.id, data);
    let settled = state
        .store
        .record_with(lease, &outcome, OffsetDateTime::now_utc(), notice.as_ref())
        .await;
    state.metrics.suppressed(tenant);
    match settled {
        Ok(_) => {
            if notice.is_some() {
                state.worker.notifier().due(Lane::Notices);
            }
        }
        // Its lease runs out, and the worker finds the same recipients
        // suppressed: it records the outcome and queues the webhook then.
        Err(e) => tracing::warn!(
            message_id = %lease.id,
            error = %e,
            "could not record the message as suppressed yet; the worker will once its lease ends"
        ),
    }
    crate::telemetry::request::record_message(lease.id);
    crate::telemetry::request::record_outcome("suppressed");
    tracing::info!(message_id = %lease.id, %tenant, "every recipient is suppressed; not sent");
    let answer = Accepted {
        suppressed_recipients: addresses,
        ..Accepted::new(lease.id, Status::Suppressed)
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// Query of `GET /v1/suppressions`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// A page of the suppression list.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuppressionList {
    /// Newest first.
    pub suppressions: Vec<Suppression>,
}

/// `GET /v1/suppressions?tenant=`: the list, newest first (admin).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<SuppressionList>, ApiError> {
    caller.require_admin()?;
    if let Some(tenant) = &query.tenant {
        check_tenant_name(tenant)?;
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let suppressions = state
        .store
        .suppressions(query.tenant.as_deref(), limit)
        .await?;
    Ok(Json(SuppressionList { suppressions }))
}

/// The tenant and address of a path, checked; the address normalised.
fn entry(
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<(String, String), ApiError> {
    let Path((tenant, email)) = path?;
    check_tenant_name(&tenant)?;
    Mailbox::new(email.clone()).validate("email")?;
    Ok((tenant, normalise(&email)))
}

/// `PUT /v1/suppressions/{tenant}/{email}`: adds an address (admin); 201, or 200 if listed already.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let (tenant, email) = entry(path)?;
    let suppression = Suppression {
        tenant,
        email,
        reason: Reason::Manual,
        detail: None,
        message_id: None,
        created_at: OffsetDateTime::now_utc(),
    };
    let created = state.store.suppress(&suppression).await?;
    tracing::info!(tenant = %suppression.tenant, created, "address suppressed by an admin");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(suppression)).into_response())
}

/// `DELETE /v1/suppressions/{tenant}/{email}`: takes an address off (admin); 204, or 404.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let (tenant, email) = entry(path)?;
    if !state.store.unsuppress(&tenant, &email).await? {
        return Err(ApiError::not_found(format!(
            "that address is not on tenant `{tenant}`'s suppression list"
        )));
    }
    tracing::info!(%tenant, "address taken off the suppression list by an admin");
    Ok(StatusCode::NO_CONTENT)
}
