//! Group commit, shared by the stores: every state change is an [`Op`] handed
//! to a writer task, which applies whatever is waiting in one transaction and
//! answers each caller only after that transaction committed. If any
//! statement of the group fails, or the commit does, the whole group is
//! rolled back and every caller is told so: nothing of a failed group is
//! visible or delivered later, and a caller that got an answer knows its
//! change is on disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::packing::{self, Stored};
use super::sealing::{Keyring, SealError};
use super::{ClaimedJob, Enqueued, Lane, Lease, NewJob, Outcome, StoreError};
use crate::email::OutgoingMessage;

/// Most operations applied in one transaction.
pub(crate) const MAX_BATCH: usize = 512;
/// How long an idempotency key holds.
pub(crate) const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// One state change.
#[derive(Debug)]
pub(crate) enum Op {
    /// Store a new message (claimed at once when the job asks for a lease).
    Enqueue(Box<Enqueue>),
    /// Claim due rows of one lane under a lease.
    Claim {
        now: OffsetDateTime,
        lease: Duration,
        lane: Lane,
        limit: u32,
        /// The lane's retry age: how long a row may wait for a key.
        max_age: Duration,
    },
    /// Extend a lease.
    Renew { lease: Lease, until: OffsetDateTime },
    /// Record an attempt's outcome through its lease, and with it, when it
    /// is recorded, a notice about it (a webhook).
    Record {
        lease: Lease,
        outcome: Outcome,
        now: OffsetDateTime,
        notice: Option<Box<Enqueue>>,
    },
    /// A small real write, to learn whether commits work again.
    Probe { now: OffsetDateTime },
}

impl Op {
    /// Whether a failed commit of this op means commits fail (a claim that
    /// found nothing due wrote nothing, and proves nothing either way).
    fn writes(&self) -> bool {
        !matches!(self, Op::Claim { .. })
    }

    /// Whether a commit of this op shows there is room for new messages
    /// again (a small outcome may fit where a message does not).
    fn proves_room(&self) -> bool {
        matches!(self, Op::Enqueue(_) | Op::Probe { .. })
    }
}

/// A new message and the form its `message` column takes: sealed (see
/// [`super::sealing`]) before it reaches a writer, so a group's commit never
/// waits for encryption.
#[derive(Debug)]
pub(crate) struct Enqueue {
    pub(crate) job: NewJob,
    /// The `message` column.
    pub(crate) stored: Stored,
}

/// What an applied op answers.
#[derive(Debug)]
pub(crate) enum Answer {
    Enqueued(Enqueued),
    Claimed(Vec<ClaimedJob>),
    /// Whether a fenced write applied (false: the lease is no longer held).
    Applied(bool),
    Probed,
}

/// An op with the channel its answer goes back on.
pub(crate) struct Write {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Result<Answer, StoreError>>,
}

/// Where the commit of a message handed over from another thread
/// ([`super::JobStore::hand_over`]) is answered; dropped unused, its
/// receipt reads that the store's writer has stopped.
#[derive(Debug)]
pub struct Ticket(oneshot::Sender<Result<Answer, StoreError>>);

/// The waiting side of a [`Ticket`].
#[derive(Debug)]
pub struct Receipt(oneshot::Receiver<Result<Answer, StoreError>>);

/// A ticket and its receipt.
pub fn ticket() -> (Ticket, Receipt) {
    let (reply, answer) = oneshot::channel();
    (Ticket(reply), Receipt(answer))
}

impl Ticket {
    /// Whether its receipt is gone (the request was dropped): nothing need
    /// be done for it.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// Whether the last group that wrote data committed. `/readyz` answers 503
/// while it did not; the next group that commits (or a probe) clears it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Health(Arc<AtomicBool>);

impl Health {
    /// True while commits fail.
    pub(crate) fn failing(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn committed(&self, ops: &[Op]) {
        if ops.iter().any(Op::proves_room) && self.0.swap(false, Ordering::SeqCst) {
            tracing::info!("queue store: commits succeed again");
        }
    }

    fn failed(&self, ops: &[Op]) {
        if ops.iter().any(Op::writes) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// The sending side: hands an op to a writer and waits for its commit.
#[derive(Debug, Clone)]
pub(crate) struct Writes {
    inbox: mpsc::Sender<Write>,
    pub(crate) health: Health,
    /// Seals new messages; `None` stores them in plain text.
    pub(crate) keyring: Option<Arc<Keyring>>,
}

impl Writes {
    /// A channel for writers; `spawn` starts them on its receiving end.
    pub(crate) fn channel(keyring: Option<Arc<Keyring>>) -> (Writes, mpsc::Receiver<Write>) {
        let (inbox, outbox) = mpsc::channel(4 * MAX_BATCH);
        let writes = Writes {
            inbox,
            health: Health::default(),
            keyring,
        };
        (writes, outbox)
    }

    /// Applies `op` in the next group and answers once it committed.
    pub(crate) async fn apply(&self, op: Op) -> Result<Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Write { op, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// [`super::JobStore::claim`] through the writers.
    pub(crate) async fn claim(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        lane: Lane,
        limit: u32,
        max_age: Duration,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let claim = Op::Claim {
            now,
            lease,
            lane,
            limit,
            max_age,
        };
        match self.apply(claim).await? {
            Answer::Claimed(jobs) => Ok(jobs),
            other => Err(unexpected(other)),
        }
    }

    /// [`super::JobStore::renew`] through the writers.
    pub(crate) async fn renew(
        &self,
        lease: &Lease,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let lease = *lease;
        self.fenced(Op::Renew { lease, until }).await
    }

    /// [`super::JobStore::record_with`] through the writers.
    pub(crate) async fn record(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        now: OffsetDateTime,
        notice: Option<&NewJob>,
    ) -> Result<bool, StoreError> {
        // A peer's NUL would fail the whole commit group on PostgreSQL.
        let (lease, outcome) = (*lease, outcome.storable());
        let notice = match notice {
            Some(job) => Some(Box::new(Enqueue {
                stored: self.stored(&job.message)?,
                job: job.clone(),
            })),
            None => None,
        };
        self.fenced(Op::Record {
            lease,
            outcome,
            now,
            notice,
        })
        .await
    }

    async fn fenced(&self, op: Op) -> Result<bool, StoreError> {
        match self.apply(op).await? {
            Answer::Applied(applied) => Ok(applied),
            other => Err(unexpected(other)),
        }
    }

    /// [`super::JobStore::enqueue`] through the writers; a new message counts
    /// in its tenant's pending figure at once.
    pub(crate) async fn enqueue(
        &self,
        job: NewJob,
        pending: &super::pending::PendingCache,
    ) -> Result<Enqueued, StoreError> {
        let (tenant, transport) = (job.message.tenant.clone(), job.transport.clone());
        let (ticket, receipt) = ticket();
        let stored = self.stored(&job.message)?;
        let op = Op::Enqueue(Box::new(Enqueue { job, stored }));
        (self
            .inbox
            .send(Write {
                op,
                reply: ticket.0,
            })
            .await)
            .map_err(|_| stopped())?;
        self.handed_over(&tenant, &transport, receipt, pending)
            .await
    }

    /// [`Self::enqueue`]'s first half, for a thread outside the async
    /// runtime (a rendering thread): packs the message and hands it to the
    /// writers, whose answer goes to `ticket`'s receipt. The thread that
    /// rendered a message thus hands it over itself, and the request's task
    /// is woken once, by the commit, instead of once for the rendered
    /// content and again for the commit. A full inbox holds this thread
    /// until there is room, as the async sender waits.
    pub(crate) fn hand_over(&self, job: NewJob, ticket: Ticket) {
        let stored = match self.stored(&job.message) {
            Ok(stored) => stored,
            Err(e) => {
                let _ = ticket.0.send(Err(e));
                return;
            }
        };
        let write = Write {
            op: Op::Enqueue(Box::new(Enqueue { job, stored })),
            reply: ticket.0,
        };
        match self.inbox.try_send(write) {
            // A closed inbox drops the reply: the receipt reads "stopped".
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(write)) => {
                match tokio::runtime::Handle::try_current() {
                    // Never block an async thread: a task waits for room.
                    Ok(runtime) => {
                        let inbox = self.inbox.clone();
                        runtime.spawn(async move {
                            let _ = inbox.send(write).await;
                        });
                    }
                    Err(_) => {
                        let _ = self.inbox.blocking_send(write);
                    }
                }
            }
        }
    }

    /// [`Self::enqueue`]'s second half: the answer of a message handed over
    /// with [`Self::hand_over`] for `tenant` by `transport`.
    pub(crate) async fn handed_over(
        &self,
        tenant: &str,
        transport: &str,
        receipt: Receipt,
        pending: &super::pending::PendingCache,
    ) -> Result<Enqueued, StoreError> {
        match receipt.0.await.map_err(|_| stopped())?? {
            Answer::Enqueued(done) => {
                // Notices are not counted in the pending bound (see `pending_count`).
                if done.stored() && super::Lane::of(transport) == super::Lane::Messages {
                    pending.accepted(tenant);
                }
                Ok(done)
            }
            other => Err(unexpected(other)),
        }
    }

    /// The `message` column of `message`: sealed, or packed plain text.
    fn stored(&self, message: &OutgoingMessage) -> Result<Stored, StoreError> {
        match &self.keyring {
            Some(keyring) => keyring
                .seal(message)
                .map(|sealed| Stored::Text(sealed.to_string())),
            None => serde_json::to_vec(message)
                .map_err(|e| SealError(e.to_string()))
                .and_then(|json| packing::pack(&json).map(Stored::Packed)),
        }
        .map_err(|e| StoreError(anyhow::anyhow!("storing a message: {e}")))
    }

    /// Fails unless a probe write commits.
    pub(crate) async fn probe(&self) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        match self.apply(Op::Probe { now }).await? {
            Answer::Probed => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

fn stopped() -> StoreError {
    StoreError(anyhow::anyhow!("the store's writer has stopped"))
}

fn unexpected(answer: Answer) -> StoreError {
    StoreError(anyhow::anyhow!("queue store: unexpected answer {answer:?}"))
}

/// Answers a group: each its own answer after a commit, all the failure
/// otherwise.
pub(crate) fn answer(
    health: &Health,
    ops: &[Op],
    replies: Vec<oneshot::Sender<Result<Answer, StoreError>>>,
    result: anyhow::Result<Vec<Answer>>,
) {
    match result {
        Ok(answers) => {
            health.committed(ops);
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(e) => {
            health.failed(ops);
            let unknown = super::outcome_unknown(&e);
            let e = format!("{e:#}");
            if unknown {
                tracing::error!(error = %e, count = replies.len(), "queue changes may or may not be committed; callers are told so");
            } else {
                tracing::error!(error = %e, count = replies.len(), "could not commit queue changes; none of them is stored, callers get an error");
            }
            for reply in replies {
                let error = match unknown {
                    true => anyhow::Error::new(super::OutcomeUnknown).context(e.clone()),
                    false => anyhow::anyhow!("commit failed, nothing stored: {e}"),
                };
                let _ = reply.send(Err(StoreError(error)));
            }
        }
    }
}

/// Splits waiting writes into their ops and reply channels.
pub(crate) fn split(
    batch: &mut Vec<Write>,
) -> (Vec<Op>, Vec<oneshot::Sender<Result<Answer, StoreError>>>) {
    batch.drain(..).map(|w| (w.op, w.reply)).unzip()
}

/// An op's time, never older than the moment the op is applied: a claim that
/// waited out a store outage must not hand out a lease that already ended
/// (the next claim would take the message again while it is being sent).
/// Later times are kept (tests claim "in an hour").
pub(crate) fn current(queued_at: OffsetDateTime) -> OffsetDateTime {
    queued_at.max(OffsetDateTime::now_utc())
}

/// The moment before which a lease that ran out counts as abandoned and its
/// message may be claimed again: one lease length after it ended. Until then
/// the attempt that held it can still record what it came to (outcomes are
/// fenced by the claim, not by the lease's end), so an attempt whose send
/// succeeded while the store was away records `sent` when the store is back,
/// instead of racing a second claim that would send the message again. A
/// replica that died has its messages claimed again one to two lease lengths later.
/// Forward steps of this machine's wall clock in the last two lease lengths
/// push the moment back by as much (see [`super::clock_steps`]).
pub(crate) fn abandoned_before(now: OffsetDateTime, lease: Duration) -> OffsetDateTime {
    now - lease - super::clock_steps::forward_steps(lease * 2)
}

/// The lease of a message stored already claimed for its first attempt
/// (`?wait=true`, or every recipient suppressed); `None` for a queued one.
pub(crate) fn first_lease(job: &NewJob) -> Option<Lease> {
    job.lease.map(|lease| Lease {
        id: job.message.id,
        attempt: 1,
        claim: 1,
        until: current(job.now) + lease,
    })
}
