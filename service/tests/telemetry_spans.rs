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

const CALLER_SPAN: &str = "b7ad6b7169203331";

/// One test's view of the spans: the process-wide exporter and the trace the
/// test's requests carry (its own, so that tests side by side, or the spans a
/// test's stopped server finishes late, do not mix).
struct Capture {
    exporter: InMemorySpanExporter,
    provider: &'static SdkTracerProvider,
    trace: TraceId,
}

/// Installs the exporting subscriber process-wide, once, as the service does:
/// spans also start and end on threads outside the runtime (the SQLite
/// driver's worker takes the caller's span along), and a span that ends where
/// no subscriber is installed never lets go of its parent.
fn capture() -> Capture {
    static INSTALLED: std::sync::OnceLock<(InMemorySpanExporter, SdkTracerProvider)> =
        std::sync::OnceLock::new();
    let (exporter, provider) = INSTALLED.get_or_init(|| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        mailbridge::telemetry::handoff::set_enabled(true);
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        (exporter, provider)
    });
    Capture {
        exporter: exporter.clone(),
        provider,
        trace: TraceId::from_bytes(uuid::Uuid::new_v4().into_bytes()),
    }
}

impl Capture {
    /// Every finished span, of any test.
    fn all(&self) -> Vec<SpanData> {
        self.provider.force_flush().expect("flush");
        self.exporter.get_finished_spans().expect("spans")
    }

    /// The finished spans of this test's trace.
    fn finished(&self) -> Vec<SpanData> {
        let mut spans = self.all();
        spans.retain(|s| s.span_context.trace_id() == self.trace);
        spans
    }

    fn traceparent(&self) -> String {
        format!("00-{}-{CALLER_SPAN}-01", self.trace)
    }
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

async fn post(capture: &Capture, server: &TestServer, path: &str) -> serde_json::Value {
    let resp = server
        .http
        .post(server.url(path))
        .bearer_auth(server.token(Some("acme"), false))
        .header("traceparent", capture.traceparent())
        .json(&message())
        .send()
        .await
        .expect("request");
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.expect("json")
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
    let capture = capture();
    let server = TestServer::start(&[]).await;
    let accepted = post(&capture, &server, "/v1/messages").await;
    let id = accepted["id"].as_str().expect("id").to_owned();
    let record = server
        .wait_status(&id, "sent", Duration::from_secs(10))
        .await;
    server.stop().await;

    let spans = capture.finished();
    let request = spans
        .iter()
        .find(|s| s.name == "POST /v1/messages")
        .unwrap_or_else(|| {
            panic!(
                "no request span among {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(request.span_context.trace_id(), capture.trace);
    assert_eq!(request.parent_span_id.to_string(), CALLER_SPAN);
    // The message keeps the accepting request's trace beside it (for spans
    // that come after a restart, and for the console).
    assert_eq!(
        record["traceparent"],
        format!("00-{}-{}-01", capture.trace, request.span_context.span_id()),
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
    let capture = capture();
    let server = TestServer::start(&[]).await;
    let sent = post(&capture, &server, "/v1/messages?wait=true").await;
    assert_eq!(sent["status"], "sent");
    server.stop().await;

    let spans = capture.finished();
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
    assert_eq!(delivery.span_context.trace_id(), capture.trace);
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
fn accepting_span(capture: &Capture, record: &serde_json::Value) -> String {
    let traceparent = record["traceparent"]
        .as_str()
        .expect("a stored traceparent");
    assert!(
        traceparent.starts_with(&format!("00-{}-", capture.trace)),
        "{traceparent}"
    );
    traceparent[36..52].to_owned()
}

#[tokio::test]
async fn a_provider_event_joins_the_trace_of_its_message() {
    let capture = capture();
    let postmark = common::postmark::send_api().await;
    let (server, _dir) = postmark_server(&postmark).await;
    let id = post(&capture, &server, "/v1/messages").await["id"]
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

    let spans = capture.finished();
    let event = spans
        .iter()
        .find(|s| s.name == "delivery_event")
        .expect("a delivery_event span");
    assert_eq!(
        event.span_context.trace_id(),
        capture.trace,
        "the message's trace, not the webhook request's"
    );
    assert_eq!(
        event.parent_span_id.to_string(),
        accepting_span(&capture, &record)
    );
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
    // Postmark's request has a trace of its own: the event's link leads to it.
    let link = event
        .links
        .links
        .first()
        .expect("linked to the request that brought it")
        .span_context
        .clone();
    let request = capture
        .all()
        .into_iter()
        .find(|s| s.span_context == link)
        .expect("the event request's span");
    assert_eq!(request.name, "POST /v1/events/{transport}");
    assert_ne!(link.trace_id(), capture.trace);
    assert_no_addresses(&spans);
    assert_no_addresses(&[request]);
}

#[tokio::test]
async fn a_delivery_without_a_hand_off_joins_the_stored_trace() {
    let capture = capture();
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
    let id = post(&capture, &server, "/v1/messages").await["id"]
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

    let spans = capture.finished();
    let sent = spans
        .iter()
        .find(|s| s.name == "delivery" && attr(s, "outcome").is_some_and(|v| v.as_str() == "sent"))
        .expect("the delivery that sent it");
    assert_eq!(
        sent.span_context.trace_id(),
        capture.trace,
        "the accepting request's trace"
    );
    assert_eq!(
        sent.parent_span_id.to_string(),
        accepting_span(&capture, &record)
    );
    assert_no_addresses(&spans);
}
