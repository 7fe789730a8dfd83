//! The flow limits of `POST /v1/messages` (see [`crate::limits`]): a
//! message beyond its tenant's `recipient_rate` or `template_rates` is
//! refused with 429 and `Retry-After`; nothing is stored. The check and the
//! spend happen in the commit that would store the message.

use super::AppState;
use super::error::ApiError;
use super::request::MessageRequest;
use crate::limits::{Limit, LimitCell};

/// The flow-limit cells the request must pass, to be checked and spent in
/// the commit that stores it ([`crate::queue::NewJob::limits`]). A repeat
/// of an idempotency key is the same message, not a new one: the store
/// answers it as the first one was (200), never limited.
pub fn cells(state: &AppState, tenant: &str, req: &MessageRequest) -> Vec<LimitCell> {
    let route = state.tenants.route(tenant);
    let recipients = [&req.to, &req.cc, &req.bcc]
        .into_iter()
        .flatten()
        .map(|m| m.email.as_str());
    route
        .limits
        .cells(tenant, req.template.as_deref(), recipients)
}

/// The answer to a message the store refused by its flow limit `limit`
/// (`wait`: until it would pass), of kind `template`.
pub fn refused(
    state: &AppState,
    tenant: &str,
    template: Option<&str>,
    limit: Limit,
    wait: std::time::Duration,
) -> ApiError {
    let limit = limit.as_str();
    state.metrics.limited(tenant, limit);
    crate::telemetry::request::record_outcome("limited");
    tracing::info!(%tenant, limit, wait_ms = wait.as_millis() as u64, "message refused by a flow limit");
    // Whole seconds, rounded up: a client waiting that long is let through.
    let retry_after = std::time::Duration::from_secs(wait.as_millis().div_ceil(1000).max(1) as u64);
    let what = match limit {
        "template" => format!(
            "too many `{}` emails to this address (tenant `{tenant}`'s template_rates)",
            template.unwrap_or_default()
        ),
        _ => format!("too many emails to this address (tenant `{tenant}`'s recipient_rate)"),
    };
    ApiError::too_many(
        format!("{what}; try again in {} s", retry_after.as_secs()),
        retry_after,
    )
}
