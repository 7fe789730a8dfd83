//! The pages: the overview, the message list and one message's timeline
//! (its entries come from [`super::timeline`]).
//! A viewer sees only the tenants their roles give; another tenant's message
//! answers 404, as if it did not exist.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Visit;
use super::timeline::timeline;
use super::view::{error_page, not_found};
use crate::api::AppState;
use crate::queue::history::{RecipientMatch, Search};
use crate::queue::{MessageRecord, Status, StoreError};

/// Rows per page of the message list.
pub const PAGE_SIZE: u32 = 50;

/// The statuses in the order the pages show them.
const STATUSES: [Status; 5] = [
    Status::Queued,
    Status::Sending,
    Status::Retrying,
    Status::Sent,
    Status::Failed,
];

/// The answer when the store cannot be read.
pub fn store_down(e: &StoreError) -> Response {
    tracing::warn!(error = %e, "the console could not read the queue store");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The queue store does not answer; try again shortly.",
    )
}

/// One line of a breakdown: a name and its count per status.
#[derive(Debug, Default, Serialize)]
struct Line {
    name: String,
    counts: BTreeMap<&'static str, u64>,
    total: u64,
    failing: bool,
}

fn add(lines: &mut BTreeMap<String, Line>, name: &str, status: Status, count: u64) {
    let line = lines.entry(name.to_owned()).or_insert_with(|| Line {
        name: name.to_owned(),
        ..Line::default()
    });
    *line.counts.entry(status.as_str()).or_default() += count;
    line.total += count;
    // Messages waiting for another try mean the transport is failing now.
    line.failing |= status == Status::Retrying && count > 0;
}

/// `?part=figures` asks for the figures alone (the page refreshes them).
#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    part: Option<String>,
}

/// `GET /console/`: the queue by status, tenant and transport.
pub async fn overview(
    visit: Visit,
    State(state): State<AppState>,
    Query(query): Query<OverviewQuery>,
) -> Response {
    let now = OffsetDateTime::now_utc();
    let scope = visit.viewer().scope();
    let hour_ago = now - time::Duration::hours(1);
    let breakdown = match state.store.breakdown(scope.as_deref(), hour_ago).await {
        Ok(b) => b,
        Err(e) => return store_down(&e),
    };
    let (mut tenants, mut transports) = (BTreeMap::new(), BTreeMap::new());
    let mut totals: BTreeMap<&'static str, u64> =
        STATUSES.iter().map(|s| (s.as_str(), 0)).collect();
    for (tenant, transport, status, count) in &breakdown.counts {
        add(&mut tenants, tenant, *status, *count);
        add(&mut transports, transport, *status, *count);
        *totals.entry(status.as_str()).or_default() += count;
    }
    let oldest_unsent = breakdown.oldest_unsent.map(|t| {
        humantime::format_duration(std::time::Duration::from_secs(
            (now - t).whole_seconds().max(0).unsigned_abs(),
        ))
        .to_string()
    });
    let context = minijinja::context! {
        viewer => visit.viewer().name.clone(),
        page => "overview",
        statuses => STATUSES.map(Status::as_str),
        totals => Serde(totals),
        tenants => Serde(tenants.into_values().collect::<Vec<_>>()),
        transports => Serde(transports.into_values().collect::<Vec<_>>()),
        sent_last_hour => breakdown.sent_since,
        oldest_unsent,
        csrf => visit.session.csrf.clone(),
    };
    let template = match query.part.as_deref() {
        Some("figures") => "figures.html",
        _ => "overview.html",
    };
    visit.answer(visit.console.view.render(template, context))
}

/// The list's filters, as the form sends them.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Filter {
    /// A status name.
    #[serde(default)]
    pub status: String,
    /// A tenant name.
    #[serde(default)]
    pub tenant: String,
    /// A recipient: exact, or a prefix ending in `*`.
    #[serde(default)]
    pub to: String,
    /// A transport name (`webhook` and `keycloak` for the application's
    /// webhooks and Keycloak feedback).
    #[serde(default)]
    pub transport: String,
    /// Accepted on or after this day (`YYYY-MM-DD`, UTC).
    #[serde(default)]
    pub since: String,
    /// Accepted on or before this day.
    #[serde(default)]
    pub until: String,
    /// The next page starts before this id.
    #[serde(default)]
    pub before: String,
}

fn day(text: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    // Years before 1 are clamped to it: PostgreSQL's timestamps start in 4713 BC.
    let first = time::Date::from_calendar_date(1, time::Month::January, 1).ok()?;
    time::Date::parse(text.trim(), &format)
        .ok()
        .map(|d| d.max(first).midnight().assume_utc())
}

impl Filter {
    /// The store search this filter asks for, limited to what `visit` may see;
    /// `None` when it names a tenant the viewer may not see.
    pub fn search(&self, visit: &Visit, limit: u32) -> Option<Search> {
        let viewer = visit.viewer();
        let tenant = self.tenant.trim();
        let tenants = if tenant.is_empty() {
            viewer.scope()
        } else if viewer.can_see(tenant) {
            Some(vec![tenant.to_owned()])
        } else {
            return None;
        };
        Some(Search {
            status: Status::parse(self.status.trim()),
            tenants,
            recipient: RecipientMatch::parse(&self.to),
            transport: Some(self.transport.trim())
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            since: day(&self.since),
            // Through the whole day; after the last day there is, no bound.
            until: day(&self.until).and_then(|d| d.checked_add(time::Duration::days(1))),
            before: Uuid::parse_str(self.before.trim()).ok(),
            limit,
        })
    }
}

/// A status row as the list shows it.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    tenant: String,
    status: &'static str,
    attempts: u32,
    transport: String,
    kind: Option<String>,
    created_at: String,
    last_error: Option<String>,
}

fn shown(record: &MessageRecord) -> Row {
    Row {
        id: record.id.to_string(),
        tenant: record.tenant.clone(),
        status: record.status.as_str(),
        attempts: record.attempts,
        transport: record.transport.clone(),
        kind: record.kind.clone(),
        created_at: stamp(record.created_at),
        last_error: record.last_error.clone(),
    }
}

/// A time as the pages show it: UTC to the second.
pub fn stamp(t: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// `GET /console/messages`: a filtered, paginated list.
pub async fn messages(
    visit: Visit,
    State(state): State<AppState>,
    Query(filter): Query<Filter>,
) -> Response {
    let Some(search) = filter.search(&visit, PAGE_SIZE + 1) else {
        return visit.answer(not_found());
    };
    let mut records = match state.store.search(&search).await {
        Ok(r) => r,
        Err(e) => return store_down(&e),
    };
    let more = records.len() > PAGE_SIZE as usize;
    records.truncate(PAGE_SIZE as usize);
    let next = more
        .then(|| records.last().map(|r| r.id.to_string()))
        .flatten();
    let context = minijinja::context! {
        viewer => visit.viewer().name.clone(),
        admin => visit.viewer().admin,
        page => "messages",
        statuses => STATUSES.map(Status::as_str),
        filter => Serde(filter.clone()),
        rows => Serde(records.iter().map(shown).collect::<Vec<_>>()),
        next,
        csrf => visit.session.csrf.clone(),
    };
    visit.answer(visit.console.view.render("messages.html", context))
}

/// `GET /console/messages/{id}`: the message's timeline.
pub async fn message(
    visit: Visit,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return visit.answer(not_found());
    };
    let record = match state.store.get(id).await {
        Ok(Some(r)) if visit.viewer().can_see(&r.tenant) => r,
        Ok(_) => return visit.answer(not_found()),
        Err(e) => return store_down(&e),
    };
    let entries = match timeline(&state, id).await {
        Ok(a) => a,
        Err(e) => return store_down(&e),
    };
    let admin = visit.viewer().admin;
    let context = minijinja::context! {
        viewer => visit.viewer().name.clone(),
        page => "messages",
        message => Serde(shown(&record)),
        sent_at => record.sent_at.map(stamp),
        provider_message_id => record.provider_message_id.clone(),
        realm => record.realm.clone(),
        kind => record.kind.clone(),
        trace_id => record.traceparent.as_deref().and_then(super::timeline::trace_id),
        entries => Serde(entries),
        can_retry => admin && record.status == Status::Failed,
        can_delete => admin && matches!(record.status, Status::Sent | Status::Failed),
        csrf => visit.session.csrf.clone(),
    };
    visit.answer(visit.console.view.render("message.html", context))
}
