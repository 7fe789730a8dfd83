//! Spans of a real server, caught by an in-memory exporter: a request joins the
//! caller's W3C trace, carries tenant, message id and outcome (never an
//! address), and the message's delivery joins the same trace.

#[path = "black_box/common/mod.rs"]
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
fn capture() -> (InMemorySpanExporter, SdkTracerProvider, common::Subscribed) {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    mailbridge::telemetry::handoff::set_enabled(true);
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    (exporter, provider, common::subscribe(subscriber))
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
    let record = server
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
    // The message keeps the accepting request's trace beside it (for spans
    // that come after a restart, and for the console).
    assert_eq!(
        record["traceparent"],
        format!("00-{TRACE_ID}-{}-01", request.span_context.span_id()),
        "{record}"
    );
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

/// A server whose tenant `acme` sends through a Postmark stand-in (`pm`,
/// which takes events), giving a message up after one failed attempt.
async fn postmark_server(postmark: &wiremock::MockServer) -> (TestServer, tempfile::TempDir) {
    let uri = postmark.uri();
    let endpoint = percent_encoding::utf8_percent_encode(&uri, percent_encoding::NON_ALPHANUMERIC);
    let config = format!(
        "[transports]\npm = \"postmark+api://pm-token@default?endpoint={endpoint}&webhook_key=hooks%3Apm-pass\"\n\
         [tenants.acme]\ntransport = \"pm\"\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailbridge.toml");
    std::fs::write(&file, config).unwrap();
    let env = [
        ("MAILBRIDGE_CONFIG", file.to_str().unwrap()),
        ("MAILBRIDGE_RETRY_MAX_ATTEMPTS", "1"),
    ];
    (TestServer::start(&env).await, dir)
}

/// The span id of the request that accepted a message, from its stored `traceparent`.
fn accepting_span(record: &serde_json::Value) -> String {
    let traceparent = record["traceparent"]
        .as_str()
        .expect("a stored traceparent");
    assert!(
        traceparent.starts_with(&format!("00-{TRACE_ID}-")),
        "{traceparent}"
    );
    traceparent[36..52].to_owned()
}

#[tokio::test]
async fn a_provider_event_joins_the_trace_of_its_message() {
    let (exporter, provider, _guard) = capture();
    let postmark = common::postmark::send_api().await;
    let (server, _dir) = postmark_server(&postmark).await;
    let id = post(&server, "/v1/messages").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let record = server
        .wait_status(&id, "sent", Duration::from_secs(10))
        .await;
    // Postmark's own request, in a trace of its own.
    let bounce = json!({"RecordType": "Bounce", "ID": 42, "Type": "HardBounce",
                        "Email": "ada@example.com", "BouncedAt": "2026-12-04T22:00:00Z",
                        "MessageID": "pm-msg", "Metadata": {"mailbridge-id": id}});
    assert_eq!(
        common::postmark::post_event(&server, &bounce)
            .await
            .status(),
        200
    );
    server.stop().await;

    let spans = finished(&exporter, &provider);
    let event = spans
        .iter()
        .find(|s| s.name == "delivery_event")
        .expect("a delivery_event span");
    assert_eq!(
        event.span_context.trace_id(),
        TraceId::from_hex(TRACE_ID).unwrap(),
        "the message's trace, not the webhook request's"
    );
    assert_eq!(event.parent_span_id.to_string(), accepting_span(&record));
    for (key, want) in [
        ("message_id", id.as_str()),
        ("transport", "pm"),
        ("event", "bounced"),
        ("bounce", "hard"),
    ] {
        assert_eq!(
            attr(event, key).map(Value::as_str).as_deref(),
            Some(want),
            "{key}"
        );
    }
    let request = spans
        .iter()
        .find(|s| s.name == "POST /v1/events/{transport}")
        .expect("the event request's span");
    assert_eq!(
        event.links.links.first().map(|l| l.span_context.span_id()),
        Some(request.span_context.span_id()),
        "linked to the request that brought it"
    );
    assert_no_addresses(&spans);
}

#[tokio::test]
async fn a_delivery_without_a_hand_off_joins_the_stored_trace() {
    let (exporter, provider, _guard) = capture();
    let postmark = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&postmark)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(json!({"MessageID": "pm-msg", "ErrorCode": 0})),
        )
        .mount(&postmark)
        .await;
    let (server, _dir) = postmark_server(&postmark).await;
    let id = post(&server, "/v1/messages").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Given up after one attempt: the in-memory hand-off is gone, as after a restart.
    server
        .wait_status(&id, "failed", Duration::from_secs(10))
        .await;
    let retry = server
        .http
        .post(server.url(&format!("/v1/messages/{id}/retry")))
        .bearer_auth(server.token(None, true))
        .send()
        .await
        .unwrap();
    assert!(retry.status().is_success(), "{}", retry.status());
    let record = server
        .wait_status(&id, "sent", Duration::from_secs(10))
        .await;
    server.stop().await;

    let spans = finished(&exporter, &provider);
    let sent = spans
        .iter()
        .find(|s| s.name == "delivery" && attr(s, "outcome").is_some_and(|v| v.as_str() == "sent"))
        .expect("the delivery that sent it");
    assert_eq!(
        sent.span_context.trace_id(),
        TraceId::from_hex(TRACE_ID).unwrap(),
        "the accepting request's trace"
    );
    assert_eq!(sent.parent_span_id.to_string(), accepting_span(&record));
    assert_no_addresses(&spans);
}
