use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::*;
use crate::email::OutgoingMessage;
use crate::transport::memory::MemoryTransport;
use crate::transport::{Delivery, Transport, TransportError};

/// The value of the sample `line_start` (metric name and labels) in `text`.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
}

#[test]
fn counters_and_histogram_in_prometheus_text() {
    let metrics = Metrics::new();
    metrics.accepted("acme");
    metrics.accepted("acme");
    metrics.sent("acme", "default", Duration::from_millis(300));
    metrics.attempted("default", Duration::from_millis(40));
    metrics.rate_limited("acme", "m365");
    metrics.retried("acme", "default", "transient");
    metrics.failed("acme", "m365", "permanent");
    metrics.reply_class("default", "2xx");
    let text = metrics.encode().unwrap();

    assert_eq!(
        sample(
            &text,
            r#"mailbridge_messages_accepted_total{tenant="acme"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"mailbridge_messages_sent_total{tenant="acme",transport="default"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"mailbridge_messages_retried_total{class="transient",tenant="acme",transport="default"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"mailbridge_messages_failed_total{class="permanent",tenant="acme",transport="m365"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"mailbridge_transport_replies_total{class="2xx",transport="default"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"mailbridge_rate_limited_total{tenant="acme",transport="m365"}"#
        ),
        Some(1.0),
        "{text}"
    );
    // 0.3 s from acceptance falls in the 0.5 s bucket, not in the 0.25 s one.
    let bucket = |name: &str, le: &str| {
        sample(
            &text,
            &format!(r#"mailbridge_{name}_seconds_bucket{{transport="default",le="{le}"}}"#),
        )
    };
    assert_eq!(bucket("time_to_delivery", "0.25"), Some(0.0), "{text}");
    assert_eq!(bucket("time_to_delivery", "0.5"), Some(1.0), "{text}");
    // The 40 ms attempt falls in the 0.05 s bucket.
    assert_eq!(bucket("delivery_duration", "0.025"), Some(0.0), "{text}");
    assert_eq!(bucket("delivery_duration", "0.05"), Some(1.0), "{text}");
    assert!(
        text.contains("# TYPE mailbridge_delivery_duration_seconds histogram"),
        "{text}"
    );
    assert!(!text.contains("otel_scope"), "no scope labels: {text}");
    assert!(!text.contains("target_info"), "{text}");
}

#[test]
fn tenants_beyond_the_cap_count_as_other() {
    let metrics = Metrics::new();
    for n in 0..MAX_TENANTS {
        metrics.accepted(&format!("realm{n}"));
    }
    metrics.accepted("one-too-many");
    metrics.accepted("another");
    metrics.accepted("realm0");
    let text = metrics.encode().unwrap();
    assert_eq!(
        sample(
            &text,
            r#"mailbridge_messages_accepted_total{tenant="other"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"mailbridge_messages_accepted_total{tenant="realm0"}"#
        ),
        Some(2.0)
    );
    assert!(!text.contains("one-too-many"));
}

#[test]
fn queue_gauges_cover_every_unfinished_status() {
    let metrics = Metrics::new();
    let now = OffsetDateTime::now_utc();
    let stats = QueueStats {
        queued: 3,
        retrying: 1,
        oldest_unsent: Some(now - time::Duration::seconds(90)),
        ..QueueStats::default()
    };
    metrics.observe_queue(&stats, now);
    let text = metrics.encode().unwrap();
    assert_eq!(
        sample(&text, r#"mailbridge_queue_depth{status="queued"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"mailbridge_queue_depth{status="retrying"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"mailbridge_queue_depth{status="sending"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"mailbridge_queue_depth{status="failed"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "mailbridge_queue_oldest_age_seconds"),
        Some(90.0),
        "{text}"
    );

    metrics.observe_queue(&QueueStats::default(), now);
    let text = metrics.encode().unwrap();
    assert_eq!(
        sample(&text, "mailbridge_queue_oldest_age_seconds"),
        Some(0.0),
        "an empty queue is not old"
    );
}

/// A transport that only counts token fetches.
#[derive(Debug, Default)]
struct FetchingTokens(AtomicU64);

#[async_trait]
impl Transport for FetchingTokens {
    async fn send(&self, _: &OutgoingMessage) -> Result<Delivery, TransportError> {
        Ok(Delivery::default())
    }

    fn token_fetches(&self) -> Option<u64> {
        Some(self.0.load(Ordering::SeqCst))
    }
}

#[test]
fn token_refreshes_are_read_from_the_oauth_transports() {
    let m365 = Arc::new(FetchingTokens::default());
    let mut transports = Transports::default();
    transports.insert("m365", m365.clone());
    transports.insert("default", Arc::new(MemoryTransport::new()));
    let metrics = Metrics::new();
    metrics.watch_token_refreshes(&transports);

    m365.0.store(1, Ordering::SeqCst);
    let text = metrics.encode().unwrap();
    let m365_line = r#"mailbridge_oauth_token_refreshes_total{transport="m365"}"#;
    assert_eq!(sample(&text, m365_line), Some(1.0), "{text}");
    assert!(
        !text.contains(r#"token_refreshes_total{transport="default"}"#),
        "a transport without OAuth2 has no series: {text}"
    );

    m365.0.store(3, Ordering::SeqCst);
    let text = metrics.encode().unwrap();
    assert_eq!(sample(&text, m365_line), Some(3.0), "{text}");
}

#[test]
fn a_held_transport_is_a_gauge() {
    let metrics = Metrics::new();
    metrics.transport_held("relay", true);
    let text = metrics.encode().unwrap();
    let line = r#"mailbridge_transport_held{transport="relay"}"#;
    assert_eq!(sample(&text, line), Some(1.0), "{text}");
    metrics.transport_held("relay", false);
    let text = metrics.encode().unwrap();
    assert_eq!(sample(&text, line), Some(0.0), "{text}");
}

#[tokio::test]
async fn the_queue_figures_are_read_by_one_scrape_at_a_time_and_once_a_second() {
    let metrics = Metrics::new();
    let read = metrics.queue_read_due().expect("the first read");
    assert!(
        metrics.queue_read_due().is_none(),
        "a second read while one runs"
    );
    drop(read);
    assert!(
        metrics.queue_read_due().is_none(),
        "a read within the second"
    );
    tokio::time::sleep(QUEUE_READ_EVERY).await;
    assert!(metrics.queue_read_due().is_some(), "a read a second later");
}
