//! The service's metrics, all named `mailbridge_…`, with low-cardinality labels
//! only: tenant (capped, see [`MAX_TENANTS`]), transport name, status and a
//! small fixed set of classes. Read as Prometheus text at `/metrics`; pushed
//! over OTLP as well when an endpoint is set.
//!
//! Instrument names follow OpenTelemetry (`mailbridge.messages.accepted`); the
//! Prometheus exporter turns them into `mailbridge_messages_accepted_total`,
//! and a unit of seconds into a `_seconds` suffix.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{
    Counter, Gauge, Histogram, Meter, MeterProvider as _, ObservableCounter,
};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use time::OffsetDateTime;

use super::otel::{self, OtelSettings};
use crate::queue::{QueueStats, Status};
use crate::transport::Transports;

/// Distinct tenants given their own label; later ones are counted as `other`.
pub const MAX_TENANTS: usize = 100;
/// The label of tenants beyond [`MAX_TENANTS`].
pub const OTHER_TENANT: &str = "other";
/// Bucket bounds of one attempt, in seconds: a local relay to a slow API.
const ATTEMPT_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Bucket bounds from acceptance to delivery, in seconds: from a fast relay
/// to a message retried for hours.
const LATENCY_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0,
];

/// The metrics could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("encoding metrics: {0}")]
pub struct MetricsError(String);

/// How often `/metrics` reads the queue figures at most.
pub const QUEUE_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A read of the queue figures in progress (see [`Metrics::queue_read_due`]).
pub struct QueueRead<'a>(tokio::sync::MutexGuard<'a, Option<std::time::Instant>>);

impl Drop for QueueRead<'_> {
    fn drop(&mut self) {
        // Done, or given up: either way the next read waits its turn.
        *self.0 = Some(std::time::Instant::now());
    }
}

/// The service's counters, histogram and queue gauges. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    pushes_otlp: bool,
    tenants: Mutex<HashSet<String>>,
    accepted: Counter<u64>,
    sent: Counter<u64>,
    retried: Counter<u64>,
    failed: Counter<u64>,
    replies: Counter<u64>,
    meter: Meter,
    /// Reads the transports' token fetch counts at each collection.
    token_refreshes: Mutex<Option<ObservableCounter<u64>>>,
    rate_limited: Counter<u64>,
    delivery_events: Counter<u64>,
    suppressed: Counter<u64>,
    limited: Counter<u64>,
    duration: Histogram<f64>,
    latency: Histogram<f64>,
    depth: Gauge<u64>,
    oldest_age: Gauge<f64>,
    held: Gauge<u64>,
    /// When the queue figures were last read; held while a read runs.
    queue_read: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("pushes_otlp", &self.inner.pushes_otlp)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics read at `/metrics` only.
    pub fn new() -> Self {
        Self::build(&OtelSettings::default(), None)
    }

    /// Metrics read at `/metrics`, and pushed over OTLP when the standard
    /// variables name an endpoint (see [`otel`]).
    pub fn from_env() -> Result<Self, otel::OtelError> {
        let settings = OtelSettings::from_env()?;
        let reader = if settings.metrics {
            Some(otel::metric_reader()?)
        } else {
            None
        };
        Ok(Self::build(&settings, reader))
    }

    fn build(
        settings: &OtelSettings,
        otlp: Option<
            opentelemetry_sdk::metrics::PeriodicReader<opentelemetry_otlp::MetricExporter>,
        >,
    ) -> Self {
        let registry = prometheus::Registry::new();
        let mut builder = SdkMeterProvider::builder().with_resource(settings.resource());
        match opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .without_target_info()
            .build()
        {
            Ok(exporter) => builder = builder.with_reader(exporter),
            // Cannot happen with a fresh registry; without it `/metrics` is empty, not down.
            Err(error) => tracing::warn!(%error, "Prometheus metrics are unavailable"),
        }
        let pushes_otlp = otlp.is_some();
        if let Some(reader) = otlp {
            builder = builder.with_reader(reader);
        }
        let provider = builder.build();
        let meter = provider.meter("mailbridge");
        Self {
            inner: Arc::new(Inner::new(&meter, provider, registry, pushes_otlp)),
        }
    }

    /// A message was accepted (committed to the queue).
    pub fn accepted(&self, tenant: &str) {
        let inner = &self.inner;
        inner.accepted.add(1, &[inner.tenant(tenant)]);
    }

    /// A provider's delivery event of `kind` was stored, received through `transport`.
    pub fn delivery_event(&self, transport: &str, kind: &'static str) {
        let attrs = [
            KeyValue::new("transport", transport.to_owned()),
            KeyValue::new("type", kind),
        ];
        self.inner.delivery_events.add(1, &attrs);
    }

    /// A message was refused by a flow limit (`recipient` or `template`).
    pub fn limited(&self, tenant: &str, limit: &'static str) {
        let inner = &self.inner;
        let attrs = [inner.tenant(tenant), KeyValue::new("limit", limit)];
        inner.limited.add(1, &attrs);
    }

    /// A message was kept unsent: every recipient is suppressed.
    pub fn suppressed(&self, tenant: &str) {
        let inner = &self.inner;
        inner.suppressed.add(1, &[inner.tenant(tenant)]);
    }

    /// A message was delivered, `latency` after it was accepted.
    pub fn sent(&self, tenant: &str, transport: &str, latency: Duration) {
        let inner = &self.inner;
        let attrs = [
            inner.tenant(tenant),
            KeyValue::new("transport", transport.to_owned()),
        ];
        inner.sent.add(1, &attrs);
        inner.latency.record(
            latency.as_secs_f64(),
            &[KeyValue::new("transport", transport.to_owned())],
        );
    }

    /// One delivery attempt through `transport` took `took` (whatever came of it).
    pub fn attempted(&self, transport: &str, took: Duration) {
        let attrs = [KeyValue::new("transport", transport.to_owned())];
        self.inner.duration.record(took.as_secs_f64(), &attrs);
    }

    /// A message was held back by a tenant's or transport's rate limit.
    pub fn rate_limited(&self, tenant: &str, transport: &str) {
        let inner = &self.inner;
        let attrs = [
            inner.tenant(tenant),
            KeyValue::new("transport", transport.to_owned()),
        ];
        inner.rate_limited.add(1, &attrs);
    }

    /// An attempt failed and another is planned; `class` is `transient` or `auth`.
    pub fn retried(&self, tenant: &str, transport: &str, class: &'static str) {
        let inner = &self.inner;
        inner
            .retried
            .add(1, &inner.outcome_attrs(tenant, transport, class));
    }

    /// A message was given up; `class` is `permanent` or `expired` (attempts or age used up).
    pub fn failed(&self, tenant: &str, transport: &str, class: &'static str) {
        let inner = &self.inner;
        inner
            .failed
            .add(1, &inner.outcome_attrs(tenant, transport, class));
    }

    /// Counts the OAuth2 access tokens fetched by those of `transports` that
    /// use OAuth2, read from the transports whenever metrics are collected.
    pub fn watch_token_refreshes(&self, transports: &Transports) {
        let watched: Vec<_> = transports
            .iter()
            .filter(|(_, t)| t.token_fetches().is_some())
            .map(|(name, t)| (KeyValue::new("transport", name.to_owned()), t.clone()))
            .collect();
        let counter = self
            .inner
            .meter
            .u64_observable_counter("mailbridge.oauth.token_refreshes")
            .with_description("OAuth2 access tokens fetched by transports.")
            .with_callback(move |observer| {
                for (name, transport) in &watched {
                    let fetches = transport.token_fetches().unwrap_or_default();
                    observer.observe(fetches, std::slice::from_ref(name));
                }
            })
            .build();
        *self
            .inner
            .token_refreshes
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(counter);
    }

    /// A transport's peer answered an attempt; `class` as [`super::reply_class`] gives it.
    pub fn reply_class(&self, transport: &str, class: &'static str) {
        let attrs = [
            KeyValue::new("transport", transport.to_owned()),
            KeyValue::new("class", class),
        ];
        self.inner.replies.add(1, &attrs);
    }

    /// A transport was held as down (`true`) or answers again (`false`).
    pub fn transport_held(&self, transport: &str, held: bool) {
        let attrs = [KeyValue::new("transport", transport.to_owned())];
        self.inner.held.record(u64::from(held), &attrs);
    }

    /// Whether the queue figures may be read now: not while another read
    /// runs, nor within [`QUEUE_READ_EVERY`] of the last. `/metrics` is
    /// open, and each read counts the backlog and every dead letter: a crowd
    /// of scrapers would otherwise run those counts without end on the
    /// connections the accept path needs. The guard marks the read done.
    pub fn queue_read_due(&self) -> Option<QueueRead<'_>> {
        let last = self.inner.queue_read.try_lock().ok()?;
        if last.is_some_and(|at| at.elapsed() < QUEUE_READ_EVERY) {
            return None;
        }
        Some(QueueRead(last))
    }

    /// Sets the queue gauges from the store's figures at `now`.
    pub fn observe_queue(&self, stats: &QueueStats, now: OffsetDateTime) {
        let inner = &self.inner;
        for (status, count) in [
            (Status::Queued, stats.queued),
            (Status::Sending, stats.sending),
            (Status::Retrying, stats.retrying),
            (Status::Failed, stats.failed),
        ] {
            inner
                .depth
                .record(count, &[KeyValue::new("status", status.as_str())]);
        }
        let age = stats
            .oldest_unsent
            .map_or(0.0, |at| (now - at).as_seconds_f64().max(0.0));
        inner.oldest_age.record(age, &[]);
    }

    /// Whether these metrics are also pushed over OTLP (then the queue gauges
    /// need refreshing without a scrape).
    pub fn pushes_otlp(&self) -> bool {
        self.inner.pushes_otlp
    }

    /// The current values in the Prometheus text format.
    pub fn encode(&self) -> Result<String, MetricsError> {
        let families = self.inner.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .map_err(|e| MetricsError(e.to_string()))
    }

    /// Pushes the last values (when pushing over OTLP) and stops.
    pub fn shutdown(&self) {
        if self.inner.pushes_otlp
            && let Err(error) = self.inner.provider.shutdown()
        {
            tracing::warn!(%error, "could not push the last metrics to the OTLP endpoint");
        }
    }
}

impl Inner {
    fn new(
        meter: &Meter,
        provider: SdkMeterProvider,
        registry: prometheus::Registry,
        pushes_otlp: bool,
    ) -> Self {
        let counter = |name: &'static str, help: &'static str| {
            meter.u64_counter(name).with_description(help).build()
        };
        Self {
            provider,
            registry,
            pushes_otlp,
            tenants: Mutex::new(HashSet::new()),
            accepted: counter(
                "mailbridge.messages.accepted",
                "Messages accepted and queued.",
            ),
            sent: counter(
                "mailbridge.messages.sent",
                "Messages delivered to their transport's peer.",
            ),
            retried: counter(
                "mailbridge.messages.retried",
                "Failed attempts after which another is planned.",
            ),
            failed: counter(
                "mailbridge.messages.failed",
                "Messages given up (the dead-letter state).",
            ),
            replies: counter(
                "mailbridge.transport.replies",
                "Answers of transport peers to delivery attempts, by class.",
            ),
            meter: meter.clone(),
            token_refreshes: Mutex::new(None),
            rate_limited: counter(
                "mailbridge.rate_limited",
                "Messages held back by a rate limit (not attempts).",
            ),
            suppressed: counter(
                "mailbridge.messages.suppressed",
                "Messages not sent because every recipient is on the tenant's suppression list.",
            ),
            limited: counter(
                "mailbridge.messages.limited",
                "Messages refused (429) by a tenant's recipient_rate or template_rates.",
            ),
            delivery_events: counter(
                "mailbridge.delivery_events",
                "Providers' delivery events stored, by transport and type (delivered, deferred, bounced, complained).",
            ),
            duration: meter
                .f64_histogram("mailbridge.delivery.duration")
                .with_unit("s")
                .with_description("Time of one delivery attempt, whatever its outcome.")
                .with_boundaries(ATTEMPT_BUCKETS.to_vec())
                .build(),
            latency: meter
                .f64_histogram("mailbridge.time_to_delivery")
                .with_unit("s")
                .with_description("Time from acceptance to delivery of sent messages.")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            depth: meter
                .u64_gauge("mailbridge.queue.depth")
                .with_description("Messages in the store by status (sent ones are not counted).")
                .build(),
            oldest_age: meter
                .f64_gauge("mailbridge.queue.oldest_age")
                .with_unit("s")
                .with_description(
                    "Age of the oldest message not yet sent or failed; 0 when none waits.",
                )
                .build(),
            held: meter
                .u64_gauge("mailbridge.transport.held")
                .with_description(
                    "1 while deliveries through the transport wait because it is down (this process), 0 once it answers again.",
                )
                .build(),
            queue_read: tokio::sync::Mutex::new(None),
        }
    }

    /// The tenant label: the tenant itself while fewer than [`MAX_TENANTS`] were seen.
    fn tenant(&self, tenant: &str) -> KeyValue {
        let known = match self.tenants.lock() {
            Ok(mut seen) => {
                seen.contains(tenant)
                    || (seen.len() < MAX_TENANTS && seen.insert(tenant.to_owned()))
            }
            Err(_) => false,
        };
        let label = if known {
            tenant.to_owned()
        } else {
            OTHER_TENANT.to_owned()
        };
        KeyValue::new("tenant", label)
    }

    fn outcome_attrs(&self, tenant: &str, transport: &str, class: &'static str) -> [KeyValue; 3] {
        [
            self.tenant(tenant),
            KeyValue::new("transport", transport.to_owned()),
            KeyValue::new("class", class),
        ]
    }
}

#[cfg(test)]
mod tests;
