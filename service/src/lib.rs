//! mailbridge: durable, retrying email delivery for Keycloak.
//!
//! # Layout
//!
//! - [`config`]: settings from the environment and an optional TOML file,
//!   validated at start.
//! - [`limits`]: limits that follow Keycloak's flows (per address, per
//!   kind of email), as cells the store checks; pure.
//! - [`listener`]: accepts HTTP connections within the serving limits
//!   (header and body timeouts, the connection cap).
//! - [`server`]: turns settings into parts (store, renderer, transports,
//!   worker) and runs them until a shutdown signal.
//! - [`secret`]: [`secret::Secret`], a value kept out of logs; a leaf.
//! - [`security`]: what `mailbridge check` reports about secrets and storage.
//! - [`email`]: domain types (addresses, the rendered message); no I/O.
//! - [`events`]: delivery events from providers (verified with each
//!   provider's own signature scheme) and their normalised form.
//! - [`suppression`]: the per-tenant suppression list's types (pure).
//! - [`tenant`]: each tenant's transport and allowed sender.
//! - [`auth`]: JWT verification, pure: the token, the secret and the time
//!   give an [`auth::Caller`] or the rule the token breaks.
//! - [`api`]: the HTTP API, one file per resource, errors as problem+json,
//!   the caller from the `Authorization` header (`api::caller`);
//!   [`app`] assembles the router.
//! - [`render`]: templates (minijinja), Fluent strings, HTML to text: the crate
//!   `mailbridge-render` (pure; also built as WebAssembly), plus reading a template directory.
//! - [`queue`]: the [`queue::JobStore`] trait, the SQLite store, the pure retry
//!   policy and the delivery worker.
//! - [`transport`]: the [`transport::Transport`] trait, DSN parsing, SMTP,
//!   file and provider API transports.
//! - [`webhooks`]: webhooks out to the application, rows of the same queue
//!   under the reserved transport `webhook`, signed as Standard Webhooks.
//! - [`feedback`]: feedback into Keycloak (a user attribute on hard bounces
//!   and complaints), rows of the same queue under the reserved transport `keycloak`.
//! - [`console`]: the operator's web console under `/console/`.
//! - [`oauth`]: OAuth2 token sources with caching (XOAUTH2, Graph).
//! - [`telemetry`]: logs, OpenTelemetry traces, and the metrics of `/metrics`.

pub mod api;
pub mod auth;
pub mod config;
pub mod console;
pub mod email;
pub mod events;
pub mod feedback;
pub mod limits;
pub mod listener;
pub mod oauth;
pub mod queue;
pub mod render;
pub mod secret;
pub mod security;
pub mod server;
pub mod suppression;
pub mod telemetry;
pub mod tenant;
pub mod transport;
pub mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::routing::{get, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use api::error::ApiError;
use api::{
    AppState, MAX_BODY_BYTES, admin, events as event_api, health, messages, metrics, openapi,
    suppressions,
};

/// The HTTP API as a router over `state`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/messages", post(messages::create).get(admin::list))
        .route(
            "/v1/messages/{id}",
            get(messages::show).delete(admin::delete),
        )
        .route("/v1/messages/{id}/retry", post(admin::retry))
        .route("/v1/render", post(messages::render))
        .route("/v1/events/{transport}", post(event_api::receive))
        .route("/v1/suppressions", get(suppressions::list))
        .route(
            "/v1/suppressions/{tenant}/{email}",
            put(suppressions::put).delete(suppressions::delete),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi))
        // The API's routes only: the console's have a fallback of their own
        // inside its layers, which a later call would replace.
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint",
            )
        })
        .merge(console::routes(&state))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal(
                &"a request handler panicked",
            ))
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::request::RequestSpan)
                .on_response(telemetry::request::RecordStatus),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .with_state(state)
}
