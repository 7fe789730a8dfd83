//! One delivery attempt under its lease: the lease is renewed every third of
//! its length while the transport works; the send is bounded by the lease's
//! length (a failover group's members share that one bound); an attempt
//! whose lease is lost, or cannot be renewed in time, stops at once and
//! records nothing. Every outcome is written through the lease, so it
//! applies only while this attempt still holds the message. A panic inside
//! a transport, or anywhere else in the attempt, ends the message as
//! `failed` with the reason instead of being claimed again forever.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt as _;
use time::OffsetDateTime;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument as _;

use super::outage::{Gate, Verdict, WakeTurn};
use super::{AttemptOutcome, Worker};
use crate::queue::retry::Decision;
use crate::queue::{ClaimedJob, Lane, Lease, NewJob, Outcome};
use crate::telemetry;
use crate::transport::handover::Handover;
use crate::transport::{Delivery, TransportError};
use crate::webhooks::WebhookType;

/// Why a claimed message goes back unsent.
#[derive(Clone, Copy)]
enum Holding {
    /// A tenant's or transport's rate limit.
    RateLimit,
    /// Its transport is down (see [`super::outage`]).
    Outage,
}

/// How a send under a lease ended.
enum Held {
    /// The transport answered while the lease was held.
    Answered(Result<Delivery, TransportError>),
    /// The lease was lost (or could not be renewed in time): record nothing.
    Lost(String),
    /// The service is stopping and the send was cut: give the lease back.
    Stopping {
        /// The message may have been handed over already (the grace ran out
        /// before the peer's answer): it may go twice.
        handed: bool,
    },
}

impl Worker {
    /// One attempt holding one of the worker's slots; the slot is given back
    /// as soon as the transport answered, so that recording the outcome
    /// (a grouped commit) does not hold up the next delivery.
    pub(super) async fn run_attempt(
        &self,
        job: ClaimedJob,
        slot: Option<OwnedSemaphorePermit>,
    ) -> AttemptOutcome {
        let span = tracing::info_span!(
            "delivery",
            message_id = %job.message.id,
            tenant = %job.message.tenant,
            transport = %job.transport,
            attempt = job.attempt(),
            outcome = tracing::field::Empty,
        );
        let stored = job.traceparent.as_deref();
        telemetry::handoff::continue_trace(&span, job.message.id, stored);
        let mut job = job;
        let attempt = AssertUnwindSafe(self.attempt_inner(&mut job, slot)).catch_unwind();
        match attempt.instrument(span.clone()).await {
            Ok(outcome) => outcome,
            // Outside the transport too (screening, limits, the retry
            // schedule, recording): claimed again, it would panic again at
            // every lease's end. The lease fences this write out if an
            // outcome was already recorded.
            Err(panic) => {
                let error = format!(
                    "the delivery attempt failed unexpectedly ({}); not retried",
                    panic_text(panic.as_ref())
                );
                tracing::error!(parent: &span, error = %error, "an attempt panicked");
                let outcome = self.settle(&job, failed(error), &[]).instrument(span).await;
                self.ended(&job, outcome)
            }
        }
    }

    async fn attempt_inner(
        &self,
        job: &mut ClaimedJob,
        slot: Option<OwnedSemaphorePermit>,
    ) -> AttemptOutcome {
        if self.stopping.is_cancelled() {
            // No attempt starts once the service is stopping.
            drop(slot);
            return self.ended(job, self.give_back(&job.lease).await);
        }
        if job.lease.until <= OffsetDateTime::now_utc() {
            // Another attempt may take it any moment: sending now could send twice.
            tracing::warn!("the lease ended before the attempt began; not sending");
            return AttemptOutcome::Abandoned {
                reason: "the lease ended before the attempt began".into(),
            };
        }
        let left_out = match self.screen(job).await {
            Ok(left_out) if left_out.everyone => {
                drop(slot);
                return self.ended(job, self.settle_suppressed(job, left_out.addresses).await);
            }
            Ok(left_out) => left_out.addresses,
            Err(e) => {
                drop(slot);
                return self.ended(job, self.unscreened(job, &e).await);
            }
        };
        // Rate limits are the email's: notices go to the tenant's own
        // application or to Keycloak, not through a mail provider, and must
        // not spend the tenant's sending allowance.
        let notice = is_notice(&job.transport);
        if !notice && let Err(wait) = self.limits.check(&job.message.tenant, &job.transport) {
            drop(slot);
            return self.hold_back(job, wait, Holding::RateLimit).await;
        }
        // A transport that is down holds the worker's own claims; an attempt
        // someone waits for (`?wait=true`, the console's test) goes anyway,
        // so that they see the transport's real error.
        let gate = match slot.is_some() && !notice {
            true => self.outages.gate(&job.transport, Instant::now()),
            false => Gate::Open,
        };
        if let Gate::Wait(wait) = gate {
            drop(slot);
            return self.wait_out(job, wait).await;
        }
        let started = Instant::now();
        let held = self.send_held(job).await;
        drop(slot);
        let outcome = match held {
            Held::Answered(result) => {
                self.metrics.attempted(&job.transport, started.elapsed());
                // Webhooks and feedback go to many peers under one name.
                let mut hold_ended = false;
                if !notice
                    && let Some(held) =
                        self.outages
                            .answered(&job.transport, &result, Instant::now())
                {
                    self.metrics.transport_held(&job.transport, held);
                    hold_ended = !held;
                }
                // A probe that finds the transport still down is not counted.
                if gate == Gate::Probe
                    && Verdict::of(&result) == Verdict::Down
                    && let Gate::Wait(wait) = self.outages.gate(&job.transport, Instant::now())
                {
                    return self.ended(job, self.wait_out(job, wait).await);
                }
                let outcome = self.record(job, result, &left_out).await;
                // After its own outcome: the lease that bounds it is not renewed
                // any more, and waking a large backlog may take a while.
                if hold_ended {
                    self.wake(&job.transport).await;
                }
                outcome
            }
            Held::Lost(reason) => {
                tracing::warn!(reason = %reason, "lease lost; this attempt records nothing");
                AttemptOutcome::Abandoned { reason }
            }
            Held::Stopping { handed } => {
                if handed {
                    tracing::warn!(
                        "the shutdown grace ran out before the peer answered a message it may have \
                         taken; given back, it may be delivered twice"
                    );
                }
                self.give_back(&job.lease).await
            }
        };
        self.ended(job, outcome)
    }

    /// Names the attempt's outcome on its span; a message that reached its
    /// end needs its trace hand-off no more.
    fn ended(&self, job: &ClaimedJob, outcome: AttemptOutcome) -> AttemptOutcome {
        let name = match &outcome {
            AttemptOutcome::Sent { .. } => "sent",
            AttemptOutcome::Retrying { .. } => "retrying",
            AttemptOutcome::Failed { .. } => "failed",
            AttemptOutcome::Suppressed { .. } => "suppressed",
            AttemptOutcome::Abandoned { .. } => "abandoned",
        };
        tracing::Span::current().record("outcome", name);
        if matches!(name, "sent" | "failed" | "suppressed") {
            telemetry::handoff::forget(job.message.id);
        }
        outcome
    }

    /// A rate limit is reached, or the transport is held: the message goes
    /// back without counting the attempt.
    async fn hold_back(
        &self,
        job: &ClaimedJob,
        wait: std::time::Duration,
        why: Holding,
    ) -> AttemptOutcome {
        let at = OffsetDateTime::now_utc() + wait;
        let wait_ms = wait.as_millis() as u64;
        let error = match why {
            Holding::RateLimit => {
                tracing::info!(wait_ms, "rate limit reached; held back");
                self.metrics
                    .rate_limited(&job.message.tenant, &job.transport);
                format!("rate limit reached; next attempt in {wait_ms}ms")
            }
            Holding::Outage => {
                // The transport's hold was logged once when it began.
                tracing::debug!(wait_ms, "the transport is down; held back");
                format!("the transport is down; next attempt in {wait_ms}ms")
            }
        };
        let released = Outcome::Released {
            next_attempt_at: at,
        };
        match self.write(&job.lease, &released, None).await {
            Some(()) => {
                // The probe may have found the transport working while this
                // message was put back: the wake it began may have come first.
                if matches!(why, Holding::Outage) && !self.outages.is_held(&job.transport) {
                    self.wake(&job.transport).await;
                }
                AttemptOutcome::Retrying { at, error }
            }
            None => AttemptOutcome::Abandoned {
                reason: "the lease was lost while holding back".into(),
            },
        }
    }

    /// The transport answers again: what it held is due now, not a hold later.
    async fn wake(&self, transport: &str) {
        /// Lets the next caller run a wake if this one is dropped midway.
        struct Running<'a>(&'a super::outage::Outages, &'a str, bool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                if !self.2 {
                    self.0.wake_dropped(self.1);
                }
            }
        }
        if self.outages.wake_turn(transport) == WakeTurn::Covered {
            return;
        }
        let mut running = Running(&self.outages, transport, false);
        loop {
            match self.store.wake(transport, OffsetDateTime::now_utc()).await {
                Ok(woken) => {
                    tracing::info!(transport, woken, "the messages it held are due now");
                    self.wake.due(Lane::Messages);
                }
                Err(e) => tracing::warn!(
                    transport,
                    error = %e,
                    "could not make the messages it held due now; they follow within a hold"
                ),
            }
            if !self.outages.wake_done(transport) {
                running.2 = true;
                return;
            }
        }
    }

    /// Its transport is down: the message waits for the hold to end without
    /// spending an attempt, at most until the retry policy's age
    /// (`MAILBRIDGE_RETRY_MAX_AGE`), when it is tried a last time; once that
    /// age is reached it is `failed`.
    async fn wait_out(&self, job: &ClaimedJob, wait: std::time::Duration) -> AttemptOutcome {
        let spread = self.outages.spread(&job.transport);
        let wait = wait + spread.mul_f64((self.jitter)().clamp(0.0, 1.0));
        let now = OffsetDateTime::now_utc();
        if let Some(wait) = self.policy.wait_within_age(job.created_at, now, wait) {
            return self.hold_back(job, wait, Holding::Outage).await;
        }
        self.metrics
            .failed(&job.message.tenant, &job.transport, "expired");
        let error = format!(
            "the transport `{}` is down; gave up: no attempt is made more than {} after the message was accepted",
            job.transport,
            humantime::format_duration(self.policy.max_age)
        );
        tracing::warn!(outcome = "failed", error = %error, "giving up");
        self.settle(job, failed(error), &[]).await
    }

    /// Shutdown: the message goes back, due now, without counting the attempt.
    async fn give_back(&self, lease: &Lease) -> AttemptOutcome {
        let released = Outcome::Released {
            next_attempt_at: OffsetDateTime::now_utc(),
        };
        let _ = self.write(lease, &released, None).await;
        AttemptOutcome::Abandoned {
            reason: "the service is stopping; the message was given back".into(),
        }
    }

    /// Sends while keeping the lease; see [`Held`]. Once the service is
    /// stopping, the send is cut at once unless the message was handed over
    /// (see [`Handover`]): then its answer is waited for until the shutdown
    /// grace ends, so that a message the peer took is recorded `sent`.
    async fn send_held(&self, job: &ClaimedJob) -> Held {
        let Some(transport) = self.transports.get(&job.transport) else {
            return Held::Answered(Err(TransportError::transient(format!(
                "transport `{}` is not configured (check [transports])",
                job.transport
            ))));
        };
        let bound = self.config.lease;
        let handover = Handover::new(self.stopping.clone());
        let send = AssertUnwindSafe(transport.send(&job.message)).catch_unwind();
        let send = tokio::time::timeout(bound, handover.scope(send));
        let keep = self.keep(job.lease);
        tokio::pin!(send, keep);
        let mut stopping = false;
        loop {
            tokio::select! {
                // An answer that came is taken before any stop.
                biased;
                sent = &mut send => return Held::Answered(match sent {
                    Ok(Ok(result)) => result,
                    Ok(Err(panic)) => Err(TransportError::permanent(format!(
                        "the delivery attempt failed unexpectedly ({}); not retried",
                        panic_text(panic.as_ref())
                    ))),
                    Err(_) => Err(TransportError::transient(format!(
                        "no answer within {} (the attempt's bound)",
                        humantime::format_duration(bound)
                    ))),
                }),
                reason = &mut keep => return Held::Lost(reason),
                () = self.stopping.cancelled(), if !stopping => {
                    stopping = true;
                    if !handover.handed() {
                        return Held::Stopping { handed: false };
                    }
                    tracing::info!("the service is stopping; waiting for the answer to a message handed over");
                }
                () = handover.refused(), if stopping => {
                    if !handover.handed() {
                        return Held::Stopping { handed: false };
                    }
                }
                () = self.cut.cancelled() => {
                    return Held::Stopping { handed: handover.handed() };
                }
            }
        }
    }

    /// Renews `lease` every third of its length; completes (with why) only
    /// when the lease is lost, or when renewals failed so long that the
    /// lease could expire before the next try.
    async fn keep(&self, mut lease: Lease) -> String {
        let length = self.config.lease;
        let every = length / 3;
        loop {
            tokio::time::sleep(every).await;
            let now = OffsetDateTime::now_utc();
            match self.store.renew(&lease, now + length).await {
                Ok(true) => lease.until = now + length,
                Ok(false) => return "another attempt holds the message now".into(),
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew a lease");
                    if now + every >= lease.until {
                        return format!("the lease could not be renewed before it expired ({e})");
                    }
                }
            }
        }
    }

    /// Writes `outcome` through `lease`: `None` if the lease was lost. A
    /// store that fails (disk full, database gone) is tried again for up to
    /// one lease length: the outcome is known and should not be lost to a
    /// passing fault; the fence keeps a late write harmless.
    pub(super) async fn write(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        notice: Option<&NewJob>,
    ) -> Option<()> {
        // Within a lease length of the send's end: the message is not claimed
        // again before its lease ended and as long again passed
        // (`batch::abandoned_before`), so a store that comes back in time
        // gets the outcome, tried often enough to be there first.
        let give_up = std::time::Instant::now() + self.config.lease;
        let longest_pause = (self.config.lease / 8).clamp(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(5),
        );
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            let now = OffsetDateTime::now_utc();
            match self.store.record_with(lease, outcome, now, notice).await {
                Ok(true) => return Some(()),
                Ok(false) => {
                    tracing::warn!(
                        "lease lost before the outcome was recorded; another attempt decides"
                    );
                    return None;
                }
                Err(e) if std::time::Instant::now() + pause < give_up => {
                    tracing::warn!(error = %e, "could not record the outcome; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(longest_pause);
                }
                Err(e) => {
                    // Not recorded: once the lease is abandoned another attempt follows.
                    tracing::warn!(error = %e, "could not record the outcome; the message will be attempted again once its lease is abandoned");
                    return Some(());
                }
            }
        }
    }

    /// Counts one attempt's answer and what it means for the message.
    fn count(
        &self,
        job: &ClaimedJob,
        result: &Result<Delivery, TransportError>,
        now: OffsetDateTime,
    ) {
        let (tenant, transport) = (job.message.tenant.as_str(), job.transport.as_str());
        self.metrics
            .reply_class(transport, telemetry::reply_class(result));
        match result {
            Ok(_) => {
                let latency = (now - job.created_at).try_into().unwrap_or_default();
                self.metrics.sent(tenant, transport, latency);
            }
            Err(TransportError::Permanent { .. }) => {
                self.metrics.failed(tenant, transport, "permanent");
            }
            Err(_) => {}
        }
    }

    /// Turns the transport's answer into an outcome with the retry policy,
    /// and records it through the lease.
    async fn record(
        &self,
        job: &ClaimedJob,
        result: Result<Delivery, TransportError>,
        left_out: &[String],
    ) -> AttemptOutcome {
        let now = OffsetDateTime::now_utc();
        self.count(job, &result, now);
        let settled = match result {
            Ok(delivery) => {
                tracing::info!(outcome = "sent", "delivered");
                let provider_message_id = delivery.provider_message_id;
                (
                    Outcome::Sent {
                        provider_message_id: provider_message_id.clone(),
                    },
                    AttemptOutcome::Sent {
                        provider_message_id,
                    },
                )
            }
            Err(TransportError::Permanent { message, .. }) => {
                tracing::warn!(outcome = "failed", error = %message, "permanent failure");
                failed(message)
            }
            Err(error) => self.after_transient(job, error, now),
        };
        self.settle(job, settled, left_out).await
    }

    /// Records `stored` through the job's lease and, in the same commit, the
    /// webhook that tells the tenant's application `outcome` (naming the
    /// recipients `left_out`).
    pub(super) async fn settle(
        &self,
        job: &ClaimedJob,
        (stored, outcome): (Outcome, AttemptOutcome),
        left_out: &[String],
    ) -> AttemptOutcome {
        let notice = self.notice(job, &outcome, left_out);
        match self.write(&job.lease, &stored, notice.as_ref()).await {
            Some(()) => {
                if notice.is_some() {
                    self.wake.due(Lane::Notices);
                }
                outcome
            }
            None => AttemptOutcome::Abandoned {
                reason: "the lease was lost before the outcome was recorded".into(),
            },
        }
    }

    /// The `message.sent` or `message.failed` webhook for the message's
    /// tenant, if it has one (never for a webhook row itself), naming the
    /// recipients `left_out` because they were suppressed after accept.
    fn notice(
        &self,
        job: &ClaimedJob,
        outcome: &AttemptOutcome,
        left_out: &[String],
    ) -> Option<NewJob> {
        if is_notice(&job.transport) {
            return None;
        }
        let (kind, mut data) = match outcome {
            AttemptOutcome::Sent {
                provider_message_id,
            } => (
                WebhookType::Sent,
                serde_json::json!({"transport": job.transport, "provider_message_id": provider_message_id}),
            ),
            AttemptOutcome::Failed { error } => (
                WebhookType::Failed,
                serde_json::json!({"transport": job.transport, "error": error}),
            ),
            _ => return None,
        };
        if !left_out.is_empty() {
            data["suppressed_recipients"] = serde_json::json!(left_out);
        }
        let (tenant, id) = (&job.message.tenant, job.message.id);
        self.webhooks.notice(tenant, kind, id, data)
    }

    pub(super) fn after_transient(
        &self,
        job: &ClaimedJob,
        error: TransportError,
        now: OffsetDateTime,
    ) -> (Outcome, AttemptOutcome) {
        let jitter = (self.jitter)();
        let policy = if is_notice(&job.transport) {
            &self.webhook_policy
        } else {
            &self.policy
        };
        let decision = policy.decide(
            job.attempt(),
            job.created_at,
            now,
            error.retry_after(),
            jitter,
        );
        match decision {
            Decision::Retry { at } => {
                self.metrics.retried(
                    &job.message.tenant,
                    &job.transport,
                    telemetry::classify::retry_class(&error),
                );
                tracing::info!(outcome = "retrying", error = %error, next_attempt_at = %at, "transient failure");
                let error = error.to_string();
                (
                    Outcome::Retrying {
                        error: error.clone(),
                        next_attempt_at: at,
                    },
                    AttemptOutcome::Retrying { at, error },
                )
            }
            Decision::Fail { reason } => {
                self.metrics
                    .failed(&job.message.tenant, &job.transport, "expired");
                let error = format!("{error}; {reason}");
                tracing::warn!(outcome = "failed", error = %error, "giving up");
                failed(error)
            }
        }
    }
}

/// Whether rows of `transport` are notices about messages (webhooks,
/// Keycloak feedback) rather than messages: retried for 24 hours, never
/// rate-limited, and never the subject of a webhook themselves.
pub(super) fn is_notice(transport: &str) -> bool {
    Lane::of(transport) == Lane::Notices
}

fn failed(error: String) -> (Outcome, AttemptOutcome) {
    (
        Outcome::Failed {
            error: error.clone(),
        },
        AttemptOutcome::Failed { error },
    )
}

/// The text a panic carried, if it is one.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}
