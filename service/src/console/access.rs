//! The sign-in, the issuer's callback and the sign-out.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::session::{cookie_named, same_token};
use super::signin::{self, Oidc, SignInError};
use super::view::{error_page, not_found};
use super::{Console, SignIn, Visit};
use crate::api::AppState;
use crate::secret::Secret;

/// The relying party, when the console signs in through OpenID Connect.
fn oidc(state: &AppState) -> Option<std::sync::Arc<Oidc>> {
    match &state.console.as_ref()?.sign_in {
        SignIn::Oidc(oidc) => Some(oidc.clone()),
        SignIn::LocalAdmin => None,
    }
}

/// A failed sign-in as a page with a way to start again; the cause is logged
/// (it names a step, never a token).
fn failed(e: &SignInError) -> Response {
    tracing::warn!(error = %e, "console sign-in failed");
    let status = match e {
        SignInError::Unreachable(_) => StatusCode::BAD_GATEWAY,
        SignInError::UnknownState | SignInError::OtherBrowser | SignInError::Refused(_) => {
            StatusCode::BAD_REQUEST
        }
    };
    error_page(
        status,
        &format!("Sign-in failed: {e}. Open the console again to retry."),
    )
}

/// `GET /console/signin`: off to the issuer, with a fresh PKCE challenge,
/// state and nonce, and the cookie that binds the sign-in to this browser.
pub async fn sign_in(State(state): State<AppState>) -> Response {
    let (Some(console), Some(oidc)) = (state.console.clone(), oidc(&state)) else {
        return not_found();
    };
    let started = match oidc.start().await {
        Ok(started) => started,
        Err(e) => return failed(&e),
    };
    let mut response = Redirect::to(&started.url).into_response();
    if let Some(cookie) = console.sign_in_cookie(&started.browser) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The issuer's answer on the redirect.
#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /console/callback`: in the browser that began the sign-in, the code
/// exchanged, the ID token checked, a session opened; the sign-in's cookie
/// is removed whatever the outcome.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(answer): Query<Callback>,
) -> Response {
    let (Some(console), Some(oidc)) = (state.console.clone(), oidc(&state)) else {
        return not_found();
    };
    let mut response = finish(&console, &oidc, &headers, answer).await;
    if let Some(removed) = console.sign_in_cookie_removed() {
        response.headers_mut().append(header::SET_COOKIE, removed);
    }
    response
}

/// The callback's answer: the console with a new session, or the error page.
async fn finish(console: &Console, oidc: &Oidc, headers: &HeaderMap, answer: Callback) -> Response {
    let (Some(code), Some(st)) = (answer.code, answer.state) else {
        let why = answer.error.unwrap_or_else(|| "no code".into());
        return failed(&SignInError::Refused(crate::api::error::excerpt(&why)));
    };
    let browser = (headers.get_all(header::COOKIE).iter())
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| cookie_named(h, signin::COOKIE));
    let signed_in = match oidc.finish(&code, &st, browser).await {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    tracing::info!(
        viewer = %signed_in.viewer.name,
        admin = signed_in.viewer.admin,
        tenants = signed_in.viewer.tenants.len(),
        "console: signed in"
    );
    let id = console
        .sessions
        .open_signed_in(signed_in.viewer, Some(Secret::new(signed_in.id_token)));
    let mut response = Redirect::to("/console/").into_response();
    if let Some(cookie) = console.cookie(&id) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The sign-out form's token.
#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/signout`: the session ends here, then at the issuer.
pub async fn sign_out(
    visit: Visit,
    State(state): State<AppState>,
    Form(form): Form<SignOutForm>,
) -> Response {
    if !same_token(&form.csrf, &visit.session.csrf) {
        return visit.answer(error_page(
            StatusCode::FORBIDDEN,
            "This form has expired; reload the page and try again.",
        ));
    }
    visit.console.sessions.close(&visit.session.id);
    let issuer = match (oidc(&state), &visit.session.id_token) {
        (Some(oidc), Some(token)) => oidc.sign_out_url(token.expose()).await,
        _ => None,
    };
    let mut response = Redirect::to(issuer.as_deref().unwrap_or("/console/")).into_response();
    if let Some(value) = visit.console.cookie_removed() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
