//! Prometheus metrics, all prefixed `mailbridge_`, with low-cardinality labels
//! (beyond [`MAX_TENANTS`] distinct tenants, further ones count as `other`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most distinct tenant label values.
pub const MAX_TENANTS: usize = 100;
/// Upper bounds of the delivery-duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default)]
struct Inner {
    counters: BTreeMap<(&'static str, String), u64>,
    tenants: BTreeSet<String>,
    durations: BTreeMap<String, Histogram>,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The service's counters and histograms. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
}

/// A point-in-time view of the queue, read from the store when scraped.
#[derive(Debug, Clone, Default)]
pub struct QueueGauges {
    /// Messages per status.
    pub depth: BTreeMap<String, u64>,
    /// Age in seconds of the oldest message waiting to be sent (queued or retrying).
    pub oldest_waiting_seconds: f64,
}

impl Metrics {
    /// No metrics yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A message was accepted for `tenant`.
    pub fn accepted(&self, tenant: &str) {
        self.count(
            "mailbridge_messages_accepted_total",
            |t| format!("tenant=\"{t}\""),
            tenant,
        );
    }

    /// One delivery attempt ended: `outcome` is `sent`, `retried` or `failed`.
    pub fn attempt(&self, tenant: &str, transport: &str, outcome: &str, took: Duration) {
        let name = match outcome {
            "sent" => "mailbridge_messages_sent_total",
            "retried" => "mailbridge_messages_retried_total",
            _ => "mailbridge_messages_failed_total",
        };
        let transport = escape(transport);
        self.count(
            name,
            |t| format!("tenant=\"{t}\",transport=\"{transport}\""),
            tenant,
        );
        if let Ok(mut inner) = self.inner.lock() {
            let h = inner.durations.entry(transport).or_default();
            let secs = took.as_secs_f64();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    h.buckets[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    /// A message was held back by a rate limit.
    pub fn rate_limited(&self, tenant: &str, transport: &str) {
        let transport = escape(transport);
        self.count(
            "mailbridge_rate_limited_total",
            |t| format!("tenant=\"{t}\",transport=\"{transport}\""),
            tenant,
        );
    }

    fn count(&self, name: &'static str, labels: impl Fn(&str) -> String, tenant: &str) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let tenant = if inner.tenants.contains(tenant) || inner.tenants.len() < MAX_TENANTS {
            inner.tenants.insert(tenant.to_owned());
            escape(tenant)
        } else {
            "other".to_owned()
        };
        *inner.counters.entry((name, labels(&tenant))).or_default() += 1;
    }

    /// The Prometheus text exposition of everything, with `gauges` from the store.
    pub fn render(&self, gauges: &QueueGauges) -> String {
        let mut out = String::new();
        let Ok(inner) = self.inner.lock() else {
            return out;
        };
        let mut described = BTreeSet::new();
        for ((name, labels), value) in &inner.counters {
            if described.insert(*name) {
                let _ = writeln!(out, "# TYPE {name} counter");
            }
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP mailbridge_queue_depth Messages in the store by status."
        );
        let _ = writeln!(out, "# TYPE mailbridge_queue_depth gauge");
        for status in ["queued", "sending", "retrying", "sent", "failed"] {
            let n = gauges.depth.get(status).copied().unwrap_or(0);
            let _ = writeln!(out, "mailbridge_queue_depth{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP mailbridge_queue_oldest_age_seconds Age of the oldest message waiting to be sent."
        );
        let _ = writeln!(out, "# TYPE mailbridge_queue_oldest_age_seconds gauge");
        let _ = writeln!(
            out,
            "mailbridge_queue_oldest_age_seconds {:.3}",
            gauges.oldest_waiting_seconds
        );
        let _ = writeln!(
            out,
            "# HELP mailbridge_delivery_duration_seconds Time of one delivery attempt."
        );
        let _ = writeln!(out, "# TYPE mailbridge_delivery_duration_seconds histogram");
        for (transport, h) in &inner.durations {
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "mailbridge_delivery_duration_seconds_bucket{{transport=\"{transport}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "mailbridge_delivery_duration_seconds_bucket{{transport=\"{transport}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "mailbridge_delivery_duration_seconds_sum{{transport=\"{transport}\"}} {:.6}",
                h.sum
            );
            let _ = writeln!(
                out,
                "mailbridge_delivery_duration_seconds_count{{transport=\"{transport}\"}} {}",
                h.count
            );
        }
        out
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_caps_tenants() {
        let m = Metrics::new();
        m.accepted("acme");
        m.accepted("acme");
        m.attempt("acme", "default", "sent", Duration::from_millis(30));
        for i in 0..MAX_TENANTS + 5 {
            m.accepted(&format!("t{i}"));
        }
        let text = m.render(&QueueGauges::default());
        assert!(
            text.contains("mailbridge_messages_accepted_total{tenant=\"acme\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "mailbridge_messages_sent_total{tenant=\"acme\",transport=\"default\"} 1"
            )
        );
        assert!(
            text.contains("mailbridge_messages_accepted_total{tenant=\"other\"} 6"),
            "{text}"
        );
        assert!(text.contains(
            "mailbridge_delivery_duration_seconds_bucket{transport=\"default\",le=\"0.05\"} 1"
        ));
        assert!(text.contains(
            "mailbridge_delivery_duration_seconds_bucket{transport=\"default\",le=\"0.025\"} 0"
        ));
    }
}
