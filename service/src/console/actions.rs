//! What admins may do: retry a failed message, delete a finished one, retry
//! every failed message a filter matches. Every form carries the session's
//! CSRF token; a post without it, or from a viewer without role `admin`, is
//! refused and changes nothing.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Visit;
use super::pages::{Filter, store_down};
use super::session::same_token;
use super::view::{error_page, not_found};
use crate::api::AppState;
use crate::queue::Status;

/// Failed messages one bulk retry queues again at most.
pub const BULK_LIMIT: u32 = 1000;

/// The refusal of a post whose token is not the session's, or whose viewer is not an admin.
fn refusal(visit: &Visit, csrf: &str) -> Option<Response> {
    if !same_token(csrf, &visit.session.csrf) {
        return Some(visit.answer(error_page(
            StatusCode::FORBIDDEN,
            "This form has expired; reload the page and try again.",
        )));
    }
    if !visit.viewer().admin {
        return Some(visit.answer(error_page(
            StatusCode::FORBIDDEN,
            "Only administrators may retry or delete messages.",
        )));
    }
    None
}

/// The fields of a message's form: the token and the button pressed.
#[derive(Debug, Deserialize)]
pub struct MessageForm {
    #[serde(default)]
    csrf: String,
    retry: Option<String>,
    delete: Option<String>,
}

/// `POST /console/messages/{id}`: `retry` or `delete`.
pub async fn act(
    visit: Visit,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<MessageForm>,
) -> Response {
    if let Some(refused) = refusal(&visit, &form.csrf) {
        return refused;
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return visit.answer(not_found());
    };
    let record = match state.store.get(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return visit.answer(not_found()),
        Err(e) => return store_down(&e),
    };
    let now = OffsetDateTime::now_utc();
    let (done, back) = if form.retry.is_some() {
        (
            state.store.requeue_failed(id, now).await,
            format!("/console/messages/{id}"),
        )
    } else if form.delete.is_some() {
        (state.store.delete(id).await, "/console/messages".to_owned())
    } else {
        return visit.answer(error_page(StatusCode::BAD_REQUEST, "No action was chosen."));
    };
    match done {
        Ok(true) => {
            let action = if form.retry.is_some() {
                "queued again"
            } else {
                "deleted"
            };
            tracing::info!(message_id = %id, tenant = %record.tenant, action, "console: a message was {action} by an admin");
            state.worker.notifier().any();
            visit.answer(Redirect::to(&back))
        }
        Ok(false) => visit.answer(error_page(
            StatusCode::CONFLICT,
            &format!(
                "The message is {}: nothing was changed.",
                record.status.as_str()
            ),
        )),
        Err(e) => store_down(&e),
    }
}

/// The fields of the bulk retry form: the list's filter and the token.
#[derive(Debug, Deserialize)]
pub struct BulkForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    filter: Filter,
}

/// `POST /console/messages/retry`: every failed message the filter matches
/// (up to [`BULK_LIMIT`]) back to `queued`.
pub async fn bulk_retry(
    visit: Visit,
    State(state): State<AppState>,
    Form(form): Form<BulkForm>,
) -> Response {
    if let Some(refused) = refusal(&visit, &form.csrf) {
        return refused;
    }
    let mut filter = form.filter;
    filter.status = Status::Failed.as_str().to_owned();
    filter.before.clear();
    let Some(search) = filter.search(&visit, BULK_LIMIT) else {
        return visit.answer(not_found());
    };
    let failed = match state.store.search(&search).await {
        Ok(r) => r,
        Err(e) => return store_down(&e),
    };
    let now = OffsetDateTime::now_utc();
    let mut queued = 0u32;
    for record in &failed {
        match state.store.requeue_failed(record.id, now).await {
            Ok(true) => queued += 1,
            Ok(false) => {}
            Err(e) => return store_down(&e),
        }
    }
    tracing::info!(
        count = queued,
        "console: failed messages queued again by an admin"
    );
    state.worker.notifier().any();
    let query = filter_query(&filter);
    visit.answer(Redirect::to(&format!("/console/messages?{query}")))
}

/// The filter as a query string, without its status: the retried messages are `queued` now.
fn filter_query(filter: &Filter) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("tenant", &filter.tenant)
        .append_pair("to", &filter.to)
        .append_pair("since", &filter.since)
        .append_pair("until", &filter.until)
        .finish()
}
