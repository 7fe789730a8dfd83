//! The operator's console under `/console/`: server-rendered pages (minijinja
//! templates, one CSS and one small script, all embedded in the binary) over
//! the queue store, behind a strict Content-Security-Policy.
//!
//! - [`session`]: the viewer, their roles, sessions and CSRF tokens.
//! - [`access`]: the sign-in, callback and sign-out pages.
//! - [`pages`]: the overview, the message list and one message's timeline.
//! - [`actions`]: retry and delete (admins only), one by one or in bulk.
//! - [`inpage`]: the studio's renderer in the page (template sources, preview frame).
//! - [`live`]: sending limits and OAuth2 tokens, from this process's memory.
//! - [`issuer_http`]: the HTTP client of the sign-in.
//! - [`signin`]: OpenID Connect sign-in and sign-out (see [`access`]'s routes).
//! - [`studio`]: the template studio.
//! - [`studio_missing`]: what a studio render does without (translations, variables).
//! - [`studio_test`]: the studio's "send me a test" (admins only).
//! - [`suppressions`]: the suppression list; admins add and remove.
//! - [`timeline`]: one message's attempts and delivery events.
//! - [`transports`]: the transports' health and a test send.
//! - [`view`]: templates and the headers every console answer carries.

pub mod access;
pub mod actions;
pub mod inpage;
pub mod issuer_http;
pub mod live;
pub mod pages;
pub mod session;
pub mod signin;
pub mod studio;
pub mod studio_missing;
pub mod studio_test;
pub mod suppressions;
pub mod timeline;
pub mod transports;
pub mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::AppState;
use session::{Session, Sessions, Viewer};

/// How viewers get in.
#[derive(Debug, Clone)]
pub enum SignIn {
    /// `--insecure-no-auth` on a loopback address: every local browser is an administrator.
    LocalAdmin,
    /// OpenID Connect against `MAILBRIDGE_CONSOLE_ISSUER`.
    Oidc(Arc<signin::Oidc>),
}

/// The console: its sessions and its page templates.
#[derive(Debug)]
pub struct Console {
    sign_in: SignIn,
    /// Open sessions (the sign-in opens them).
    pub sessions: Sessions,
    view: view::Pages,
    /// The `Content-Security-Policy` of every console answer.
    pub content_security_policy: HeaderValue,
    /// The studio's policy: the same, and WebAssembly when the binary carries the renderer's module.
    pub studio_policy: HeaderValue,
}

impl Console {
    /// A console whose viewers get in by `sign_in`.
    pub fn new(sign_in: SignIn) -> anyhow::Result<Console> {
        let issuer = match &sign_in {
            SignIn::Oidc(oidc) => Some(oidc.issuer_origin()),
            SignIn::LocalAdmin => None,
        };
        let policy = view::content_security_policy(issuer.as_deref(), false);
        let wasm = view::render_module().is_some();
        let studio = view::content_security_policy(issuer.as_deref(), wasm);
        Ok(Console {
            content_security_policy: HeaderValue::from_str(&policy)?,
            studio_policy: HeaderValue::from_str(&studio)?,
            sign_in,
            sessions: Sessions::default(),
            view: view::Pages::new()?,
        })
    }
}

/// The console's routes; every one answers 404 when the console is off.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(pages::overview))
        .route("/console/messages", get(pages::messages))
        .route("/console/messages/retry", post(actions::bulk_retry))
        .route(
            "/console/messages/{id}",
            get(pages::message).post(actions::act),
        )
        .route("/console/transports", get(transports::page))
        .route("/console/transports/test", post(transports::test_send))
        .route(
            "/console/suppressions",
            get(suppressions::page).post(suppressions::act),
        )
        .route("/console/templates", get(studio::page))
        .route("/console/templates/preview", post(studio::preview))
        .route("/console/templates/render", post(studio::rendered))
        .route("/console/templates/test", post(studio_test::send_test))
        .route("/console/templates/sources", get(inpage::sources))
        .route("/console/templates/frame", get(inpage::frame))
        .route("/console/assets/{file}", get(view::asset))
        .route("/console/signin", get(access::sign_in))
        .route("/console/callback", get(access::callback))
        .route("/console/signout", post(access::sign_out))
        .route("/console/{*rest}", get(|| async { view::not_found() }))
        // Before the layers, so that a 405 carries the console's headers too.
        .method_not_allowed_fallback(|State(state): State<AppState>| async move {
            match state.console {
                Some(_) => view::error_page(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "This page does not take that method.",
                ),
                None => view::not_found(),
            }
        })
        .layer(axum::middleware::map_response(view::html_rejections))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            view::secure_headers,
        ))
}

/// A console request: the console, the viewer's session, and the cookie to
/// set when the session was opened by this very request.
#[derive(Debug)]
pub struct Visit {
    /// The console.
    pub console: Arc<Console>,
    /// The viewer's session.
    pub session: Session,
    /// `Set-Cookie` for a session opened now.
    pub new_cookie: Option<HeaderValue>,
}

impl Visit {
    /// Who is looking.
    pub fn viewer(&self) -> &Viewer {
        &self.session.viewer
    }

    /// `response` with the new session's cookie, if any.
    pub fn answer(&self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        if let Some(cookie) = &self.new_cookie {
            response
                .headers_mut()
                .append(header::SET_COOKIE, cookie.clone());
        }
        response
    }
}

impl FromRequestParts<AppState> for Visit {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(console) = state.console.clone() else {
            return Err(view::not_found());
        };
        let existing = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(session::cookie_value)
            .and_then(|id| console.sessions.find(id));
        if let Some(session) = existing {
            return Ok(Visit {
                console,
                session,
                new_cookie: None,
            });
        }
        match &console.sign_in {
            SignIn::LocalAdmin => {
                let viewer = Viewer::from_roles("local administrator", ["admin"]);
                let id = console.sessions.open(viewer);
                let session = console.sessions.find(&id).ok_or_else(view::not_found)?;
                let new_cookie = console.cookie(&id);
                Ok(Visit {
                    console,
                    session,
                    new_cookie,
                })
            }
            // Reading pages leads to the sign-in; a form posted without a session changes nothing.
            SignIn::Oidc(_) if parts.method == axum::http::Method::GET => {
                Err(Redirect::to("/console/signin").into_response())
            }
            SignIn::Oidc(_) => Err(view::error_page(StatusCode::FORBIDDEN, "Sign in first.")),
        }
    }
}

impl Console {
    /// The `Set-Cookie` value of session `id`: `HttpOnly`, `SameSite=Lax`,
    /// `Secure` when the console is behind https.
    /// `None` only for an id that is no header value (ids are URL-safe base64).
    pub fn cookie(&self, id: &str) -> Option<HeaderValue> {
        self.set_cookie(session::COOKIE, id, "")
    }

    /// The `Set-Cookie` value that binds a sign-in to this browser, with the
    /// session cookie's flags, for as long as the sign-in may take.
    pub fn sign_in_cookie(&self, browser: &str) -> Option<HeaderValue> {
        let lifetime = format!("; Max-Age={}", signin::PENDING_TTL.as_secs());
        self.set_cookie(signin::COOKIE, browser, &lifetime)
    }

    /// The `Set-Cookie` value that removes the session's cookie (sign-out),
    /// with the flags it was set with.
    pub fn cookie_removed(&self) -> Option<HeaderValue> {
        self.set_cookie(session::COOKIE, "", "; Max-Age=0")
    }

    /// The `Set-Cookie` value that removes the sign-in's cookie.
    pub fn sign_in_cookie_removed(&self) -> Option<HeaderValue> {
        self.set_cookie(signin::COOKIE, "", "; Max-Age=0")
    }

    fn set_cookie(&self, name: &str, value: &str, lifetime: &str) -> Option<HeaderValue> {
        let secure = match &self.sign_in {
            SignIn::Oidc(oidc) if oidc.secure() => "; Secure",
            _ => "",
        };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/console; HttpOnly; SameSite=Lax{secure}{lifetime}"
        ))
        .ok()
    }
}
