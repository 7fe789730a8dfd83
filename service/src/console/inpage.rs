//! The studio's renderer in the page: the same WebAssembly module the
//! Keycloak extension runs, given the service's own template sources, renders
//! every edit in the browser without asking the server.
//!
//! The rendered email goes into a sandboxed frame through a small shell page
//! (`/console/templates/frame`) with a policy of its own: the email's inline
//! styles apply there, while the console's pages keep allowing no inline style
//! (a `srcdoc` frame would inherit the console's policy and lose them).

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Json, Response};
use serde::Deserialize;

use super::Visit;
use super::view::{not_found, render_module};
use crate::api::AppState;

/// The policy of the preview shell: its one script from the console, the
/// email's inline styles and embedded images, nothing fetched, framed only
/// by the console, in a sandbox (an origin of its own).
const FRAME_POLICY: &str = "sandbox allow-scripts; default-src 'none'; script-src 'self'; \
     style-src 'unsafe-inline'; img-src data:; font-src data:; frame-ancestors 'self'";

/// The preview shell: it shows what the studio posts to it.
const FRAME_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
     <title>Preview</title><script src=\"/console/assets/frame.js\"></script></head><body></body></html>";

/// Which renderer the studio uses, as the page names it.
pub fn renderer_name() -> &'static str {
    if render_module().is_some() {
        "webassembly"
    } else {
        "service"
    }
}

/// The tenant whose sources are asked for.
#[derive(Debug, Deserialize)]
pub struct SourcesQuery {
    /// The tenant; its overrides come with the shipped templates.
    #[serde(default)]
    tenant: String,
}

/// `GET /console/templates/sources?tenant=`: the template sources as
/// `{path: source}`, as the WebAssembly renderer loads them: the shipped ones
/// and that tenant's overrides, never another tenant's (a tenant's viewer
/// gets only their own tenant, an admin any).
pub async fn sources(
    visit: Visit,
    State(state): State<AppState>,
    Query(query): Query<SourcesQuery>,
) -> Response {
    if query.tenant.is_empty() || !visit.viewer().can_see(&query.tenant) {
        return visit.answer(not_found());
    }
    let own = format!("tenants/{}/", query.tenant);
    let files: serde_json::Map<String, serde_json::Value> = state
        .renderer
        .sources()
        .iter()
        .filter(|(path, _)| !path.starts_with("tenants/") || path.starts_with(&own))
        .map(|(path, source)| (path.to_owned(), source.into()))
        .collect();
    visit.answer(Json(files))
}

/// `GET /console/templates/frame`: the preview shell. It holds nothing of
/// anyone's and needs no session (a sandboxed frame may not send the cookie).
pub async fn frame(State(state): State<AppState>) -> Response {
    if state.console.is_none() {
        return not_found();
    }
    let mut response = Html(FRAME_PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FRAME_POLICY),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    response
}
