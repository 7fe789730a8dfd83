//! The console's templates, its two assets, and the headers every console
//! answer carries (a strict Content-Security-Policy: nothing inline, nothing
//! from elsewhere, never inside a frame).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;

use crate::api::AppState;

/// The policy of every console answer; forms may also go to `issuer` (the
/// sign-out continues at the issuer, and a form's redirects count as the form's).
/// With `wasm`, scripts may also compile WebAssembly (the studio's renderer);
/// still nothing inline and nothing from elsewhere.
pub fn content_security_policy(issuer: Option<&str>, wasm: bool) -> String {
    let form_action = match issuer {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    let script_src = if wasm {
        "'self' 'wasm-unsafe-eval'"
    } else {
        "'self'"
    };
    format!(
        "default-src 'none'; script-src {script_src}; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-src 'self'; form-action {form_action}; frame-ancestors 'none'; \
         base-uri 'none'"
    )
}

/// The page templates, embedded in the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("figures.html", include_str!("templates/figures.html")),
    ("messages.html", include_str!("templates/messages.html")),
    ("message.html", include_str!("templates/message.html")),
    ("templates.html", include_str!("templates/templates.html")),
    ("transports.html", include_str!("templates/transports.html")),
    (
        "suppressions.html",
        include_str!("templates/suppressions.html"),
    ),
];

/// The stylesheet and the scripts, embedded in the binary.
const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
const STUDIO_JS: &str = include_str!("assets/studio.js");
const FRAME_JS: &str = include_str!("assets/frame.js");
/// The renderer's JavaScript side, shipped with the module (`render/wasm`).
const RENDER_JS: &str = include_str!("../../../render/wasm/render.js");
/// The renderer as WebAssembly, embedded by the build script; empty when the
/// binary was built without it (`scripts/build-wasm.sh` not run).
const RENDER_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mailbridge_render.wasm"));
/// Where the page finds the module.
pub const RENDER_WASM_FILE: &str = "mailbridge_render.wasm";

/// The renderer's WebAssembly module, if this binary carries one.
pub fn render_module() -> Option<&'static [u8]> {
    (!RENDER_WASM.is_empty()).then_some(RENDER_WASM)
}

/// The compiled page templates.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// Compiles the embedded templates (autoescaped as HTML).
    pub fn new() -> anyhow::Result<Pages> {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(Pages { env })
    }

    /// `name` rendered with `context`, or a plain 500 page (the cause is logged, not shown).
    pub fn render(&self, name: &str, context: impl Serialize) -> Response {
        let rendered = self
            .env
            .get_template(name)
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&context))));
        match rendered {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "a console page could not be rendered");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "This page could not be shown.",
                )
            }
        }
    }
}

/// A small page for an error, without the layout's navigation.
pub fn error_page(status: StatusCode, detail: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>mailbridge console</title><link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head>\
         <body><main><h1>{}</h1><p>{}</p><p><a href=\"/console/\">Back to the overview</a></p></main></body></html>",
        status.as_u16(),
        escape(detail)
    );
    (status, Html(body)).into_response()
}

/// The answer where the console is off or nothing is there.
pub fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "Nothing here.")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /console/assets/{file}`: the stylesheet, a script or the renderer's
/// module (404 when the console is off, or for a module the binary lacks).
pub async fn asset(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    if state.console.is_none() {
        return not_found();
    }
    let script = "text/javascript; charset=utf-8";
    let (body, kind): (&'static [u8], _) = match file.as_str() {
        "console.css" => (CSS.as_bytes(), "text/css; charset=utf-8"),
        "console.js" => (JS.as_bytes(), script),
        "studio.js" => (STUDIO_JS.as_bytes(), script),
        "frame.js" => (FRAME_JS.as_bytes(), script),
        "render.js" => (RENDER_JS.as_bytes(), script),
        RENDER_WASM_FILE => match render_module() {
            Some(module) => (module, "application/wasm"),
            None => return not_found(),
        },
        _ => return not_found(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The console's own page for an extractor's plain-text rejection (a path
/// that is not UTF-8, a form missing a field, a query of the wrong type):
/// the console answers a browser in HTML, with the same status and reason.
pub async fn html_rejections(response: Response) -> Response {
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !plain || !response.status().is_client_error() {
        return response;
    }
    let status = response.status();
    let reason = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let reason = if reason.trim().is_empty() {
        status
            .canonical_reason()
            .unwrap_or("Bad request")
            .to_owned()
    } else {
        reason
    };
    error_page(status, &reason)
}

/// Adds the console's security headers; pages are never cached.
pub async fn secure_headers(State(state): State<AppState>, mut response: Response) -> Response {
    let policy = match &state.console {
        Some(console) => console.content_security_policy.clone(),
        None => HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    };
    let headers = response.headers_mut();
    // Only the studio's preview sets its own (stricter for scripts, framed by the console).
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    if !headers.contains_key(header::X_FRAME_OPTIONS) {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
