//! The real binary with `OTEL_EXPORTER_OTLP_ENDPOINT` set exports its spans
//! and metrics as OTLP/HTTP protobuf to a receiver on 127.0.0.1, and flushes
//! them when it stops on SIGTERM.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;
use serde_json::json;
use tokio::process::Command;

const SECRET: &str = "otlp-test-secret-0123456789abcdef-01234";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// What the receiver got: path, content type, body.
type Received = Arc<Mutex<Vec<(String, String, Bytes)>>>;

async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let record = |path: &'static str| {
        move |State(received): State<Received>, headers: HeaderMap, body: Bytes| async move {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            received
                .lock()
                .unwrap()
                .push((path.to_owned(), content_type, body));
            (
                [("content-type", "application/x-protobuf")],
                Vec::<u8>::new(),
            )
        }
    };
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(record("/v1/traces")))
        .route("/v1/metrics", axum::routing::post(record("/v1/metrics")))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn exports_spans_and_metrics_over_otlp_http() {
    let (endpoint, received) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailbridge"))
        .arg("serve")
        .env("MAILBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "MAILBRIDGE_DATABASE_URL",
            format!("sqlite://{}/mb.db", dir.path().display()),
        )
        .env(
            "MAILBRIDGE_TRANSPORT",
            format!("file://{}/outbox", dir.path().display()),
        )
        .env("MAILBRIDGE_TEMPLATES", templates)
        .env("MAILBRIDGE_JWT_SECRET", SECRET)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_SERVICE_NAME", "mailbridge-otlp-test")
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("log")).unwrap(),
        ))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start mailbridge");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = || std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    assert!(ready, "not ready; log: {}", log());

    let token = mailbridge::auth::mint(SECRET.as_bytes(), Some("acme"), false, 120).unwrap();
    let resp = http
        .post(format!("{base}/v1/messages?wait=true"))
        .bearer_auth(token)
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .json(&json!({"to": [{"email": "ada@example.com"}], "subject": "Hi", "text": "Body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );

    // SIGTERM: a graceful stop, whose end flushes what is still buffered.
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops within 30 s")
        .unwrap();
    assert!(status.success(), "exit {status}; log: {}", log());

    let received = received.lock().unwrap().clone();
    let traces: Vec<_> = received
        .iter()
        .filter(|(path, ..)| path == "/v1/traces")
        .collect();
    assert!(!traces.is_empty(), "no spans exported; log: {}", log());
    let mut names = Vec::new();
    for (_, content_type, body) in &traces {
        assert_eq!(content_type, "application/x-protobuf");
        let request = ExportTraceServiceRequest::decode(body.as_ref()).expect("OTLP protobuf");
        for resource in &request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.clone());
            assert_eq!(
                service,
                Some(any_value::Value::StringValue("mailbridge-otlp-test".into()))
            );
            for span in resource.scope_spans.iter().flat_map(|s| &s.spans) {
                names.push((span.name.clone(), hex(&span.trace_id)));
            }
        }
    }
    for name in ["POST /v1/messages", "delivery"] {
        assert!(
            names
                .iter()
                .any(|(n, trace)| n == name && trace == TRACE_ID),
            "no `{name}` span in the caller's trace: {names:?}"
        );
    }

    let metrics: Vec<String> = received
        .iter()
        .filter(|(path, ..)| path == "/v1/metrics")
        .flat_map(|(_, _, body)| {
            let request =
                ExportMetricsServiceRequest::decode(body.as_ref()).expect("OTLP protobuf");
            request
                .resource_metrics
                .into_iter()
                .flat_map(|r| r.scope_metrics)
                .flat_map(|s| s.metrics)
                .map(|m| m.name)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        metrics.iter().any(|m| m == "mailbridge.messages.accepted"),
        "metrics pushed: {metrics:?}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
