//! The HTTP API (v1): one file per resource; errors are problem+json.

pub mod admin;
pub mod caller;
pub mod compose;
pub mod error;
pub mod events;
pub mod health;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod request;
pub mod suppressions;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::auth::Verifier;
use crate::events::source::EventSources;
use crate::feedback::Feedback;
use crate::queue::JobStore;
use crate::queue::worker::Worker;
use crate::render::Renderer;
use crate::telemetry::Metrics;
use crate::tenant::Tenants;
use crate::webhooks::Webhooks;

/// Largest request body we accept.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The durable queue.
    pub store: Arc<dyn JobStore>,
    /// The template renderer.
    pub renderer: Arc<Renderer>,
    /// Token verification; `None` only with `--insecure-no-auth` on loopback.
    pub verifier: Option<Arc<Verifier>>,
    /// The delivery worker (for `?wait=true` and to wake it after a commit).
    pub worker: Arc<Worker>,
    /// Each tenant's transport and sender.
    pub tenants: Arc<Tenants>,
    /// Bound of `?wait=true`.
    pub wait_timeout: Duration,
    /// Most unsent messages per tenant before 429.
    pub max_pending: u64,
    /// False once shutdown began: `/readyz` answers 503.
    pub accepting: Arc<AtomicBool>,
    /// Counters and gauges served at `/metrics`.
    pub metrics: Metrics,
    /// The transports that take delivery events, with their keys.
    pub event_sources: Arc<EventSources>,
    /// Webhooks out to the tenants' applications.
    pub webhooks: Webhooks,
    /// Feedback into the tenants' Keycloak realms.
    pub feedback: Feedback,
    /// The operator's console; `None`: `/console/` answers 404.
    pub console: Option<Arc<crate::console::Console>>,
}
