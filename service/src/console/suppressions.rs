//! `/console/suppressions`: the addresses each tenant no longer sends to.
//! Viewers see the lists of the tenants their roles give; admins add an
//! address (reason `manual`) or take one off, with the session's CSRF token,
//! exactly as `PUT`/`DELETE /v1/suppressions/{tenant}/{email}` do.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Visit;
use super::pages::{stamp, store_down};
use super::session::same_token;
use super::view::{error_page, not_found};
use crate::api::AppState;
use crate::api::request::check_tenant_name;
use crate::email::{InvalidField, Mailbox};
use crate::queue::StoreError;
use crate::suppression::{Reason, Suppression, normalise};

/// Entries the page shows at most (per tenant for a tenant viewer).
pub const PAGE_LIMIT: u32 = 500;

/// `?tenant=`: one tenant's list.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    tenant: String,
}

/// An entry as the page shows it.
#[derive(Debug, Serialize)]
struct Row {
    tenant: String,
    email: String,
    reason: &'static str,
    detail: Option<String>,
    message_id: Option<String>,
    since: String,
}

fn shown(s: Suppression) -> Row {
    Row {
        tenant: s.tenant,
        email: s.email,
        reason: s.reason.as_str(),
        detail: s.detail,
        message_id: s.message_id.map(|id| id.to_string()),
        since: stamp(s.created_at),
    }
}

/// The entries of `tenant` (empty: every tenant the viewer may see), newest first.
async fn entries(
    state: &AppState,
    visit: &Visit,
    tenant: &str,
) -> Option<Result<Vec<Suppression>, StoreError>> {
    let viewer = visit.viewer();
    let tenants = if !tenant.is_empty() {
        // A name no tenant can have (NUL, `/`, …) is no tenant's list.
        if !viewer.can_see(tenant) || crate::api::request::check_tenant_name(tenant).is_err() {
            return None;
        }
        vec![Some(tenant.to_owned())]
    } else if viewer.admin {
        vec![None]
    } else {
        viewer.tenants.iter().cloned().map(Some).collect()
    };
    let mut all = Vec::new();
    for tenant in &tenants {
        match state
            .store
            .suppressions(tenant.as_deref(), PAGE_LIMIT)
            .await
        {
            Ok(list) => all.extend(list),
            Err(e) => return Some(Err(e)),
        }
    }
    all.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    Some(Ok(all))
}

/// `GET /console/suppressions`: the list; another tenant's answers 404.
pub async fn page(
    visit: Visit,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Response {
    let tenant = query.tenant.trim();
    let list = match entries(&state, &visit, tenant).await {
        None => return visit.answer(not_found()),
        Some(Err(e)) => return store_down(&e),
        Some(Ok(list)) => list,
    };
    let context = minijinja::context! {
        viewer => visit.viewer().name.clone(),
        admin => visit.viewer().admin,
        page => "suppressions",
        tenant => tenant,
        rows => Serde(list.into_iter().map(shown).collect::<Vec<_>>()),
        csrf => visit.session.csrf.clone(),
    };
    visit.answer(visit.console.view.render("suppressions.html", context))
}

/// The fields of the add and remove forms.
#[derive(Debug, Deserialize)]
pub struct EntryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    email: String,
    add: Option<String>,
    remove: Option<String>,
}

/// The tenant and the normalised address of a form, checked as the API checks them.
fn checked(form: &EntryForm) -> Result<(String, String), InvalidField> {
    let tenant = form.tenant.trim();
    check_tenant_name(tenant)?;
    let email = form.email.trim();
    Mailbox::new(email).validate("email")?;
    Ok((tenant.to_owned(), normalise(email)))
}

/// `POST /console/suppressions`: `add` or `remove` one address (admins only).
pub async fn act(
    visit: Visit,
    State(state): State<AppState>,
    Form(form): Form<EntryForm>,
) -> Response {
    if !same_token(&form.csrf, &visit.session.csrf) {
        return visit.answer(error_page(
            StatusCode::FORBIDDEN,
            "This form has expired; reload the page and try again.",
        ));
    }
    if !visit.viewer().admin {
        return visit.answer(error_page(
            StatusCode::FORBIDDEN,
            "Only administrators may change the suppression list.",
        ));
    }
    let (tenant, email) = match checked(&form) {
        Ok(entry) => entry,
        Err(e) => return visit.answer(error_page(StatusCode::BAD_REQUEST, &e.to_string())),
    };
    let done = if form.add.is_some() {
        let entry = Suppression {
            tenant: tenant.clone(),
            email,
            reason: Reason::Manual,
            detail: None,
            message_id: None,
            created_at: OffsetDateTime::now_utc(),
        };
        state.store.suppress(&entry).await.map(|_| "added")
    } else if form.remove.is_some() {
        state
            .store
            .unsuppress(&tenant, &email)
            .await
            .map(|removed| if removed { "removed" } else { "not listed" })
    } else {
        return visit.answer(error_page(StatusCode::BAD_REQUEST, "No action was chosen."));
    };
    match done {
        Ok(action) => {
            tracing::info!(%tenant, action, "console: the suppression list was changed by an admin");
            let back = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("tenant", &tenant)
                .finish();
            visit.answer(Redirect::to(&format!("/console/suppressions?{back}")))
        }
        Err(e) => store_down(&e),
    }
}
