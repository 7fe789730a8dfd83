//! Attempts under their lease, with the real SQLite store and scripted
//! transports: a send is cut at the lease's length and retried, an attempt
//! whose lease was taken stops and records nothing, a panicking transport
//! ends its message as `failed` once, and the worker keeps going.

use crate::store_contract;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mailbridge::email::OutgoingMessage;
use mailbridge::queue::retry::RetryPolicy;
use mailbridge::queue::sqlite::SqliteStore;
use mailbridge::queue::worker::{Worker, WorkerConfig};
use mailbridge::queue::{JobStore, Lane, MessageRecord, Outcome, Status};
use mailbridge::transport::{Delivery, Transport, TransportError, Transports};
use time::OffsetDateTime;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(3);

/// What the scripted transport does on each call, in order (then: deliver).
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Answer a permanent 550 after this long.
    LateRefusal(Duration),
    /// Panic.
    Panic,
}

#[derive(Debug, Default)]
struct Scripted {
    steps: std::sync::Mutex<Vec<Step>>,
    calls: AtomicU32,
    delivered: AtomicU32,
    /// Set when a send was dropped before it answered.
    cut: Arc<AtomicBool>,
}

struct CutOnDrop(Arc<AtomicBool>, bool);

impl Drop for CutOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl Transport for Scripted {
    async fn send(&self, _message: &OutgoingMessage) -> Result<Delivery, TransportError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let step = {
            let mut steps = self.steps.lock().unwrap();
            (!steps.is_empty()).then(|| steps.remove(0))
        };
        match step {
            Some(Step::LateRefusal(after)) => {
                let mut guard = CutOnDrop(self.cut.clone(), false);
                tokio::time::sleep(after).await;
                guard.1 = true;
                Err(TransportError::permanent("550 5.1.1 late refusal"))
            }
            Some(Step::Panic) => panic!("a bug in a transport"),
            None => {
                self.delivered.fetch_add(1, Ordering::SeqCst);
                Ok(Delivery {
                    provider_message_id: Some("250 queued".into()),
                })
            }
        }
    }
}

struct Rig {
    store: Arc<dyn JobStore>,
    transport: Arc<Scripted>,
    worker: Worker,
    _dir: tempfile::TempDir,
}

async fn rig(steps: Vec<Step>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn JobStore> = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/mb.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let transport = Arc::new(Scripted {
        steps: std::sync::Mutex::new(steps),
        ..Scripted::default()
    });
    let mut transports = Transports::default();
    transports.insert("default", transport.clone());
    let config = WorkerConfig {
        lease: LEASE,
        poll_interval: Duration::from_millis(20),
        ..WorkerConfig::default()
    };
    let policy = RetryPolicy {
        base: Duration::from_millis(50),
        max_interval: Duration::from_millis(100),
        max_attempts: 5,
        max_age: Duration::from_secs(600),
    };
    let worker = Worker::new(store.clone(), transports, policy, config);
    Rig {
        store,
        transport,
        worker,
        _dir: dir,
    }
}

async fn enqueue(store: &Arc<dyn JobStore>) -> Uuid {
    let job = store_contract::job("acme", None, OffsetDateTime::now_utc());
    let id = job.message.id;
    store.enqueue(job).await.unwrap();
    id
}

async fn wait_for(store: &Arc<dyn JobStore>, id: Uuid, status: Status) -> MessageRecord {
    for _ in 0..600 {
        let record = store.get(id).await.unwrap().unwrap();
        if record.status == status {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never {status:?}: {:?}", store.get(id).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_outlives_its_lease_is_cut_and_its_late_answer_never_counts() {
    let rig = rig(vec![Step::LateRefusal(LEASE * 2)]).await;
    let id = enqueue(&rig.store).await;
    let running = tokio::spawn(rig.worker.clone().run(std::future::pending()));
    let record = wait_for(&rig.store, id, Status::Sent).await;
    assert_eq!(record.attempts, 2, "cut once, then delivered");
    assert!(
        rig.transport.cut.load(Ordering::SeqCst),
        "the first send was stopped at the lease's bound, before its late answer"
    );
    // Past the moment the first attempt would have answered 550.
    tokio::time::sleep(LEASE + Duration::from_secs(1)).await;
    let record = rig.store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Sent, "{record:?}");
    assert_eq!(rig.transport.delivered.load(Ordering::SeqCst), 1);
    running.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_lease_was_taken_stops_and_records_nothing() {
    let rig = rig(vec![Step::LateRefusal(Duration::from_secs(30))]).await;
    let id = enqueue(&rig.store).await;
    let claimed = rig
        .store
        .claim(
            OffsetDateTime::now_utc(),
            LEASE,
            Lane::Messages,
            1,
            crate::store_contract::RETRY_AGE,
        )
        .await
        .unwrap()
        .remove(0);
    let attempt = rig.worker.spawn_attempt(claimed);
    // Another replica sees the lease as expired (its clock runs ahead) and
    // takes the message before the first renewal.
    let ahead = OffsetDateTime::now_utc() + LEASE + LEASE * 10 + Duration::from_secs(1);
    let thief = rig
        .store
        .claim(
            ahead,
            LEASE * 10,
            Lane::Messages,
            1,
            crate::store_contract::RETRY_AGE,
        )
        .await
        .unwrap()
        .remove(0);
    let outcome = tokio::time::timeout(LEASE * 2, attempt)
        .await
        .expect("the attempt stops within its lease")
        .unwrap();
    assert!(
        matches!(
            &outcome,
            mailbridge::queue::worker::AttemptOutcome::Abandoned { .. }
        ),
        "{outcome:?}"
    );
    assert!(
        rig.transport.cut.load(Ordering::SeqCst),
        "the send was stopped"
    );
    let record = rig.store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.last_error),
        (Status::Sending, None),
        "nothing recorded"
    );
    let sent = Outcome::Sent {
        provider_message_id: Some("second".into()),
    };
    let now = OffsetDateTime::now_utc();
    assert!(rig.store.record(&thief.lease, &sent, now).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_transport_fails_its_message_once_and_the_worker_goes_on() {
    let rig = rig(vec![Step::Panic]).await;
    let first = enqueue(&rig.store).await;
    let running = tokio::spawn(rig.worker.clone().run(std::future::pending()));
    let record = wait_for(&rig.store, first, Status::Failed).await;
    assert_eq!(record.attempts, 1, "not claimed again and again");
    let reason = record.last_error.unwrap_or_default();
    assert!(reason.contains("a bug in a transport"), "{reason}");
    let second = enqueue(&rig.store).await;
    wait_for(&rig.store, second, Status::Sent).await;
    assert!(rig.worker.is_running());
    assert_eq!(rig.transport.calls.load(Ordering::SeqCst), 2);
    running.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_lease_already_ended_does_not_send() {
    let rig = rig(vec![]).await;
    let id = enqueue(&rig.store).await;
    let mut claimed = rig
        .store
        .claim(
            OffsetDateTime::now_utc(),
            LEASE,
            Lane::Messages,
            1,
            crate::store_contract::RETRY_AGE,
        )
        .await
        .unwrap()
        .remove(0);
    claimed.lease.until = OffsetDateTime::now_utc() - Duration::from_secs(1);
    let outcome = rig.worker.attempt(claimed).await;
    assert!(
        matches!(
            &outcome,
            mailbridge::queue::worker::AttemptOutcome::Abandoned { .. }
        ),
        "{outcome:?}"
    );
    assert_eq!(
        rig.transport.calls.load(Ordering::SeqCst),
        0,
        "nothing sent"
    );
    let record = rig.store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Sending, "nothing recorded");
}
