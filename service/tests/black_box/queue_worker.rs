//! The worker with a recording transport: outcomes, the retry policy and
//! `retry_after`, the dead-letter state, and shutdown.

use std::sync::Arc;
use std::time::Duration;

use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::queue::retry::RetryPolicy;
use mailbridge::queue::sqlite::SqliteStore;
use mailbridge::queue::worker::{Worker, WorkerConfig};
use mailbridge::queue::{JobStore, NewJob, Origin, Status};
use mailbridge::transport::memory::MemoryTransport;
use mailbridge::transport::{TransportError, Transports};
use time::OffsetDateTime;
use uuid::Uuid;

struct Rig {
    store: Arc<dyn JobStore>,
    transport: MemoryTransport,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// A fresh SQLite store in its own directory, and a recording transport
/// as the only one, named `default`.
async fn store_and_transport() -> (
    Arc<dyn JobStore>,
    MemoryTransport,
    Transports,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn JobStore> = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/mb.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let transport = MemoryTransport::new();
    let mut transports = Transports::default();
    transports.insert("default", Arc::new(transport.clone()));
    (store, transport, transports, dir)
}

async fn rig(policy: RetryPolicy) -> Rig {
    let (store, transport, transports, dir) = store_and_transport().await;
    let config = WorkerConfig {
        poll_interval: Duration::from_millis(20),
        ..WorkerConfig::default()
    };
    // Jitter 1.0: every delay is its ceiling, so the schedule is exact.
    let worker =
        Worker::new(store.clone(), transports, policy, config).with_jitter(Arc::new(|| 1.0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    Rig {
        store,
        transport,
        stop,
        task,
        _dir: dir,
    }
}

impl Rig {
    /// The transport's next `n` attempts are refused, as by a relay that is down.
    fn refuse(&self, n: usize) {
        for _ in 0..n {
            self.transport.push_result(Err(TransportError::transient(
                "connection to relay:587 failed: refused",
            )));
        }
    }

    /// `n` new messages.
    async fn enqueue(&self, n: usize) -> Vec<Uuid> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(enqueue(&self.store).await);
        }
        ids
    }
}

/// Holds of 5 s, and the first five attempts refused: the fifth begins a hold.
async fn five_second_holds() -> Rig {
    let rig = rig(RetryPolicy {
        base: Duration::from_secs(5),
        max_interval: Duration::from_secs(5),
        ..quick()
    })
    .await;
    rig.refuse(5);
    rig
}

async fn enqueue(store: &Arc<dyn JobStore>) -> Uuid {
    let message = OutgoingMessage::plain(
        "acme",
        Mailbox::new("no-reply@acme.example"),
        Mailbox::new("ada@example.com"),
        "Hi",
        "Hello",
    );
    let id = message.id;
    let job = NewJob {
        message,
        idempotency_key: None,
        transport: "default".into(),
        now: OffsetDateTime::now_utc(),
        lease: None,
        origin: Origin::default(),
        limits: Vec::new(),
    };
    store.enqueue(job).await.unwrap();
    id
}

async fn wait_for(
    store: &Arc<dyn JobStore>,
    id: Uuid,
    status: Status,
) -> mailbridge::queue::MessageRecord {
    for _ in 0..400 {
        let record = store.get(id).await.unwrap().unwrap();
        if record.status == status {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "message never became {status:?}: {:?}",
        store.get(id).await.unwrap()
    );
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(50),
        max_interval: Duration::from_millis(200),
        max_attempts: 4,
        max_age: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn transient_failures_are_retried_with_the_same_message_id() {
    let rig = rig(quick()).await;
    rig.transport
        .push_result(Err(TransportError::transient("451 4.3.0 try later")));
    rig.transport
        .push_result(Err(TransportError::auth("535 token expired")));
    let id = enqueue(&rig.store).await;
    let record = wait_for(&rig.store, id, Status::Sent).await;
    assert_eq!(record.attempts, 3);
    let attempts = rig.transport.attempts();
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts
            .iter()
            .all(|m| m.message_id == attempts[0].message_id)
    );
    let _ = rig.stop.send(());
    rig.task.await.unwrap();
}

#[tokio::test]
async fn a_transient_failure_shows_retrying_with_the_next_attempt_time() {
    // The hint is a floor up to the longest delay (here ten minutes).
    let rig = rig(RetryPolicy {
        base: Duration::from_secs(30),
        max_interval: Duration::from_secs(600),
        max_age: Duration::from_secs(3600),
        ..quick()
    })
    .await;
    rig.transport
        .push_result(Err(TransportError::transient_after(
            "429 slow down",
            Some(Duration::from_secs(120)),
        )));
    let before = OffsetDateTime::now_utc();
    let id = enqueue(&rig.store).await;
    let record = wait_for(&rig.store, id, Status::Retrying).await;
    assert_eq!(
        record.last_error.as_deref(),
        Some("transient failure: 429 slow down")
    );
    let next = record.next_attempt_at.unwrap();
    assert!(
        next >= before + Duration::from_secs(120),
        "retry_after is a floor: {next}"
    );
    assert!(next <= OffsetDateTime::now_utc() + Duration::from_secs(121));
    let _ = rig.stop.send(());
    rig.task.await.unwrap();
}

#[tokio::test]
async fn permanent_failures_and_exhausted_attempts_dead_letter() {
    let rig = rig(quick()).await;
    rig.transport
        .push_result(Err(TransportError::permanent("550 5.1.1 user unknown")));
    let id = enqueue(&rig.store).await;
    let record = wait_for(&rig.store, id, Status::Failed).await;
    assert_eq!(record.attempts, 1);
    assert!(record.last_error.unwrap().contains("550 5.1.1"));

    for _ in 0..4 {
        rig.transport
            .push_result(Err(TransportError::transient("421 busy")));
    }
    let id = enqueue(&rig.store).await;
    let record = wait_for(&rig.store, id, Status::Failed).await;
    assert_eq!(record.attempts, 4);
    assert!(
        record
            .last_error
            .unwrap()
            .contains("gave up after 4 attempts")
    );
    assert!(rig.transport.sent().is_empty());
    let _ = rig.stop.send(());
    rig.task.await.unwrap();
}

/// The transport refuses connections for a while: after a few failures in a
/// row it is held, the messages wait without spending their attempts, and
/// one attempt at a time probes it. Without the hold, these 40 refusals
/// spread over 10 messages of 3 attempts each would fail them all.
#[tokio::test]
async fn a_transport_that_is_down_holds_messages_without_spending_their_attempts() {
    let rig = rig(RetryPolicy {
        max_attempts: 3,
        max_interval: Duration::from_millis(100),
        ..quick()
    })
    .await;
    rig.refuse(40);
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(enqueue(&rig.store).await);
    }
    for id in ids {
        let record = wait_for(&rig.store, id, Status::Sent).await;
        assert!(record.attempts <= 3, "{record:?}");
    }
    assert_eq!(rig.transport.attempts().len(), 50, "every refusal was met");
    assert_eq!(rig.transport.sent().len(), 10);
    let _ = rig.stop.send(());
    rig.task.await.unwrap();
}

/// Held messages still end at the retry policy's age.
#[tokio::test]
async fn a_held_message_fails_at_its_max_age() {
    let rig = rig(RetryPolicy {
        max_attempts: 100,
        max_age: Duration::from_secs(2),
        ..quick()
    })
    .await;
    for _ in 0..10_000 {
        rig.transport
            .push_result(Err(TransportError::transient("HTTP 503").with_code(503)));
    }
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(enqueue(&rig.store).await);
    }
    let mut held = 0;
    for id in ids {
        let record = wait_for(&rig.store, id, Status::Failed).await;
        let error = record.last_error.unwrap();
        assert!(error.contains("gave up"), "{error}");
        assert!(
            record.attempts < 20,
            "held, not hammered: {}",
            record.attempts
        );
        held += usize::from(error.contains("the transport `default` is down"));
    }
    assert!(held > 0, "some message was failed while held");
    let _ = rig.stop.send(());
    rig.task.await.unwrap();
}

/// When the probe finds the transport working again, what it held is due at
/// once: not a hold later (here 5 s; the others would go at about 10 s).
#[tokio::test]
async fn held_messages_go_as_soon_as_the_probe_succeeds() {
    let rig = five_second_holds().await;
    // The probe is still on its way when the others come due with it.
    rig.transport.set_latency(Duration::from_millis(300));
    let began = std::time::Instant::now();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(enqueue(&rig.store).await);
    }
    for &id in &ids {
        wait_for(&rig.store, id, Status::Retrying).await;
    }
    // Held now: these wait without an attempt.
    for _ in 0..5 {
        ids.push(enqueue(&rig.store).await);
    }
    for id in ids {
        wait_for(&rig.store, id, Status::Sent).await;
    }
    let took = began.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert_eq!(
        rig.transport.attempts().len(),
        15,
        "five refused, then each message once"
    );
    let _ = rig.stop.send(());
    rig.task.await.unwrap();
}

/// A large backlog held back does not all come due at the hold's end: the
/// hold's first 64 messages do (one of them probes the transport), the
/// others spread over one more hold (with this rig's jitter of 1.0, all at
/// its end).
#[tokio::test]
async fn a_large_held_backlog_comes_due_spread_over_one_more_hold() {
    let rig = five_second_holds().await;
    for id in rig.enqueue(5).await {
        wait_for(&rig.store, id, Status::Retrying).await;
    }
    // Held now: these are put back without an attempt.
    let held = rig.enqueue(100).await;
    let mut due = Vec::new();
    for id in held {
        let record = wait_for(&rig.store, id, Status::Retrying).await;
        assert_eq!(record.attempts, 0, "{record:?}");
        due.push(record.next_attempt_at.unwrap());
    }
    due.sort();
    let hold_end = due[0];
    let at_end = due.iter().filter(|&&t| t == hold_end).count();
    let later = due
        .iter()
        .filter(|&&t| t - hold_end >= Duration::from_secs(4))
        .count();
    assert_eq!((at_end, later), (64, 36), "{due:?}");
    let _ = rig.stop.send(());
    rig.task.await.unwrap();
}

#[tokio::test]
async fn a_panic_outside_the_transport_fails_the_message_instead_of_leaving_it_claimed() {
    let (store, transport, transports, _dir) = store_and_transport().await;
    let worker = Worker::new(store.clone(), transports, quick(), WorkerConfig::default());
    let id = enqueue(&store).await;
    let mut job = store
        .claim(
            OffsetDateTime::now_utc(),
            Duration::from_secs(60),
            mailbridge::queue::Lane::Messages,
            1,
            quick().max_age,
        )
        .await
        .unwrap()
        .pop()
        .expect("the message is claimed");
    // A start of its age the retry schedule cannot add to (the last instant
    // `time` knows): the schedule, not the transport, panics.
    job.created_at = time::PrimitiveDateTime::MAX.assume_utc();
    transport.push_result(Err(TransportError::transient("refused")));
    let outcome = worker.attempt(job).await;
    assert!(
        matches!(
            outcome,
            mailbridge::queue::worker::AttemptOutcome::Failed { .. }
        ),
        "{outcome:?}"
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Failed);
    assert!(
        record
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("failed unexpectedly")),
        "{record:?}"
    );
}
