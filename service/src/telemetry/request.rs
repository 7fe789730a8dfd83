//! The span of one HTTP request: method and route template (never the query,
//! headers or body), the caller's W3C `traceparent` as its parent, and the
//! tenant, message id and outcome that handlers record on it.

use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::{HeaderMap, Request, Response};
use opentelemetry::propagation::Extractor;
use tower_http::trace::{MakeSpan, OnResponse};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Makes the request span (for `TraceLayer::make_span_with`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        // The route template (`/v1/messages/{id}`) keeps span names few.
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let method = known_method(request.method());
        let span = tracing::info_span!(
            "request",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method,
            http.route = route,
            http.response.status_code = Empty,
            tenant = Empty,
            message_id = Empty,
            outcome = Empty,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&Headers(request.headers()))
        });
        // Fails only without the OpenTelemetry layer: then there is no trace to join.
        let _ = span.set_parent(parent);
        span
    }
}

/// The method as OpenTelemetry's HTTP conventions name it: one of the
/// standard ones, else `_OTHER`. Anyone may send any token as a method
/// (`X3f9…`, 8 KB long): as the span's name it would make the names of a
/// trace backend without bound.
fn known_method(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("_OTHER")
}

/// Records the answer's status on the request span (for `TraceLayer::on_response`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordStatus;

impl<B> OnResponse<B> for RecordStatus {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &Span) {
        let status = response.status().as_u16();
        // As i64: OpenTelemetry has no unsigned integers (a u64 would become text).
        span.record("http.response.status_code", i64::from(status));
        if response.status().is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        tracing::debug!(status, latency_ms = latency.as_millis() as u64, "answered");
    }
}

/// Records the tenant a request acts for on the current request span.
pub fn record_tenant(tenant: &str) {
    Span::current().record("tenant", tenant);
}

/// Records the message a request is about on the current request span.
pub fn record_message(id: uuid::Uuid) {
    Span::current().record("message_id", tracing::field::display(id));
}

/// Records what became of the request (`queued`, `duplicate`, `sent`, …) on the current span.
pub fn record_outcome(outcome: &'static str) {
    Span::current().record("outcome", outcome);
}

/// Reads propagation headers (`traceparent`, `tracestate`) from a request.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_outside_the_standard_ones_is_named_other() {
        use axum::http::Method;
        assert_eq!(known_method(&Method::POST), "POST");
        assert_eq!(known_method(&Method::PATCH), "PATCH");
        for odd in ["X3f9c2a7e", "get", "PROPFIND"] {
            let method = Method::from_bytes(odd.as_bytes()).unwrap();
            assert_eq!(known_method(&method), "_OTHER", "{odd}");
        }
    }
}
