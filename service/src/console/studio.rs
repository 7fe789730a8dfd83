//! The template studio: a template, a tenant, a language and editable sample
//! data, rendered into a sandboxed frame, with the subject and the text
//! version beside it: in the page by the WebAssembly renderer when the binary
//! carries it (see [`super::inpage`]), else by the service's own renderer
//! (the path `POST /v1/render` takes, through the routes below). The rendered email may carry its own inline styles, so its
//! frame gets a policy of its own: no script, nothing fetched, only framed
//! by the console.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};

use super::Visit;
use super::session::same_token;
use super::transports::TestResult;
use super::view::{error_page, not_found};
use crate::api::AppState;
use crate::api::compose::{Content, render_content};
use crate::api::request::MessageRequest;

/// The policy of a rendered email in the preview frame.
const PREVIEW_POLICY: &str = "sandbox; default-src 'none'; style-src 'unsafe-inline'; \
     img-src data:; font-src data:; frame-ancestors 'self'";

/// What the studio shows: a template in a tenant's version and a language.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Choice {
    /// The tenant whose overrides apply.
    #[serde(default)]
    pub tenant: String,
    /// The template name.
    #[serde(default)]
    pub template: String,
    /// The language.
    #[serde(default)]
    pub locale: String,
}

/// The tenants `visit` may choose: every configured one for an admin, else their own.
fn tenants(visit: &Visit, state: &AppState) -> Vec<String> {
    let viewer = visit.viewer();
    if viewer.admin {
        let mut names = state.tenants.names();
        names.push("default".to_owned());
        names.extend(viewer.tenants.iter().cloned());
        names.sort();
        names.dedup();
        names
    } else {
        viewer.tenants.iter().cloned().collect()
    }
}

/// `GET /console/templates`: the studio.
pub async fn page(
    visit: Visit,
    State(state): State<AppState>,
    Query(choice): Query<Choice>,
) -> Response {
    show(&visit, &state, choice, None, None).await
}

/// The studio for `choice`, with `data` (else the template's sample data)
/// and the result of a test send, if one was made.
pub async fn show(
    visit: &Visit,
    state: &AppState,
    mut choice: Choice,
    data: Option<String>,
    result: Option<TestResult>,
) -> Response {
    let mut tenants = tenants(visit, state);
    let templates = state.renderer.template_names();
    let locales = state.renderer.locales();
    let first = |list: &[String]| list.first().cloned().unwrap_or_default();
    if choice.tenant.is_empty() {
        choice.tenant = first(&tenants);
    } else if !visit.viewer().can_see(&choice.tenant) {
        return visit.answer(not_found());
    } else if !tenants.contains(&choice.tenant) {
        // A tenant known only from its messages (a realm without settings).
        tenants.push(choice.tenant.clone());
        tenants.sort();
    }
    if !templates.contains(&choice.template) {
        choice.template = first(&templates);
    }
    if !locales.contains(&choice.locale) {
        choice.locale = if locales.iter().any(|l| l == "en") {
            "en".into()
        } else {
            first(&locales)
        };
    }
    let data = data.unwrap_or_else(|| {
        state
            .renderer
            .sample_data(&choice.template)
            .and_then(|d| serde_json::to_string_pretty(&d).ok())
            .unwrap_or_else(|| "{}".to_owned())
    });
    let missing = super::studio_missing::missing(state, &choice, &data).await;
    let context = minijinja::context! {
        viewer => visit.viewer().name.clone(),
        page => "templates",
        tenants, templates, locales,
        choice => Serde(choice),
        data,
        renderer => super::inpage::renderer_name(),
        admin => visit.viewer().admin,
        result => Serde(result),
        missing => Serde(missing),
        csrf => visit.session.csrf.clone(),
    };
    let mut response = visit.console.view.render("templates.html", context);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        visit.console.studio_policy.clone(),
    );
    visit.answer(response)
}

/// The studio's form: the choice, the data as JSON text, the token.
#[derive(Debug, Deserialize)]
pub struct RenderForm {
    #[serde(default)]
    pub(super) csrf: String,
    #[serde(flatten)]
    pub(super) choice: Choice,
    #[serde(default)]
    pub(super) data: String,
}

/// Renders the form's choice; the refusal as a page when it cannot.
pub(super) async fn render(
    visit: &Visit,
    state: &AppState,
    form: &RenderForm,
) -> Result<Content, Response> {
    if !same_token(&form.csrf, &visit.session.csrf) {
        return Err(visit.answer(error_page(
            StatusCode::FORBIDDEN,
            "This form has expired; reload the page and try again.",
        )));
    }
    let choice = &form.choice;
    if !visit.viewer().can_see(&choice.tenant)
        || crate::api::request::check_tenant_name(&choice.tenant).is_err()
    {
        return Err(visit.answer(not_found()));
    }
    let data: serde_json::Value = serde_json::from_str(&form.data).map_err(|e| {
        visit.answer(error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("The data is not JSON: {e}"),
        ))
    })?;
    let request: MessageRequest = serde_json::from_value(serde_json::json!({
        "template": choice.template, "locale": choice.locale, "data": data,
    }))
    .map_err(|e| visit.answer(error_page(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string())))?;
    render_content(state.renderer.clone(), &choice.tenant, &request)
        .await
        .map_err(|e| visit.answer(error_page(e.status, &e.detail)))
}

/// `POST /console/templates/preview`: the rendered HTML, for the preview frame.
pub async fn preview(
    visit: Visit,
    State(state): State<AppState>,
    Form(form): Form<RenderForm>,
) -> Response {
    let content = match render(&visit, &state, &form).await {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let mut response = Html(content.html.unwrap_or_default()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PREVIEW_POLICY),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    visit.answer(response)
}

/// `POST /console/templates/render`: subject, text and HTML as JSON (the text
/// view), with what the render did without (`missing`).
pub async fn rendered(
    visit: Visit,
    State(state): State<AppState>,
    Form(form): Form<RenderForm>,
) -> Response {
    let content = match render(&visit, &state, &form).await {
        Ok(content) => content,
        Err(refused) => return refused,
    };
    let missing = super::studio_missing::missing(&state, &form.choice, &form.data).await;
    visit.answer(Json(serde_json::json!({
        "subject": content.subject, "text": content.text, "html": content.html,
        "missing": missing,
    })))
}
