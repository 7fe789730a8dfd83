//! The delivery worker: claims due messages under a lease, delivers them
//! concurrently through their transport, and records each outcome through
//! the lease with the retry policy (see [`attempt`]). A claimed message that
//! is never recorded (crash, kill, lost lease) is claimed again once its
//! lease expires: delivery is at-least-once.
//!
//! Each lane of the queue (see [`Lane`]) is claimed by a loop of its own
//! into slots of its own: `concurrency` for messages, a quarter as many for
//! notices. A claim asks for no more rows than its lane has free slots, so
//! notices held up by a receiver that never answers (each attempt waits for
//! the HTTP client's timeout) keep only the notices' slots busy, and
//! messages that flow leave the notices theirs. Within the notices' slots,
//! the store's claim is fair across destinations (see
//! [`super::lane::NOTICES_PER_DESTINATION`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::retry::RetryPolicy;
use super::{ClaimedJob, JobStore, Lane};
use crate::telemetry::Metrics;
use crate::transport::ratelimit::RateLimits;
use crate::transport::{SharedTransport, Transports};
use crate::webhooks::Webhooks;

mod attempt;
pub mod outage;
mod screen;

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Messages in flight at once. Notices have slots of their own besides
    /// (see [`WorkerConfig::notice_slots`]).
    pub concurrency: usize,
    /// A claim's lease; renewed every third of it while an attempt runs, and
    /// the bound of one attempt's send.
    pub lease: Duration,
    /// How often to look for due messages when nothing wakes the worker.
    pub poll_interval: Duration,
    /// After a shutdown signal, how long sends whose message was handed over
    /// (the end of an SMTP `DATA`, an API request sent) may take to be
    /// answered and recorded; other sends are cut at once.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 128,
            lease: Duration::from_secs(120),
            poll_interval: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

impl WorkerConfig {
    /// Notices (webhooks out, feedback into Keycloak) in flight at once,
    /// besides the messages: a quarter of `concurrency`, at least one.
    pub fn notice_slots(&self) -> usize {
        (self.concurrency / 4).max(1)
    }
}

/// Wakes the claim loops when rows became due: each lane's loop hears only
/// of its own rows, so that a webhook queued does not make the messages'
/// loop claim, nor an accepted message the notices'.
#[derive(Debug, Default)]
pub struct Wake {
    messages: Notify,
    notices: Notify,
}

impl Wake {
    /// Rows of `lane` became due.
    pub fn due(&self, lane: Lane) {
        self.of(lane).notify_one();
    }

    /// Rows of either lane may have become due (an administrator's retry).
    pub fn any(&self) {
        self.messages.notify_one();
        self.notices.notify_one();
    }

    fn of(&self, lane: Lane) -> &Notify {
        match lane {
            Lane::Messages => &self.messages,
            Lane::Notices => &self.notices,
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
    /// Not sent: every `to` recipient joined the tenant's suppression list
    /// after the message was accepted; the message is `suppressed`.
    Suppressed {
        /// The suppressed addresses, as the message wrote them.
        recipients: Vec<String>,
    },
    /// The attempt no longer held the message (its lease was lost, or the
    /// service stopped): it recorded nothing; another attempt follows.
    Abandoned {
        /// Why.
        reason: String,
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
    /// Transports held while they are down (see [`outage`]).
    outages: Arc<outage::Outages>,
    policy: RetryPolicy,
    config: WorkerConfig,
    wake: Arc<Wake>,
    jitter: Jitter,
    metrics: Metrics,
    /// Webhooks out: queued after a message is sent or failed.
    webhooks: Webhooks,
    /// The retry policy of webhook rows (24 hours).
    webhook_policy: RetryPolicy,
    /// Every attempt in flight: the worker's own and `?wait=true`'s.
    attempts: TaskTracker,
    /// Cancelled once the service is stopping: no attempt starts, and sends
    /// that handed nothing over yet are cut and give their lease back.
    stopping: CancellationToken,
    /// Cancelled once the shutdown grace is over: every send left is cut.
    cut: CancellationToken,
    /// False once the claim loop ended (or panicked).
    running: Arc<AtomicBool>,
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
            outages: Arc::new(outage::Outages::new(
                policy.base,
                policy.max_interval,
                config.lease,
            )),
            policy: policy.clone(),
            config,
            wake: Arc::new(Wake::default()),
            jitter: Arc::new(rand::random::<f64>),
            metrics: Metrics::new(),
            webhooks: Webhooks::default(),
            webhook_policy: Webhooks::policy(&policy),
            attempts: TaskTracker::new(),
            stopping: CancellationToken::new(),
            cut: CancellationToken::new(),
            running: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Queues webhooks (`message.sent`, `message.failed`) for tenants that have one.
    pub fn with_webhooks(mut self, webhooks: Webhooks) -> Self {
        self.webhooks = webhooks;
        self
    }

    /// The names of the transports it delivers through.
    pub fn transport_names(&self) -> Vec<String> {
        self.transports.names().map(str::to_owned).collect()
    }

    /// Whether deliveries through `transport` are held because it is down.
    pub fn is_held(&self, transport: &str) -> bool {
        self.outages.is_held(transport)
    }

    /// Holds back sending per transport and tenant.
    pub fn with_limits(mut self, limits: RateLimits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// The sending limits (their state is per process).
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// The transport named `name`, if configured.
    pub fn transport(&self, name: &str) -> Option<SharedTransport> {
        self.transports.get(name)
    }

    /// Delivers up to `concurrency` messages at once (see [`WorkerConfig::concurrency`]).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.config.concurrency = concurrency;
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
    pub fn notifier(&self) -> Arc<Wake> {
        self.wake.clone()
    }

    /// The lease a claim holds (and an inline `?wait=true` attempt takes).
    pub fn lease(&self) -> Duration {
        self.config.lease
    }

    /// False once the claim loop has ended: nothing is delivered any more.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Starts one attempt of a claimed message as a task of its own, which
    /// runs to its end whether or not anyone waits for the answer.
    pub fn spawn_attempt(&self, job: ClaimedJob) -> oneshot::Receiver<AttemptOutcome> {
        self.spawn_in_slot(job, None)
    }

    /// One attempt of a claimed message, recorded in the store.
    pub async fn attempt(&self, job: ClaimedJob) -> AttemptOutcome {
        self.spawn_attempt(job)
            .await
            .unwrap_or_else(|_| AttemptOutcome::Abandoned {
                reason: "the attempt ended without an answer".into(),
            })
    }

    fn spawn_in_slot(
        &self,
        job: ClaimedJob,
        slot: Option<OwnedSemaphorePermit>,
    ) -> oneshot::Receiver<AttemptOutcome> {
        let (answer, outcome) = oneshot::channel();
        let worker = self.clone();
        self.attempts.spawn(async move {
            let _ = answer.send(worker.run_attempt(job, slot).await);
        });
        outcome
    }

    /// Claims and delivers until `shutdown` completes; then starts no
    /// attempt, cuts (and gives back) sends that handed nothing over yet,
    /// and lets those that did be answered and recorded within the grace
    /// bound (see [`WorkerConfig::shutdown_grace`]).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let _running = Running(self.running.clone());
        let claiming = CancellationToken::new();
        let stop_claiming = async {
            shutdown.await;
            claiming.cancel();
            self.stopping.cancel();
        };
        let concurrency = self.config.concurrency.max(1);
        let messages = self.claim_lane(Lane::Messages, concurrency, &claiming);
        let notices = self.claim_lane(Lane::Notices, self.config.notice_slots(), &claiming);
        tokio::join!(stop_claiming, messages, notices);
        self.stop().await;
    }

    /// Claims rows of `lane` into `slots` of their own and starts their
    /// attempts, until `claiming` is cancelled.
    async fn claim_lane(&self, lane: Lane, slots: usize, claiming: &CancellationToken) {
        let slots = Arc::new(Semaphore::new(slots));
        // Claim in batches (each claim is a commit): wait until half the slots are free.
        let batch = (slots.available_permits() / 2).max(1) as u32;
        loop {
            let mut permits = tokio::select! {
                biased;
                () = claiming.cancelled() => break,
                permits = slots.clone().acquire_many_owned(batch) => match permits { Ok(p) => p, Err(_) => break },
            };
            let extra = slots.available_permits() as u32;
            if let Ok(more) = slots.clone().try_acquire_many_owned(extra) {
                permits.merge(more);
            }
            let wanted = permits.num_permits() as u32;
            let now = OffsetDateTime::now_utc();
            // A row waiting for a key this replica lacks waits as long as a
            // transient failure of its lane would be retried.
            let max_age = match lane {
                Lane::Messages => self.policy.max_age,
                Lane::Notices => self.webhook_policy.max_age,
            };
            let claimed = self
                .store
                .claim(now, self.config.lease, lane, wanted, max_age);
            let jobs = match claimed.await {
                Ok(jobs) => jobs,
                Err(e) => {
                    let lane = lane.as_str();
                    tracing::warn!(lane, error = %e, "could not claim; trying again shortly");
                    Vec::new()
                }
            };
            if jobs.is_empty() {
                drop(permits);
                tokio::select! {
                    biased;
                    () = claiming.cancelled() => break,
                    () = self.wake.of(lane).notified() => {},
                    () = tokio::time::sleep(self.config.poll_interval) => {},
                }
                continue;
            }
            for job in jobs {
                // Never more jobs than permits: the claim asked for exactly that many.
                let slot = permits.split(1);
                drop(self.spawn_in_slot(job, slot));
            }
        }
    }

    /// Waits for attempts in flight up to the grace bound; then each gives
    /// its lease back (fenced: only if it still holds it) and ends.
    async fn stop(&self) {
        self.attempts.close();
        self.stopping.cancel();
        let grace = self.config.shutdown_grace;
        if tokio::time::timeout(grace, self.attempts.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                count = self.attempts.len(),
                grace = %humantime::format_duration(grace),
                "deliveries still waiting for their answer after the shutdown grace are given back"
            );
            self.cut.cancel();
            if tokio::time::timeout(Duration::from_secs(5), self.attempts.wait())
                .await
                .is_err()
            {
                tracing::warn!("some deliveries could not be given back; their leases will expire");
            }
        }
    }
}

/// Marks the worker stopped when its claim loop ends, by return or panic.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}
