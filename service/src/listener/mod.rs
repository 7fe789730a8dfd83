//! Accepting HTTP connections within the serving limits (the service faces
//! untrusted networks): a connection sends its request head within the
//! header timeout, its body within the body timeout (408 beyond), stays idle
//! between requests at most the idle timeout, and beyond the connection cap
//! a few more connections get one quick answer (the health probes as usual,
//! anything else 503; at most a few per host) while the rest are closed at
//! once, so that a crowd of idle or slow clients cannot exhaust file
//! descriptors or threads, nor make an orchestrator's probes fail and
//! restart a busy replica.

mod clock;
mod overflow;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt as _;

use clock::{ConnectionClock, Watched};
use overflow::OverflowLane;

use crate::api::MAX_BODY_BYTES;
use crate::api::error::ApiError;

/// How long the accept loop waits after a failed accept (out of file
/// descriptors, say) before trying again, instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a keep-alive connection may stay idle between requests: longer
/// than clients keep theirs (Java's HttpClient: 30 s), so that the client,
/// not the server, closes an idle connection and no request meets a closing one.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The time an overflow connection has to send its request head.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Memory all request bodies may take together while they are read and
/// handled: 64 bodies of the largest size. Bodies are read before any route
/// (so that the body timeout holds for each of them), before a token or a
/// signature is checked; without a bound, a few thousand connections each
/// sending most of 1 MiB would hold gigabytes. Beyond it a request gets 503
/// (Retry-After) and its connection closes; a Keycloak email's 4 KB takes
/// 1/16,000 of it.
pub const BODY_MEMORY: usize = 64 * MAX_BODY_BYTES;

/// The unit the body budget is counted in.
const BUDGET_UNIT: usize = 1024;

/// Bodies up to this size may take any of the budget; a larger one only
/// while [`SMALL_BODY_RESERVE`] stays free beside it, so that clients
/// sending large bodies slowly cannot crowd out Keycloak's small ones.
const SMALL_BODY: usize = 64 * 1024;

/// The part of [`BODY_MEMORY`] that only bodies of at most 64 KiB take.
pub const SMALL_BODY_RESERVE: usize = BODY_MEMORY / 8;

/// hyper's read buffer, which holds a request head for as long as its body
/// is read: a head under 32 KiB is always read, one that does not fit
/// after a read past it (at most about twice as much) gets `431`. hyper's
/// default let each of thousands of slow connections hold about 400 KiB.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// The paths an overflow connection is served as usual: the probes, so that
/// a replica that is busy is not taken for a dead one.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// The serving limits of DESIGN.md.
#[derive(Debug, Clone, Copy)]
pub struct ServingLimits {
    /// Time to send a complete request head, from its first byte (from the
    /// accept for a connection's first request).
    pub header_timeout: Duration,
    /// Time a keep-alive connection may stay idle between requests.
    pub idle_timeout: Duration,
    /// Time to send the whole body, counted from the end of the head.
    pub body_timeout: Duration,
    /// Open connections beyond which new ones are closed at once.
    pub max_connections: usize,
    /// Once shutdown begins, how long open connections may take to finish
    /// their requests (a client that never reads its answer holds its
    /// connection); those still open after it are dropped.
    pub drain_timeout: Duration,
}

/// How long connections may take to finish once shutdown begins, beyond
/// the longest a request may take (`?wait=true`).
pub const DRAIN_MARGIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` within `limits` until `shutdown` completes;
/// then stops accepting and waits for open connections to finish their
/// requests (idle ones close at once), at most `limits.drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServingLimits,
    shutdown: impl Future<Output = ()>,
) {
    let budget = Arc::new(Semaphore::new(BODY_MEMORY / BUDGET_UNIT));
    let app = app.layer(middleware::from_fn(move |req, next| {
        body_deadline(limits.body_timeout, budget.clone(), req, next)
    }));
    let overflow_app = app.clone().layer(middleware::from_fn(probes_only));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let overflow = Arc::new(OverflowLane::default());
    let graceful = GracefulShutdown::new();
    // No timer for hyper: the connection's clock bounds heads and idle time.
    let mut http = http1::Builder::new();
    http.max_buf_size(MAX_HEAD_BYTES);
    let mut one_request = http.clone();
    one_request.keep_alive(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (slot, connection, clock) = if let Ok(slot) = slots.clone().try_acquire_owned() {
            let clock = ConnectionClock::start(limits.header_timeout, limits.idle_timeout);
            let connection = serve_connection(&http, &graceful, stream, &app, clock.clone());
            (Place::Main { _slot: slot }, connection, clock)
        } else if let Some(place) = overflow.enter(peer.ip()) {
            let clock = ConnectionClock::start(
                limits.header_timeout.min(OVERFLOW_HEADER_TIMEOUT),
                Duration::ZERO,
            );
            let connection = serve_connection(
                &one_request,
                &graceful,
                stream,
                &overflow_app,
                clock.clone(),
            );
            (Place::Overflow { _place: place }, connection, clock)
        } else {
            tracing::debug!(
                max = limits.max_connections,
                "too many open connections: closing a new one"
            );
            continue;
        };
        tokio::spawn(async move {
            let _slot = slot;
            // Dropping a connection that used up its time closes it.
            tokio::select! {
                () = connection => {}
                () = clock.expired() => {}
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open {} after shutdown began are dropped",
            humantime::format_duration(limits.drain_timeout)
        );
    }
}

/// A connection's place, given back when it closes.
enum Place {
    Main { _slot: OwnedSemaphorePermit },
    Overflow { _place: overflow::Place },
}

/// Serves the requests of one connection, keeping its clock; ends early
/// (idle ones at once) when `graceful` shuts down.
fn serve_connection(
    http: &http1::Builder,
    graceful: &GracefulShutdown,
    stream: TcpStream,
    app: &Router,
    clock: Arc<ConnectionClock>,
) -> impl Future<Output = ()> + Send + 'static {
    let app = app.clone();
    let watched = clock.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        clock.serving();
        let (clock, app) = (clock.clone(), app.clone());
        async move {
            let response = app.oneshot(req).await;
            clock.served();
            response
        }
    });
    let io = TokioIo::new(Watched {
        io: stream,
        clock: watched,
    });
    let connection = graceful.watch(http.serve_connection(io, service));
    async move {
        // A client that breaks off is no error of ours.
        let _ = connection.await;
    }
}

/// On a connection beyond the cap: the probes as usual, anything else 503
/// (nothing was stored, so a client may send it elsewhere or again).
async fn probes_only(req: Request, next: Next) -> Response {
    if PROBES.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    closing(ApiError::unavailable(
        "too many open connections; try again shortly",
    ))
}

/// Reads the whole body within `timeout` (408 beyond), at most
/// [`MAX_BODY_BYTES`] (413 beyond, at once when announced) and within the
/// `budget` of [`BODY_MEMORY`] (503 beyond), then hands the request on with
/// its body in memory; the body's share of the budget comes back when the
/// answer is ready.
async fn body_deadline(
    timeout: Duration,
    budget: Arc<Semaphore>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return closing(too_large());
    }
    match tokio::time::timeout(timeout, collect(body, announced, budget)).await {
        Ok(Ok((bytes, share))) => {
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            drop(share);
            response
        }
        Ok(Err(refusal)) => closing(refusal),
        Err(_) => closing(ApiError::body_timeout(format!(
            "the request body did not arrive within {}",
            humantime::format_duration(timeout)
        ))),
    }
}

/// The body, and its share of `budget`: the memory its buffer takes, taken
/// as its bytes arrive. What a client announces costs nothing until it is
/// sent: a connection announcing 1 MiB and sending one byte holds 1 KiB.
async fn collect(
    body: Body,
    announced: Option<u64>,
    budget: Arc<Semaphore>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), ApiError> {
    let mut chunks = body.into_data_stream();
    let mut collected = Vec::new();
    let mut share: Option<OwnedSemaphorePermit> = None;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk
            .map_err(|_| ApiError::bad_request("the request body could not be read to its end"))?;
        let length = collected.len() + chunk.len();
        if length > MAX_BODY_BYTES {
            return Err(too_large());
        }
        if length > collected.capacity() {
            let room = room_for(length, collected.capacity(), announced);
            let held = share.as_ref().map_or(0, |s| s.num_permits());
            let needed = room.div_ceil(BUDGET_UNIT).saturating_sub(held);
            if needed > 0 {
                let more = take(&budget, needed, room > SMALL_BODY).ok_or_else(busy)?;
                match &mut share {
                    Some(share) => share.merge(more),
                    None => share = Some(more),
                }
            }
            collected.reserve_exact(room - collected.len());
        }
        collected.extend_from_slice(&chunk);
    }
    Ok((Bytes::from(collected), share))
}

/// The buffer for a body grown to `length` bytes: doubled (so a body that
/// comes in many pieces is copied a few times, not once per piece), but
/// never past the length announced, while the body keeps to it.
fn room_for(length: usize, capacity: usize, announced: Option<u64>) -> usize {
    let doubled = capacity
        .saturating_mul(2)
        .clamp(length, MAX_BODY_BYTES.max(length));
    match announced.and_then(|n| usize::try_from(n).ok()) {
        Some(n) if n >= length => doubled.min(n),
        _ => doubled,
    }
}

/// `units` of `budget`, or none; a large body only while the reserve for
/// small ones stays free.
fn take(budget: &Arc<Semaphore>, units: usize, large: bool) -> Option<OwnedSemaphorePermit> {
    let reserve = if large {
        SMALL_BODY_RESERVE / BUDGET_UNIT
    } else {
        0
    };
    if budget.available_permits() < units.checked_add(reserve)? {
        return None;
    }
    budget
        .clone()
        .try_acquire_many_owned(u32::try_from(units).ok()?)
        .ok()
}

fn busy() -> ApiError {
    // Once in ten seconds at most: a flood of bodies is one event to the log.
    static WARNED: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    if let Ok(mut warned) = WARNED.lock()
        && warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(10))
    {
        *warned = Some(std::time::Instant::now());
        tracing::warn!(
            budget_mib = BODY_MEMORY >> 20,
            "request bodies in memory reached their bound: answering 503"
        );
    }
    ApiError::unavailable("too many request bodies are being read at once; try again shortly")
}

fn too_large() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is larger than 1 MiB",
    )
}

/// The answer, and the connection closes: what is left of the body is not read.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Raises the soft limit of open files to the hard one, so that the
/// connection cap, not the process's default soft limit (often 1024), is
/// what bounds connections. Failing to do so is not fatal.
#[cfg(unix)]
pub fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if let Err(error) = setrlimit(Resource::Nofile, raised) {
        tracing::warn!(%error, "could not raise the limit of open files");
    }
}

/// Nothing to raise on this platform.
#[cfg(not(unix))]
pub fn raise_open_files_limit() {}
