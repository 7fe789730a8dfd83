//! Logs, traces and metrics.
//!
//! - Logs: `tracing` with an `EnvFilter` from `MAILBRIDGE_LOG`, to stderr;
//!   other crates log at INFO and above only (their debug output carries content).
//! - Traces: OpenTelemetry over OTLP/HTTP (protobuf), only when the standard
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
//!   set (see [`otel`]); an incoming W3C `traceparent` becomes the parent of the
//!   request span ([`request`]), and a message's delivery joins the trace of the
//!   request that accepted it ([`handoff`]).
//! - Metrics: [`Metrics`], served as Prometheus text at `/metrics` and pushed
//!   over OTLP when an endpoint is set.

pub mod classify;
pub mod handoff;
pub mod metrics;
pub mod otel;
pub mod request;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{FilterExt as _, Targets, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub use classify::reply_class;
pub use metrics::Metrics;
pub use otel::OtelSettings;

/// Keeps the trace exporter alive; dropping it flushes the spans still buffered.
#[derive(Debug, Default)]
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn exports_traces(&self) -> bool {
        self.tracer.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer.take() {
            handoff::set_enabled(false);
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "could not flush the last spans to the OTLP endpoint");
            }
        }
    }
}

/// Whether a log line or span may be written, whatever `MAILBRIDGE_LOG`
/// says: our own at every level, other crates' only at INFO and above. Their
/// debug and trace output carries content: html5ever prints every character
/// it reads (reset links included), hyper and h2 headers, sqlx statements
/// with bound values, lettre and reqwest what they send.
fn content_free(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("mailbridge") || *meta.level() <= Level::INFO
}

/// Installs the global subscriber: logs to stderr filtered by `filter`
/// (`tracing`'s EnvFilter syntax), plus OTLP trace export when the standard
/// OpenTelemetry variables ask for it.
pub fn init(filter: &str) -> anyhow::Result<TelemetryGuard> {
    init_with(filter, &OtelSettings::from_env()?)
}

/// [`init`] with OpenTelemetry settings given rather than read from the
/// environment (for a process that hosts the service, such as a test).
pub fn init_with(filter: &str, settings: &OtelSettings) -> anyhow::Result<TelemetryGuard> {
    let env_filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("MAILBRIDGE_LOG: `{filter}` is not a valid filter ({e})"))?;
    let tracer = if settings.traces {
        Some(otel::tracer_provider(settings)?)
    } else {
        None
    };
    let logs = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_filter(env_filter.and(filter_fn(content_free)));
    // Spans go out whatever the log level; only our own and the HTTP layer's,
    // never those of the exporter's HTTP client (which would feed back).
    let spans = tracer.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("mailbridge"))
            .with_filter(
                Targets::new()
                    .with_target("mailbridge", Level::INFO)
                    .with_target("tower_http", Level::INFO),
            )
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .map_err(|e| anyhow::anyhow!("logging: {e}"))?;
    if let Some(provider) = &tracer {
        opentelemetry::global::set_tracer_provider(provider.clone());
        handoff::set_enabled(true);
        tracing::info!(service = %settings.service_name, "exporting traces over OTLP/HTTP");
    }
    Ok(TelemetryGuard { tracer })
}
