//! The delivery worker: claims due messages under a lease, delivers them
//! concurrently through their transport, and records each outcome with the
//! retry policy. A claimed message that is never recorded (crash, kill) is
//! claimed again once its lease expires: delivery is at-least-once.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument as _;
use uuid::Uuid;

use super::retry::{Decision, RetryPolicy};
use super::{ClaimedJob, JobStore};
use crate::telemetry::{self, Metrics};
use crate::transport::ratelimit::RateLimits;
use crate::transport::{Delivery, TransportError, Transports};

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How long a claim holds before another attempt may take the message.
    pub lease: Duration,
    /// How often to look for due messages when nothing wakes the worker.
    pub poll_interval: Duration,
    /// How long in-flight deliveries may finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 128,
            lease: Duration::from_secs(120),
            poll_interval: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Delivered.
    Sent {
        /// The provider's id of the message.
        provider_message_id: Option<String>,
    },
    /// Not delivered yet; planned again.
    Retrying {
        /// The next attempt's time.
        at: OffsetDateTime,
        /// Why this attempt did not deliver.
        error: String,
    },
    /// Given up: the message is `failed`.
    Failed {
        /// Why.
        error: String,
    },
}

/// A source of jitter in [0, 1).
pub type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The delivery worker. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    store: Arc<dyn JobStore>,
    transports: Arc<Transports>,
    limits: Arc<RateLimits>,
    policy: RetryPolicy,
    config: WorkerConfig,
    notify: Arc<Notify>,
    jitter: Jitter,
    in_flight: Arc<Mutex<HashSet<Uuid>>>,
    metrics: Metrics,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("policy", &self.policy)
            .field("config", &self.config)
            .finish()
    }
}

impl Worker {
    /// A worker over `store` delivering through `transports`.
    pub fn new(
        store: Arc<dyn JobStore>,
        transports: Transports,
        policy: RetryPolicy,
        config: WorkerConfig,
    ) -> Self {
        Self {
            store,
            transports: Arc::new(transports),
            limits: Arc::new(RateLimits::default()),
            policy,
            config,
            notify: Arc::new(Notify::new()),
            jitter: Arc::new(rand::random::<f64>),
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            metrics: Metrics::new(),
        }
    }

    /// Holds back sending per transport and tenant.
    pub fn with_limits(mut self, limits: RateLimits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// Counts attempts into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Replaces the jitter source (tests make the schedule exact).
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Wakes the worker (after a commit or an admin's retry).
    pub fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// Claims and delivers until `shutdown` completes; then lets in-flight sends
    /// finish within the grace bound and gives back what is still unfinished.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let mut shutdown = std::pin::pin!(shutdown);
        let concurrency = self.config.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        // Claim in batches (each claim is a commit): wait until half the slots are free.
        let batch = (concurrency / 2).max(1) as u32;
        let mut tasks = JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            let mut permits = tokio::select! {
                biased;
                () = &mut shutdown => break,
                permits = slots.clone().acquire_many_owned(batch) => match permits { Ok(p) => p, Err(_) => break },
            };
            let extra = slots.available_permits() as u32;
            if let Ok(more) = slots.clone().try_acquire_many_owned(extra) {
                permits.merge(more);
            }
            let wanted = permits.num_permits() as u32;
            let jobs = match self
                .store
                .claim(OffsetDateTime::now_utc(), self.config.lease, wanted)
                .await
            {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim messages; trying again shortly");
                    Vec::new()
                }
            };
            if jobs.is_empty() {
                drop(permits);
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = self.notify.notified() => {},
                    () = tokio::time::sleep(self.config.poll_interval) => {},
                }
                continue;
            }
            for job in jobs {
                // Never more jobs than permits: the claim asked for exactly that many.
                let slot = permits.split(1);
                let worker = self.clone();
                tasks.spawn(async move {
                    worker.attempt_in_slot(job, slot).await;
                });
            }
        }
        self.stop(tasks).await;
    }

    async fn stop(&self, mut tasks: JoinSet<()>) {
        let grace = tokio::time::sleep(self.config.shutdown_grace);
        tokio::pin!(grace);
        while !tasks.is_empty() {
            tokio::select! {
                _ = tasks.join_next() => {},
                () = &mut grace => break,
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let unfinished: Vec<Uuid> = self
            .in_flight
            .lock()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for id in unfinished {
            if let Err(e) = self.store.release(id, OffsetDateTime::now_utc()).await {
                tracing::warn!(message_id = %id, error = %e, "could not release a message; its lease will expire");
            }
        }
    }

    /// One delivery attempt of a claimed message, recorded in the store.
    pub async fn attempt(&self, job: ClaimedJob) -> AttemptOutcome {
        self.attempt_in_slot(job, None).await
    }

    /// One attempt holding one of the worker's slots; the slot is given back
    /// as soon as the transport answered, so that recording the outcome
    /// (a grouped commit) does not hold up the next delivery.
    async fn attempt_in_slot(
        &self,
        job: ClaimedJob,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> AttemptOutcome {
        let span = tracing::info_span!(
            "delivery",
            message_id = %job.message.id,
            tenant = %job.message.tenant,
            transport = %job.transport,
            attempt = job.attempt,
            outcome = tracing::field::Empty,
        );
        telemetry::handoff::continue_trace(&span, job.message.id);
        self.attempt_inner(job, slot).instrument(span).await
    }

    async fn attempt_inner(
        &self,
        job: ClaimedJob,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> AttemptOutcome {
        let id = job.message.id;
        if let Err(wait) = self.limits.check(&job.message.tenant, &job.transport) {
            let at = OffsetDateTime::now_utc() + wait;
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "rate limit reached; held back"
            );
            self.metrics
                .rate_limited(&job.message.tenant, &job.transport);
            if let Err(e) = self.store.release(id, at).await {
                tracing::warn!(error = %e, "could not hold back a message; its lease will expire");
            }
            return AttemptOutcome::Retrying {
                at,
                error: format!("rate limit reached; next attempt in {}ms", wait.as_millis()),
            };
        }
        let started = Instant::now();
        let result = match self.transports.get(&job.transport) {
            Some(transport) => {
                self.track(id, true);
                let result = transport.send(&job.message).await;
                self.track(id, false);
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "transport answered"
                );
                result
            }
            None => Err(TransportError::transient(format!(
                "transport `{}` is not configured (check [transports])",
                job.transport
            ))),
        };
        drop(slot);
        self.metrics.attempted(&job.transport, started.elapsed());
        let outcome = self.record(&job, result).await;
        let name = match &outcome {
            AttemptOutcome::Sent { .. } => "sent",
            AttemptOutcome::Retrying { .. } => "retrying",
            AttemptOutcome::Failed { .. } => "failed",
        };
        tracing::Span::current().record("outcome", name);
        if name != "retrying" {
            telemetry::handoff::forget(id);
        }
        outcome
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

    fn track(&self, id: Uuid, active: bool) {
        if let Ok(mut set) = self.in_flight.lock() {
            if active {
                set.insert(id);
            } else {
                set.remove(&id);
            }
        }
    }

    async fn record(
        &self,
        job: &ClaimedJob,
        result: Result<Delivery, TransportError>,
    ) -> AttemptOutcome {
        let id = job.message.id;
        let now = OffsetDateTime::now_utc();
        self.count(job, &result, now);
        let (outcome, stored) = match result {
            Ok(delivery) => {
                tracing::info!(outcome = "sent", "delivered");
                let stored = self
                    .store
                    .mark_sent(id, delivery.provider_message_id.as_deref(), now)
                    .await;
                (
                    AttemptOutcome::Sent {
                        provider_message_id: delivery.provider_message_id,
                    },
                    stored,
                )
            }
            Err(TransportError::Permanent { message, .. }) => {
                tracing::warn!(outcome = "failed", error = %message, "permanent failure");
                let stored = self.store.mark_failed(id, &message, now).await;
                (AttemptOutcome::Failed { error: message }, stored)
            }
            Err(error) => {
                let decision = self.policy.decide(
                    job.attempt,
                    job.created_at,
                    now,
                    error.retry_after(),
                    (self.jitter)(),
                );
                match decision {
                    Decision::Retry { at } => {
                        self.metrics.retried(
                            &job.message.tenant,
                            &job.transport,
                            telemetry::classify::retry_class(&error),
                        );
                        tracing::info!(outcome = "retrying", error = %error, next_attempt_at = %at, "transient failure");
                        let stored = self
                            .store
                            .mark_retrying(id, &error.to_string(), at, now)
                            .await;
                        (
                            AttemptOutcome::Retrying {
                                at,
                                error: error.to_string(),
                            },
                            stored,
                        )
                    }
                    Decision::Fail { reason } => {
                        self.metrics
                            .failed(&job.message.tenant, &job.transport, "expired");
                        let error = format!("{error}; {reason}");
                        tracing::warn!(outcome = "failed", error = %error, "giving up");
                        let stored = self.store.mark_failed(id, &error, now).await;
                        (AttemptOutcome::Failed { error }, stored)
                    }
                }
            }
        };
        if let Err(e) = stored {
            tracing::warn!(error = %e, "could not record the outcome; the message will be attempted again when its lease expires");
        }
        outcome
    }
}
