//! Spans of a real server, caught by an in-memory exporter: a request joins the
//! caller's W3C trace, carries tenant, message id and outcome (never an
//! address), and the message's delivery joins the same trace.

mod common;

use std::time::Duration;

use common::server::TestServer;
use opentelemetry::trace::{TraceId, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt as _;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

/// Installs an exporting subscriber for this test's thread (the tests run on a
/// current-thread runtime, so the server's tasks run here too).
fn capture() -> (
    InMemorySpanExporter,
    SdkTracerProvider,
    tracing::subscriber::DefaultGuard,
) {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    mailbridge::telemetry::handoff::set_enabled(true);
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let guard = tracing::subscriber::set_default(subscriber);
    (exporter, provider, guard)
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn message() -> serde_json::Value {
    json!({
        "to": [{"email": "ada@example.com", "name": "Ada Lovelace"}],
        "from": {"email": "no-reply@acme.example"},
        "subject": "Hello", "text": "Body"
    })
}

async fn post(server: &TestServer, path: &str) -> serde_json::Value {
    let resp = server
        .http
        .post(server.url(path))
        .bearer_auth(server.token(Some("acme"), false))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&message())
        .send()
        .await
        .expect("request");
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.expect("json")
}

fn finished(exporter: &InMemorySpanExporter, provider: &SdkTracerProvider) -> Vec<SpanData> {
    provider.force_flush().expect("flush");
    exporter.get_finished_spans().expect("spans")
}

fn assert_no_addresses(spans: &[SpanData]) {
    for span in spans {
        for kv in &span.attributes {
            assert!(
                !kv.value.as_str().contains('@'),
                "span {} carries an address in {}: {}",
                span.name,
                kv.key,
                kv.value
            );
        }
    }
}

#[tokio::test]
async fn a_request_joins_the_callers_trace_and_its_delivery_follows() {
    let (exporter, provider, _guard) = capture();
    let server = TestServer::start(&[]).await;
    let accepted = post(&server, "/v1/messages").await;
    let id = accepted["id"].as_str().expect("id").to_owned();
    server
        .wait_status(&id, "sent", Duration::from_secs(10))
        .await;
    server.stop().await;

    let spans = finished(&exporter, &provider);
    let request = spans
        .iter()
        .find(|s| s.name == "POST /v1/messages")
        .unwrap_or_else(|| {
            panic!(
                "no request span among {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(
        request.span_context.trace_id(),
        TraceId::from_hex(TRACE_ID).unwrap()
    );
    assert_eq!(request.parent_span_id.to_string(), CALLER_SPAN);
    assert_eq!(
        attr(request, "tenant").map(Value::as_str).as_deref(),
        Some("acme")
    );
    assert_eq!(
        attr(request, "message_id").map(Value::as_str).as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        attr(request, "outcome").map(Value::as_str).as_deref(),
        Some("queued")
    );
    assert_eq!(
        attr(request, "http.response.status_code"),
        Some(&Value::I64(202))
    );
    assert_eq!(
        attr(request, "http.route").map(Value::as_str).as_deref(),
        Some("/v1/messages")
    );

    let delivery = spans
        .iter()
        .find(|s| s.name == "delivery" && attr(s, "message_id").is_some_and(|v| v.as_str() == id))
        .expect("a delivery span");
    assert_eq!(
        delivery.span_context.trace_id(),
        request.span_context.trace_id(),
        "one trace"
    );
    assert_eq!(delivery.parent_span_id, request.span_context.span_id());
    assert_eq!(
        attr(delivery, "outcome").map(Value::as_str).as_deref(),
        Some("sent")
    );
    assert_no_addresses(&spans);
}

#[tokio::test]
async fn a_waiting_request_holds_its_delivery_span() {
    let (exporter, provider, _guard) = capture();
    let server = TestServer::start(&[]).await;
    let sent = post(&server, "/v1/messages?wait=true").await;
    assert_eq!(sent["status"], "sent");
    server.stop().await;

    let spans = finished(&exporter, &provider);
    let request = spans
        .iter()
        .find(|s| s.name == "POST /v1/messages")
        .expect("a request span");
    assert_eq!(
        attr(request, "outcome").map(Value::as_str).as_deref(),
        Some("sent")
    );
    let delivery = spans
        .iter()
        .find(|s| s.name == "delivery")
        .expect("a delivery span");
    assert_eq!(delivery.parent_span_id, request.span_context.span_id());
    assert_eq!(
        delivery.span_context.trace_id(),
        TraceId::from_hex(TRACE_ID).unwrap()
    );
    assert_no_addresses(&spans);
}
