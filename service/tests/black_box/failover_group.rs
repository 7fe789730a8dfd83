//! `failover(…)` and `roundrobin(…)` over in-process transports whose health
//! the test switches: which one delivers, which one is skipped, for how long.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::transport::failover::{Clock, Group, SKIP_FOR, Strategy};
use mailbridge::transport::{Delivery, SharedTransport, Transport, TransportError};

const UP: u8 = 0;
const DOWN: u8 = 1;
const REFUSES: u8 = 2;
const KEY_REVOKED: u8 = 3;
const RECIPIENT_LATER: u8 = 4;

/// A transport that delivers, fails transiently or refuses, as the test says,
/// and counts the messages it was handed.
#[derive(Debug)]
struct Switchable {
    name: &'static str,
    state: AtomicU8,
    sends: AtomicUsize,
}

impl Switchable {
    fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            state: AtomicU8::new(UP),
            sends: AtomicUsize::new(0),
        })
    }
    fn set(&self, state: u8) {
        self.state.store(state, Ordering::SeqCst);
    }
    fn sends(&self) -> usize {
        self.sends.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Transport for Switchable {
    async fn send(&self, _: &OutgoingMessage) -> Result<Delivery, TransportError> {
        self.sends.fetch_add(1, Ordering::SeqCst);
        match self.state.load(Ordering::SeqCst) {
            UP => Ok(Delivery {
                provider_message_id: Some(self.name.to_owned()),
            }),
            DOWN => Err(TransportError::transient_after(
                format!("{} unreachable", self.name),
                Some(Duration::from_secs(if self.name == "a" { 30 } else { 7 })),
            )),
            REFUSES => Err(TransportError::permanent("550 5.1.1 no such user")),
            RECIPIENT_LATER => Err(TransportError::transient(
                "450 4.1.2 Recipient address rejected: Domain not found",
            )
            .with_code(450)),
            _ => Err(TransportError::refused_credentials(format!(
                "{}: HTTP 401 Unauthorized: invalid API key",
                self.name
            ))),
        }
    }
}

/// A clock the test moves by hand.
fn manual_clock() -> (Clock, Arc<Mutex<Instant>>) {
    let now = Arc::new(Mutex::new(Instant::now()));
    let read = now.clone();
    (Arc::new(move || *read.lock().unwrap()), now)
}

fn advance(now: &Mutex<Instant>, by: Duration) {
    *now.lock().unwrap() += by;
}

fn group(strategy: Strategy, members: &[&Arc<Switchable>], clock: Clock) -> Group {
    let members = members
        .iter()
        .map(|m| (m.name.to_owned(), Arc::clone(*m) as SharedTransport))
        .collect();
    Group::with_clock(strategy, members, clock)
}

fn message() -> OutgoingMessage {
    OutgoingMessage::plain(
        "acme",
        Mailbox::new("no-reply@acme.example"),
        Mailbox::new("ada@example.com"),
        "Hello",
        "Hi",
    )
}

async fn delivered_by(g: &Group) -> String {
    g.send(&message())
        .await
        .unwrap()
        .provider_message_id
        .unwrap()
}

#[tokio::test]
async fn first_down_second_used_and_first_skipped_for_a_minute() {
    let (a, b) = (Switchable::new("a"), Switchable::new("b"));
    let (clock, now) = manual_clock();
    let g = group(Strategy::Failover, &[&a, &b], clock);

    assert_eq!(delivered_by(&g).await, "a");
    a.set(DOWN);
    assert_eq!(delivered_by(&g).await, "b");
    assert_eq!(a.sends(), 2);

    // Within the minute, `a` is not even asked, although it is back.
    a.set(UP);
    advance(&now, SKIP_FOR - Duration::from_secs(1));
    assert_eq!(delivered_by(&g).await, "b");
    assert_eq!(a.sends(), 2);

    // After it, `a` is first again.
    advance(&now, Duration::from_secs(1));
    assert_eq!(delivered_by(&g).await, "a");
    assert_eq!(a.sends(), 3);
}

/// A 4xx about one message's recipient says nothing of the member: the
/// next one is tried for that message, but the member stays first for the
/// others' (any tenant sending to a bad domain would otherwise move every
/// tenant's mail to the backup for a minute).
#[tokio::test]
async fn an_answer_about_one_message_leaves_the_member_up() {
    let (a, b) = (Switchable::new("a"), Switchable::new("b"));
    let (clock, _now) = manual_clock();
    let g = group(Strategy::Failover, &[&a, &b], clock);
    a.set(RECIPIENT_LATER);
    assert_eq!(delivered_by(&g).await, "b");
    a.set(UP);
    assert_eq!(delivered_by(&g).await, "a", "a was not skipped");
}

#[tokio::test]
async fn all_down_is_transient_naming_each_then_delivered_on_recovery() {
    let (a, b) = (Switchable::new("a"), Switchable::new("b"));
    let (clock, now) = manual_clock();
    let g = group(Strategy::Failover, &[&a, &b], clock);
    a.set(DOWN);
    b.set(DOWN);

    let err = g.send(&message()).await.unwrap_err();
    assert!(err.is_transient());
    assert!(
        err.detail().contains("a: transient failure: a unreachable"),
        "{err}"
    );
    assert!(
        err.detail().contains("b: transient failure: b unreachable"),
        "{err}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));

    // Both are marked down, yet the next attempt (well within the minute)
    // still tries them and finds the one that recovered.
    b.set(UP);
    advance(&now, Duration::from_secs(5));
    assert_eq!(delivered_by(&g).await, "b");
    assert_eq!((a.sends(), b.sends()), (2, 2));
}

#[tokio::test]
async fn a_permanent_refusal_does_not_fail_over() {
    let (a, b) = (Switchable::new("a"), Switchable::new("b"));
    let (clock, _) = manual_clock();
    let g = group(Strategy::Failover, &[&a, &b], clock);
    a.set(REFUSES);

    let err = g.send(&message()).await.unwrap_err();
    assert_eq!(err, TransportError::permanent("550 5.1.1 no such user"));
    assert_eq!(b.sends(), 0);
    // Nor is `a` marked down by it.
    a.set(UP);
    assert_eq!(delivered_by(&g).await, "a");
}

#[tokio::test]
async fn a_revoked_key_fails_over_and_is_skipped_for_a_minute() {
    let (a, b) = (Switchable::new("a"), Switchable::new("b"));
    let (clock, now) = manual_clock();
    let g = group(Strategy::Failover, &[&a, &b], clock);
    a.set(KEY_REVOKED);

    assert_eq!(delivered_by(&g).await, "b");
    assert_eq!(delivered_by(&g).await, "b");
    assert_eq!(a.sends(), 1, "skipped after its refusal");
    advance(&now, SKIP_FOR + Duration::from_secs(1));
    a.set(UP);
    assert_eq!(delivered_by(&g).await, "a");
}

#[tokio::test]
async fn every_key_revoked_is_permanent_like_one_transport_alone() {
    let (a, b) = (Switchable::new("a"), Switchable::new("b"));
    let (clock, _) = manual_clock();
    let g = group(Strategy::Failover, &[&a, &b], clock);
    a.set(KEY_REVOKED);
    b.set(KEY_REVOKED);
    let err = g.send(&message()).await.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert!(
        err.detail().contains("a: ") && err.detail().contains("b: "),
        "{err}"
    );
    // One revoked, one down: a later attempt may pass.
    b.set(DOWN);
    let (clock, _) = manual_clock();
    let g = group(Strategy::Failover, &[&a, &b], clock);
    assert!(g.send(&message()).await.unwrap_err().is_transient());
}

#[tokio::test]
async fn roundrobin_alternates_and_skips_the_one_that_failed() {
    let (a, b, c) = (
        Switchable::new("a"),
        Switchable::new("b"),
        Switchable::new("c"),
    );
    let (clock, now) = manual_clock();
    let g = group(Strategy::RoundRobin, &[&a, &b, &c], clock);

    let mut order = Vec::new();
    for _ in 0..6 {
        order.push(delivered_by(&g).await);
    }
    assert_eq!(order, ["a", "b", "c", "a", "b", "c"]);

    // `b` fails: its message goes on to `c`, and `b` is left out for a minute.
    b.set(DOWN);
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(delivered_by(&g).await);
    }
    assert_eq!(order, ["a", "c", "c", "a"]);
    assert_eq!(b.sends(), 3);

    b.set(UP);
    advance(&now, SKIP_FOR);
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(delivered_by(&g).await);
    }
    assert_eq!(order, ["b", "c", "a"]);
}
