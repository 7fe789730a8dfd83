//! Carries the trace of the request that accepted a message to the message's
//! delivery, so that a Keycloak request and its email form one trace.
//!
//! The hand-off lives in this process's memory, bounded, and only while trace
//! export is on: a message delivered after a restart starts a trace of its own.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt as _;
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

/// Makes `span` (a delivery) a child of the trace that accepted message `id`,
/// if that trace is still remembered. Later attempts keep the same parent.
pub fn continue_trace(span: &Span, id: Uuid) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let parent = WAITING
        .lock()
        .ok()
        .and_then(|waiting| waiting.by_id.get(&id).cloned());
    if let Some(parent) = parent {
        // Fails only when the span is already started by another layer; then it keeps its own trace.
        let _ = span.set_parent(parent);
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
