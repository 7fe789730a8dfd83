//! Carries the trace of the request that accepted a message to the message's
//! delivery, so that a Keycloak request and its email form one trace.
//!
//! The hand-off lives in this process's memory, bounded, and only while trace
//! export is on; a message delivered after a restart joins its trace through
//! the `traceparent` stored with it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use uuid::Uuid;

/// Most hand-offs kept; the oldest go first (their messages start their own trace).
const CAPACITY: usize = 10_000;

static ENABLED: AtomicBool = AtomicBool::new(false);
static WAITING: LazyLock<Mutex<Handoffs>> = LazyLock::new(|| Mutex::new(Handoffs::default()));

#[derive(Default)]
struct Handoffs {
    by_id: HashMap<Uuid, Context>,
    order: VecDeque<Uuid>,
}

/// Turns the hand-off on or off (on while spans are exported).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
    if !enabled && let Ok(mut waiting) = WAITING.lock() {
        *waiting = Handoffs::default();
    }
}

/// Remembers the current span's trace for message `id` (call where it is accepted).
pub fn remember(id: Uuid) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let context = Span::current().context();
    if !context.span().span_context().is_valid() {
        return;
    }
    let Ok(mut waiting) = WAITING.lock() else {
        return;
    };
    if waiting.by_id.insert(id, context).is_none() {
        waiting.order.push_back(id);
    }
    while waiting.order.len() > CAPACITY {
        if let Some(oldest) = waiting.order.pop_front() {
            waiting.by_id.remove(&oldest);
        }
    }
}

/// The current span's trace as a W3C `traceparent` value, stored with a
/// message accepted now; `None` while no trace is exported.
pub fn current_traceparent() -> Option<String> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    traceparent(&Span::current().context())
}

/// `context`'s span as a W3C `traceparent` value (version 00), if it has a valid one.
fn traceparent(context: &Context) -> Option<String> {
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// The trace a stored `traceparent` names, as the parent of a later span (a
/// delivery after a restart, a provider event); `None` if it is not valid.
pub fn stored_context(traceparent: &str) -> Option<Context> {
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    let context = TraceContextPropagator::new().extract(&carrier);
    context.span().span_context().is_valid().then_some(context)
}

/// Makes `span` (a delivery) a child of the trace that accepted message `id`:
/// the one remembered here, else the one `stored` with the message (after a
/// restart, or once the message was given up and queued again). Later
/// attempts keep the same parent.
pub fn continue_trace(span: &Span, id: Uuid, stored: Option<&str>) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let parent = WAITING
        .lock()
        .ok()
        .and_then(|waiting| waiting.by_id.get(&id).cloned())
        .or_else(|| stored.and_then(stored_context));
    if let Some(parent) = parent {
        // Fails only when the span is already started by another layer; then it keeps its own trace.
        let _ = span.set_parent(parent);
    }
}

/// Makes `span` (a provider's event about a message) a child of the trace
/// `stored` with the message, linked to the request that brought the event.
pub fn join_stored(span: &Span, stored: Option<&str>) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let Some(parent) = stored.and_then(stored_context) else {
        return;
    };
    let request = Span::current().context().span().span_context().clone();
    if span.set_parent(parent).is_ok() && request.is_valid() {
        span.add_link(request);
    }
}

/// Forgets message `id` (it is sent or failed: no attempt follows).
pub fn forget(id: Uuid) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    // Its id stays in `order` until evicted: cheaper than searching it out.
    if let Ok(mut waiting) = WAITING.lock() {
        waiting.by_id.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn a_stored_traceparent_names_the_same_trace_again() {
        let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let span_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        let remote = SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let context = Context::new().with_remote_span_context(remote);

        let text = traceparent(&context).unwrap();
        assert_eq!(
            text,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let again = stored_context(&text).unwrap();
        assert_eq!(again.span().span_context().trace_id(), trace_id);
        assert_eq!(again.span().span_context().span_id(), span_id);
    }

    #[test]
    fn nonsense_and_empty_trace_contexts_are_refused() {
        assert!(traceparent(&Context::new()).is_none());
        for text in [
            "",
            "00-xyz",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            assert!(stored_context(text).is_none(), "{text}");
        }
    }
}
