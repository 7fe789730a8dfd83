//! `POST /v1/messages`, `GET /v1/messages/{id}` and `POST /v1/render`.

use std::future::Future;

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::AppState;
use super::compose::{self, Content};
use super::error::ApiError;
use super::request::{MessageRequest, check_idempotency_key};
use super::suppressions;
use crate::auth::Caller;
use crate::events::DeliveryEvent;
use crate::limits::Limit;
use crate::queue::worker::AttemptOutcome;
use crate::queue::{ClaimedJob, Enqueued, Lane, Lease, MessageRecord, NewJob, Origin, Status};
use crate::telemetry;

/// JSON in, with every rejection as problem+json.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    /// A body declared plain `application/json` is parsed straight away;
    /// only one that does not parse goes through axum's parser, whose
    /// rejection names where the fault is (tracking that path costs every
    /// request otherwise). Other content types are axum's to judge.
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        if !plain_json(req.headers()) {
            let Json(value) = Json::<T>::from_request(req, state).await?;
            return Ok(Self(value));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(axum::extract::rejection::JsonRejection::from)?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(Self(value)),
            Err(_) => {
                let Json(value) = Json::<T>::from_bytes(&bytes)?;
                Ok(Self(value))
            }
        }
    }
}

/// Whether the body is declared JSON in its one common spelling.
fn plain_json(headers: &HeaderMap) -> bool {
    let declared = headers.get(axum::http::header::CONTENT_TYPE);
    declared.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.eq_ignore_ascii_case("application/json")
            || v.eq_ignore_ascii_case("application/json; charset=utf-8")
    })
}

/// A query string, with every rejection as problem+json.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Query of `POST /v1/messages`.
#[derive(Debug, Default, Deserialize)]
pub struct SendQuery {
    /// Deliver before answering.
    #[serde(default)]
    pub wait: bool,
}

/// The answer to `POST /v1/messages`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accepted {
    /// Our id of the message.
    pub id: Uuid,
    /// `queued`, `sent`, `suppressed`, or for a repeated idempotency key the first message's status.
    pub status: Status,
    /// Recipients left out because they are on the tenant's suppression list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed_recipients: Vec<String>,
}

impl Accepted {
    /// Message `id` in `status`, nobody suppressed.
    pub fn new(id: Uuid, status: Status) -> Self {
        Self {
            id,
            status,
            suppressed_recipients: Vec::new(),
        }
    }
}

/// `POST /v1/messages`: validate, render, commit durably, answer 202.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SendQuery>,
    headers: HeaderMap,
    ApiJson(mut req): ApiJson<MessageRequest>,
) -> Result<Response, ApiError> {
    req.validate()?;
    let tenant = caller.tenant_for(req.tenant.as_deref())?;
    telemetry::request::record_tenant(&tenant);
    req.idempotency_key = idempotency_key(&headers, req.idempotency_key.take())?;
    let route = state.tenants.route(&tenant);
    let from = route
        .sender(req.from.as_ref())
        .map_err(ApiError::forbidden)?;
    // The envelope sender (where bounces go, what SPF checks) is held to the
    // same domain as the `From`.
    if let Some(envelope_from) = &req.envelope_from {
        route
            .envelope_sender(envelope_from)
            .map_err(ApiError::forbidden)?;
    }
    // Recipients and limits first: they do not depend on the content, and
    // a message that is then only rendered can be handed to the store's
    // writers by the thread that renders it.
    let suppressed = suppressions::leave_out(state.store.as_ref(), &tenant, &mut req).await?;
    // A message to suppressed addresses only is not counted.
    let limits = match suppressed.everyone {
        true => Vec::new(),
        false => super::limits::cells(&state, &tenant, &req),
    };
    let limit_kinds: Vec<Limit> = limits.iter().map(|c| c.limit).collect();
    if state.store.pending_count(&tenant).await? >= state.max_pending {
        return Err(ApiError::too_many(
            format!(
                "tenant `{tenant}` has {} or more messages waiting; try again later",
                state.max_pending
            ),
            std::time::Duration::from_secs(30),
        ));
    }
    let now = OffsetDateTime::now_utc();
    let id = Uuid::now_v7();
    let origin = Origin {
        realm: req.metadata.get("realm").cloned(),
        kind: req.template.clone(),
        traceparent: telemetry::handoff::current_traceparent(),
    };
    let template = origin.kind.clone();
    let (enqueued, then) = if query.wait || suppressed.everyone {
        let (req, content) = compose::render_owned(state.renderer.clone(), &tenant, req).await?;
        let idempotency_key = req.idempotency_key.clone();
        let message = compose::message(id, &tenant, from, req, content);
        // `?wait=true` stores the message already claimed, so that no worker
        // takes it while this request's attempt runs.
        // A message to suppressed addresses only is stored claimed, then settled as `suppressed`.
        let lease = Some(state.worker.lease());
        // Only `?wait=true` delivers the message itself afterwards.
        let kept = query
            .wait
            .then(|| (message.clone(), origin.traceparent.clone()));
        let job = NewJob {
            message,
            idempotency_key,
            transport: route.transport.clone(),
            now,
            lease,
            origin,
            limits,
        };
        if let Some((message, traceparent)) = kept {
            let worker = state.worker.clone();
            let transport = route.transport.clone();
            commit_then(&state, job, move |lease| async move {
                Then::Attempt(worker.spawn_attempt(ClaimedJob {
                    message,
                    transport,
                    lease,
                    created_at: now,
                    traceparent,
                }))
            })
            .await?
        } else {
            let (settling, tenant) = (state.clone(), tenant.clone());
            let addresses = suppressed.addresses.clone();
            commit_then(&state, job, move |lease| async move {
                Then::Settled(suppressions::settle(&settling, &tenant, &lease, addresses).await)
            })
            .await?
        }
    } else {
        let job = Queued {
            tenant: tenant.clone(),
            from,
            transport: route.transport.clone(),
            id,
            now,
            origin,
            limits,
        };
        (render_and_hand_over(&state, job, req).await?, None)
    };
    match enqueued {
        Enqueued::Limited { wait, index } => {
            let limit = limit_kinds.get(index).copied().unwrap_or(Limit::Recipient);
            Err(super::limits::refused(
                &state,
                &tenant,
                template.as_deref(),
                limit,
                wait,
            ))
        }
        Enqueued::Duplicate(first) => {
            let status = state
                .store
                .get(first)
                .await?
                .map_or(Status::Queued, |r| r.status);
            telemetry::request::record_message(first);
            telemetry::request::record_outcome("duplicate");
            tracing::info!(message_id = %first, %tenant, "idempotent repeat; nothing queued");
            Ok((StatusCode::OK, Json(Accepted::new(first, status))).into_response())
        }
        Enqueued::Claimed(lease) => match then {
            Some(Then::Settled(answer)) => answer,
            Some(Then::Attempt(attempt)) => {
                accepted(&state, &tenant, lease.id);
                deliver_now(&state, lease.id, attempt, suppressed.addresses).await
            }
            None => Err(ApiError::internal(
                &"the store claimed a message that was not to be delivered now",
            )),
        },
        Enqueued::Created(id) => {
            accepted(&state, &tenant, id);
            telemetry::request::record_outcome("queued");
            tracing::info!(message_id = %id, %tenant, "accepted");
            state.worker.notifier().due(Lane::Messages);
            let answer = Accepted {
                suppressed_recipients: suppressed.addresses,
                ..Accepted::new(id, Status::Queued)
            };
            Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
        }
    }
}

/// What a message to be queued (not delivered at once) is stored with,
/// besides its rendered content.
struct Queued {
    tenant: String,
    from: crate::email::Mailbox,
    transport: String,
    id: Uuid,
    now: OffsetDateTime,
    origin: Origin,
    limits: Vec<crate::limits::LimitCell>,
}

/// Renders `req` on a rendering thread, which packs the message and hands
/// it to the store's writers itself; the request's task is woken once, by
/// the commit (or by the rendering's refusal).
async fn render_and_hand_over(
    state: &AppState,
    queued: Queued,
    req: MessageRequest,
) -> Result<Enqueued, ApiError> {
    let (ticket, receipt) = crate::queue::ticket();
    // What became of the rendering: `None` handed over (the store answers),
    // a refusal, or nothing at all when the rendering panicked.
    let (rendering, rendered) = oneshot::channel::<Option<ApiError>>();
    let (store, renderer) = (state.store.clone(), state.renderer.clone());
    let (tenant, transport) = (queued.tenant.clone(), queued.transport.clone());
    crate::render::threads::spawn(move || {
        // The caller is gone: nothing to render or store.
        if ticket.is_closed() {
            return;
        }
        match compose::content(&renderer, &queued.tenant, &req) {
            Ok(content) => {
                let idempotency_key = req.idempotency_key.clone();
                let job = NewJob {
                    message: compose::message(queued.id, &queued.tenant, queued.from, req, content),
                    idempotency_key,
                    transport: queued.transport,
                    now: queued.now,
                    lease: None,
                    origin: queued.origin,
                    limits: queued.limits,
                };
                store.hand_over(job, ticket);
                let _ = rendering.send(None);
            }
            // The refusal first: the ticket dropped after it wakes the task.
            Err(error) => {
                let _ = rendering.send(Some(error));
                drop(ticket);
            }
        }
    })
    .map_err(|e| ApiError::internal(&e))?;
    match state.store.handed_over(&tenant, &transport, receipt).await {
        Ok(enqueued) => Ok(enqueued),
        Err(error) => match rendered.await {
            Ok(None) => Err(error.into()),
            Ok(Some(refusal)) => Err(refusal),
            Err(_) => Err(ApiError::internal(&crate::render::threads::Lost)),
        },
    }
}

/// Commits `job` (stored claimed) in a task of its own, which then does
/// `then` with its lease: a client that leaves while the group commits does
/// not leave the message claimed with nothing done until the lease ends.
async fn commit_then<F, Fut>(
    state: &AppState,
    job: NewJob,
    then: F,
) -> Result<(Enqueued, Option<Then>), ApiError>
where
    F: FnOnce(Lease) -> Fut + Send + 'static,
    Fut: Future<Output = Then> + Send,
{
    let store = state.store.clone();
    tokio::spawn(async move {
        let enqueued = store.enqueue(job).await?;
        let Enqueued::Claimed(lease) = enqueued else {
            return Ok((enqueued, None));
        };
        Ok((enqueued, Some(then(lease).await)))
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
}

/// What the task that committed a claimed message did next.
enum Then {
    /// `?wait=true`: its attempt runs; the answer waits for this outcome.
    Attempt(oneshot::Receiver<AttemptOutcome>),
    /// Every recipient suppressed: settled as `suppressed`, with this answer.
    Settled(Result<Response, ApiError>),
}

/// Counts an accepted message and hands its trace on to its delivery.
fn accepted(state: &AppState, tenant: &str, id: Uuid) {
    state.metrics.accepted(tenant);
    telemetry::request::record_message(id);
    telemetry::handoff::remember(id);
}

/// `?wait=true`: the worker's own attempt, started at once; the answer waits
/// for it up to the wait timeout. The attempt is a task of its own: a client
/// that goes away, or a timeout, leaves it running to its recorded end.
async fn deliver_now(
    state: &AppState,
    id: Uuid,
    attempt: oneshot::Receiver<AttemptOutcome>,
    suppressed_recipients: Vec<String>,
) -> Result<Response, ApiError> {
    let outcome = match tokio::time::timeout(state.wait_timeout, attempt).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(_)) => Ok(AttemptOutcome::Abandoned {
            reason: "the attempt ended without an answer".into(),
        }),
        Err(elapsed) => Err(elapsed),
    };
    telemetry::request::record_outcome(match &outcome {
        Ok(AttemptOutcome::Sent { .. }) => "sent",
        Ok(AttemptOutcome::Retrying { .. }) => "retrying",
        Ok(AttemptOutcome::Failed { .. }) => "failed",
        Ok(AttemptOutcome::Suppressed { .. }) => "suppressed",
        Ok(AttemptOutcome::Abandoned { .. }) => "abandoned",
        Err(_) => "timeout",
    });
    match outcome {
        Ok(AttemptOutcome::Sent { .. }) => {
            let answer = Accepted {
                suppressed_recipients,
                ..Accepted::new(id, Status::Sent)
            };
            Ok((StatusCode::OK, Json(answer)).into_response())
        }
        // Suppressed between the accept's check and the attempt.
        Ok(AttemptOutcome::Suppressed { recipients }) => {
            let answer = Accepted {
                suppressed_recipients: recipients,
                ..Accepted::new(id, Status::Suppressed)
            };
            Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
        }
        Ok(AttemptOutcome::Retrying { error, .. }) => Err(ApiError::bad_gateway(format!(
            "delivery failed, will be retried (message {id}): {error}"
        ))),
        Ok(AttemptOutcome::Failed { error }) => Err(ApiError::bad_gateway(format!(
            "delivery failed permanently (message {id}): {error}"
        ))),
        Ok(AttemptOutcome::Abandoned { reason }) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("not delivered yet ({reason}); message {id} stays queued and will be retried"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "not delivered within {}s; message {id} stays queued and will be retried",
                state.wait_timeout.as_secs()
            ),
        )),
    }
}

fn idempotency_key(headers: &HeaderMap, field: Option<String>) -> Result<Option<String>, ApiError> {
    let header = match headers.get("idempotency-key") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| {
                    ApiError::bad_request("Idempotency-Key header must be printable ASCII")
                })?
                .to_owned(),
        ),
        None => None,
    };
    match (header, field) {
        (Some(h), Some(f)) if h != f => Err(ApiError::bad_request(
            "Idempotency-Key header and `idempotency_key` field differ",
        )),
        (Some(key), _) | (None, Some(key)) => {
            check_idempotency_key(&key)?;
            Ok(Some(key))
        }
        (None, None) => Ok(None),
    }
}

/// One message as `GET /v1/messages/{id}` shows it: its status row and what
/// the provider reported since.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageView {
    /// The status row.
    #[serde(flatten)]
    pub record: MessageRecord,
    /// The latest delivery event, if any.
    pub delivery: Option<DeliveryEvent>,
    /// Every delivery event, oldest first.
    pub events: Vec<DeliveryEvent>,
}

/// `GET /v1/messages/{id}`: the status row and delivery events (a tenant sees only its own).
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
) -> Result<Json<MessageView>, ApiError> {
    let Path(id) = path.map_err(|_| ApiError::not_found("no such message (ids are UUIDs)"))?;
    match state.store.get(id).await? {
        Some(record) if caller.admin || record.tenant == caller.tenant => {
            let events = state.store.events(id).await?;
            Ok(Json(MessageView {
                record,
                delivery: events.last().cloned(),
                events,
            }))
        }
        _ => Err(ApiError::not_found(format!("no message {id}"))),
    }
}

/// `POST /v1/render`: the same body as a message; answers the content without sending.
pub async fn render(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<MessageRequest>,
) -> Result<Json<Content>, ApiError> {
    if let Some(tenant) = &req.tenant {
        super::request::check_tenant_name(tenant)?;
    }
    let tenant = caller.tenant_for(req.tenant.as_deref())?;
    let mut probe = req.clone();
    // Recipients do not matter for rendering.
    if probe.to.is_empty() {
        probe
            .to
            .push(crate::email::Mailbox::new("render@example.invalid"));
    }
    probe.validate()?;
    Ok(Json(
        compose::render_content(state.renderer.clone(), &tenant, &req).await?,
    ))
}
