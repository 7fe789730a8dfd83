//! What the standard OpenTelemetry variables ask for, and the OTLP/HTTP
//! exporters built from them.
//!
//! Export is off unless an endpoint is set: `OTEL_EXPORTER_OTLP_ENDPOINT` (both
//! signals) or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`. `OTEL_SDK_DISABLED=true` turns all of
//! it off; `OTEL_TRACES_EXPORTER=none` / `OTEL_METRICS_EXPORTER=none` one
//! signal. Headers, timeouts, sampler and batch sizes are read by the SDK from
//! their own standard variables.

use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::PeriodicReader;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// The service name when `OTEL_SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "mailbridge";

/// The standard variables name something we cannot do.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// Only OTLP over HTTP with protobuf bodies is built in.
    #[error(
        "{name}=`{value}` is not supported: mailbridge exports OTLP as http/protobuf (usually port 4318)"
    )]
    Protocol {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// The exporter could not be built (e.g. an endpoint that is not a URL).
    #[error("OpenTelemetry {signal} exporter: {reason}")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// Why.
        reason: String,
    },
}

/// Which OpenTelemetry exports are on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelSettings {
    /// Spans go to an OTLP endpoint.
    pub traces: bool,
    /// Where spans go: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, as the specification says.
    pub traces_endpoint: Option<String>,
    /// Metrics are pushed to an OTLP endpoint (besides `/metrics`).
    pub metrics: bool,
    /// `service.name` of every span and metric.
    pub service_name: String,
}

impl Default for OtelSettings {
    fn default() -> Self {
        Self {
            traces: false,
            traces_endpoint: None,
            metrics: false,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
        }
    }
}

impl OtelSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, OtelError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `var` (empty values count as unset).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, OtelError> {
        let var = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let service_name = var("OTEL_SERVICE_NAME").unwrap_or_else(|| DEFAULT_SERVICE_NAME.into());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(Self {
                service_name,
                ..Self::default()
            });
        }
        let base = var("OTEL_EXPORTER_OTLP_ENDPOINT");
        let common = base.is_some();
        let wanted = |endpoint: &str, exporter: &str| {
            (common || var(endpoint).is_some())
                && !var(exporter).is_some_and(|v| v.eq_ignore_ascii_case("none"))
        };
        let settings = Self {
            traces: wanted("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"),
            traces_endpoint: var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .or_else(|| base.map(|b| format!("{}/v1/traces", b.trim_end_matches('/')))),
            metrics: wanted(
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "OTEL_METRICS_EXPORTER",
            ),
            service_name,
        };
        for name in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        ] {
            if let Some(value) = var(name).filter(|v| v != "http/protobuf") {
                return Err(OtelError::Protocol { name, value });
            }
        }
        Ok(settings)
    }

    /// The resource every span and metric carries.
    pub fn resource(&self) -> Resource {
        Resource::builder()
            .with_service_name(self.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

/// The tracer provider exporting over OTLP/HTTP in batches (on its own thread),
/// with W3C trace-context as the process's propagator.
pub fn tracer_provider(settings: &OtelSettings) -> Result<SdkTracerProvider, OtelError> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(endpoint) = &settings.traces_endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let exporter = builder.build().map_err(|e| OtelError::Exporter {
        signal: "traces",
        reason: e.to_string(),
    })?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(settings.resource())
        .build())
}

/// A reader pushing metrics over OTLP/HTTP every `OTEL_METRIC_EXPORT_INTERVAL` (60 s).
pub fn metric_reader() -> Result<PeriodicReader<opentelemetry_otlp::MetricExporter>, OtelError> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .build()
        .map_err(|e| OtelError::Exporter {
            signal: "metrics",
            reason: e.to_string(),
        })?;
    Ok(PeriodicReader::builder(exporter).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<OtelSettings, OtelError> {
        OtelSettings::from_vars(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn off_without_an_endpoint() {
        let s = settings(&[("OTEL_SERVICE_NAME", "")]).unwrap();
        assert_eq!(s, OtelSettings::default());
        assert_eq!(s.service_name, "mailbridge");
    }

    #[test]
    fn the_common_endpoint_turns_on_both_signals() {
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SERVICE_NAME", "mail-eu"),
        ])
        .unwrap();
        assert!(s.traces && s.metrics);
        assert_eq!(s.service_name, "mail-eu");
        assert_eq!(
            s.traces_endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
    }

    #[test]
    fn per_signal_endpoints_and_exporter_none() {
        let s = settings(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces",
        )])
        .unwrap();
        assert!(s.traces && !s.metrics);
        assert_eq!(
            s.traces_endpoint.as_deref(),
            Some("http://c:4318/v1/traces")
        );
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ])
        .unwrap();
        assert!(s.traces && !s.metrics);
    }

    #[test]
    fn sdk_disabled_wins() {
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ])
        .unwrap();
        assert!(!s.traces && !s.metrics);
    }

    #[test]
    fn refuses_grpc_instead_of_sending_http_to_a_grpc_port() {
        let err = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("http/protobuf"), "{err}");
    }
}
