//! The transports page: each transport's health from its attempts (last
//! delivery, last failure and its answer, failures since), its sending limit
//! and OAuth2 token from this process's memory (see [`live`]), and, for admins, a
//! test send to a typed address that shows the server's answer. The test
//! message is stored and attempted like any other (tenant `default`), so it
//! is in the message list and the transport's history too.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::pages::{stamp, store_down};
use super::session::same_token;
use super::view::error_page;
use super::{Visit, live};
use crate::api::AppState;
use crate::api::compose::{Content, message};
use crate::api::request::MessageRequest;
use crate::email::Mailbox;
use crate::queue::worker::AttemptOutcome;
use crate::queue::{ClaimedJob, Enqueued, Lane, NewJob, Origin};

/// One row of the page.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    last_sent_at: Option<String>,
    last_error_at: Option<String>,
    last_error: Option<String>,
    /// The last answer is not shown to this viewer: it may speak of
    /// another tenant's message (a refused recipient, a webhook's URL).
    answer_hidden: bool,
    consecutive_failures: u64,
    failing: bool,
    /// Deliveries through it wait: this process holds it as down.
    held: bool,
    limit: Option<live::Limit>,
    token: Option<live::Token>,
}

/// The result of a test send, shown on the page (here and in the studio).
#[derive(Debug, Default, Serialize)]
pub struct TestResult {
    transport: String,
    to: String,
    delivered: bool,
    answer: String,
}

impl TestResult {
    /// What `transport` answered to the test to `to`, as the page shows it.
    pub fn new(transport: String, to: String, outcome: AttemptOutcome) -> TestResult {
        let delivered = matches!(outcome, AttemptOutcome::Sent { .. });
        let answer = match outcome {
            AttemptOutcome::Sent {
                provider_message_id,
            } => format!(
                "delivered{}",
                provider_message_id
                    .map(|id| format!(" (id {id})"))
                    .unwrap_or_default()
            ),
            AttemptOutcome::Retrying { error, .. } => format!("{error} (will be retried)"),
            AttemptOutcome::Failed { error } => error,
            AttemptOutcome::Suppressed { .. } => {
                "not sent: the address is on the suppression list".into()
            }
            AttemptOutcome::Abandoned { reason } => reason,
        };
        tracing::info!(%transport, delivered, "console: test send");
        TestResult {
            transport,
            to,
            delivered,
            answer,
        }
    }
}

/// A test message: to whom, through which transport, as which tenant, what.
#[derive(Debug)]
pub struct TestMessage {
    /// The tenant it is stored under (its sender is used).
    pub tenant: String,
    /// The transport to attempt it through.
    pub transport: String,
    /// The one recipient.
    pub to: Mailbox,
    /// Subject and bodies.
    pub content: Content,
    /// The template it was rendered from, if any (the message's kind).
    pub kind: Option<String>,
}

async fn show(visit: &Visit, state: &AppState, result: Option<TestResult>) -> Response {
    let names = state.worker.transport_names();
    // Transports serve every tenant; their answers are shown only to those
    // who may see every tenant's messages.
    let every_tenant = visit.viewer().scope().is_none();
    let health = match state.store.transport_health(&names).await {
        Ok(h) => h,
        Err(e) => return store_down(&e),
    };
    let names_for_tests: Vec<String> = (names.iter())
        .filter(|name| Lane::of(name) == Lane::Messages)
        .cloned()
        .collect();
    let rows: Vec<Row> = names
        .into_iter()
        .map(|name| {
            let h = health.iter().find(|h| h.transport == name);
            Row {
                last_sent_at: h.and_then(|h| h.last_sent_at).map(stamp),
                last_error_at: h.and_then(|h| h.last_error_at).map(stamp),
                last_error: h
                    .and_then(|h| h.last_error.clone())
                    .filter(|_| every_tenant),
                answer_hidden: !every_tenant && h.is_some_and(|h| h.last_error.is_some()),
                consecutive_failures: h.map_or(0, |h| h.consecutive_failures),
                failing: h.is_some_and(|h| h.consecutive_failures > 0),
                held: state.worker.is_held(&name),
                limit: live::transport_limit(&state.worker, &name),
                token: live::token(&state.worker, &name),
                name,
            }
        })
        .collect();
    let context = minijinja::context! {
        viewer => visit.viewer().name.clone(),
        page => "transports",
        admin => visit.viewer().admin,
        rows => Serde(rows),
        mail_transports => names_for_tests,
        tenant_limits => Serde(live::tenant_limits(&state.worker, |t| visit.viewer().can_see(t))),
        result => Serde(result),
        csrf => visit.session.csrf.clone(),
    };
    visit.answer(visit.console.view.render("transports.html", context))
}

/// `GET /console/transports`.
pub async fn page(visit: Visit, State(state): State<AppState>) -> Response {
    show(&visit, &state, None).await
}

/// The test send's form.
#[derive(Debug, Deserialize)]
pub struct TestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    transport: String,
    #[serde(default)]
    to: String,
}

/// `POST /console/transports/test`: one message through the chosen transport, at once.
pub async fn test_send(
    visit: Visit,
    State(state): State<AppState>,
    Form(form): Form<TestForm>,
) -> Response {
    if !same_token(&form.csrf, &visit.session.csrf) || !visit.viewer().admin {
        return visit.answer(error_page(
            StatusCode::FORBIDDEN,
            "Only administrators may send a test, from a fresh page.",
        ));
    }
    // Webhooks and Keycloak feedback are not mail transports: a "test" through
    // them would post to a tenant's application with its signing secret.
    let notice = Lane::of(&form.transport) == Lane::Notices;
    if notice || !state.worker.transport_names().contains(&form.transport) {
        return visit.answer(error_page(StatusCode::NOT_FOUND, "No such transport."));
    }
    let to = match Mailbox::parse(form.to.trim()) {
        Ok(to) => to,
        Err(e) => {
            let detail = format!("The address cannot be used: {}", e.reason);
            return visit.answer(error_page(StatusCode::UNPROCESSABLE_ENTITY, &detail));
        }
    };
    let test = TestMessage {
        tenant: "default".into(),
        transport: form.transport.clone(),
        to,
        content: Content {
            subject: "mailbridge test message".into(),
            text: Some("This is a test message sent from the mailbridge console.\n".into()),
            html: None,
        },
        kind: None,
    };
    let outcome = match send(&state, test).await {
        Ok(outcome) => outcome,
        Err(refused) => return visit.answer(refused),
    };
    let result = TestResult::new(form.transport, form.to.trim().to_owned(), outcome);
    show(&visit, &state, Some(result)).await
}

/// Stores the test message claimed and attempts it now, within the wait bound.
/// The message is in the message list and the transport's history like any other.
pub async fn send(state: &AppState, test: TestMessage) -> Result<AttemptOutcome, Response> {
    let TestMessage {
        tenant,
        transport,
        to,
        content,
        kind,
    } = test;
    let request = MessageRequest {
        to: vec![to],
        tags: vec!["console-test".into()],
        ..MessageRequest::default()
    };
    let from = state.tenants.route(&tenant).from;
    let now = OffsetDateTime::now_utc();
    let outgoing = message(Uuid::now_v7(), &tenant, from, request, content);
    let job = NewJob {
        message: outgoing.clone(),
        idempotency_key: None,
        transport: transport.clone(),
        now,
        lease: Some(state.worker.lease()),
        origin: Origin {
            kind,
            ..Origin::default()
        },
        limits: Vec::new(),
    };
    let lease = match state.store.enqueue(job).await {
        Ok(Enqueued::Claimed(lease)) => lease,
        Ok(_) => return Err(error_page(StatusCode::CONFLICT, "The test was not stored.")),
        Err(e) => return Err(store_down(&e)),
    };
    let claimed = ClaimedJob {
        message: outgoing,
        transport,
        lease,
        created_at: now,
        traceparent: None,
    };
    let attempt = state.worker.spawn_attempt(claimed);
    Ok(
        match tokio::time::timeout(state.wait_timeout, attempt).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) | Err(_) => AttemptOutcome::Abandoned {
                reason: "no answer within the wait bound; the message stays queued".into(),
            },
        },
    )
}
