//! What every queue store must do, whatever its database: idempotency
//! window, concurrent enqueues, leases, outcomes, listing, requeueing and
//! retention. Each check takes a fresh, empty store.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::queue::{ClaimedJob, Enqueued, JobStore, ListFilter, NewJob, Status};
use time::OffsetDateTime;
use uuid::Uuid;

pub fn message(tenant: &str) -> OutgoingMessage {
    let id = Uuid::now_v7();
    OutgoingMessage {
        id,
        tenant: tenant.into(),
        message_id: format!("{}@acme.example", id.simple()),
        from: Mailbox::new("no-reply@acme.example"),
        envelope_from: None,
        reply_to: None,
        to: vec![Mailbox::new("ada@example.com")],
        cc: vec![],
        bcc: vec![],
        subject: "Hi".into(),
        text: Some("Hello".into()),
        html: None,
        tags: vec![],
        metadata: Default::default(),
    }
}

pub fn job(tenant: &str, key: Option<&str>, now: OffsetDateTime) -> NewJob {
    NewJob {
        message: message(tenant),
        idempotency_key: key.map(str::to_owned),
        transport: "default".into(),
        now,
        lease: None,
    }
}

/// Claims up to `limit` messages due at `now` under a one-minute lease.
async fn claim(store: &Arc<dyn JobStore>, now: OffsetDateTime, limit: u32) -> Vec<ClaimedJob> {
    store
        .claim(now, Duration::from_secs(60), limit)
        .await
        .unwrap()
}

pub async fn idempotency_keys_hold_for_24_hours_per_tenant(store: Arc<dyn JobStore>) {
    let t0 = OffsetDateTime::now_utc() - Duration::from_secs(25 * 3600);
    let Enqueued::Created(first) = store.enqueue(job("acme", Some("k1"), t0)).await.unwrap() else {
        panic!()
    };
    let soon = t0 + Duration::from_secs(3600);
    assert_eq!(
        store.enqueue(job("acme", Some("k1"), soon)).await.unwrap(),
        Enqueued::Duplicate(first)
    );
    assert!(matches!(
        store
            .enqueue(job("globex", Some("k1"), soon))
            .await
            .unwrap(),
        Enqueued::Created(_)
    ));
    let later = t0 + Duration::from_secs(24 * 3600 + 60);
    let again = store.enqueue(job("acme", Some("k1"), later)).await.unwrap();
    assert!(
        matches!(again, Enqueued::Created(id) if id != first),
        "an expired key may be used again: {again:?}"
    );
}

pub async fn concurrent_enqueues_are_all_committed(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let store = store.clone();
        // Every tenth request repeats the key of the one before it.
        let key = format!("key-{}", i - i % 10 / 9);
        tasks.push(tokio::spawn(async move {
            store.enqueue(job("acme", Some(&key), now)).await.unwrap()
        }));
    }
    let mut created = 0;
    let mut duplicates = 0;
    for t in tasks {
        match t.await.unwrap() {
            Enqueued::Created(_) => created += 1,
            Enqueued::Duplicate(_) => duplicates += 1,
        }
    }
    assert_eq!(created + duplicates, 300);
    assert_eq!(
        duplicates, 30,
        "each repeated key inside a commit group is found"
    );
    assert_eq!(store.pending_count("acme").await.unwrap(), 270);
}

pub async fn leases_expire_and_the_message_is_claimed_again(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    store.enqueue(job("acme", None, now)).await.unwrap();
    let claimed = claim(&store, now, 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 1);
    assert!(claim(&store, now, 10).await.is_empty(), "held by the lease");
    let after = now + Duration::from_secs(61);
    let again = claim(&store, after, 10).await;
    assert_eq!(again.len(), 1, "an expired lease is claimable");
    assert_eq!(again[0].attempt, 2);
    assert_eq!(
        again[0].message.message_id, claimed[0].message.message_id,
        "same Message-ID"
    );
}

pub async fn outcomes_listing_and_requeue(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    for _ in 0..3 {
        store.enqueue(job("acme", None, now)).await.unwrap();
    }
    let claimed = claim(&store, now, 10).await;
    let ids: Vec<Uuid> = claimed.iter().map(|j| j.message.id).collect();
    store.mark_sent(ids[0], Some("prov-1"), now).await.unwrap();
    let next = now + Duration::from_secs(30);
    store
        .mark_retrying(ids[1], "451 try later", next, now)
        .await
        .unwrap();
    store
        .mark_failed(ids[2], "550 no such user", now)
        .await
        .unwrap();

    let sent = store.get(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (sent.status, sent.provider_message_id.as_deref()),
        (Status::Sent, Some("prov-1"))
    );
    assert!(sent.sent_at.is_some());
    let retrying = store.get(ids[1]).await.unwrap().unwrap();
    assert_eq!(retrying.status, Status::Retrying);
    assert_eq!(retrying.last_error.as_deref(), Some("451 try later"));
    assert!(retrying.next_attempt_at.is_some());
    assert!(claim(&store, now, 10).await.is_empty(), "not due yet");
    assert_eq!(claim(&store, next, 10).await.len(), 1);

    let failed = store
        .list(&ListFilter {
            status: Some(Status::Failed),
            tenant: Some("acme".into()),
            limit: 10,
            before: None,
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, ids[2]);
    assert!(
        !store.requeue_failed(ids[0], now).await.unwrap(),
        "only failed messages"
    );
    assert!(store.requeue_failed(ids[2], now).await.unwrap());
    assert_eq!(
        store.get(ids[2]).await.unwrap().unwrap().status,
        Status::Queued
    );
}

pub async fn retention_drops_old_sent_bodies_but_keeps_their_status(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    for _ in 0..2 {
        store.enqueue(job("acme", None, now)).await.unwrap();
    }
    let claimed = claim(&store, now, 10).await;
    let old = claimed[0].message.id;
    let failed = claimed[1].message.id;
    store
        .mark_sent(old, None, now - Duration::from_secs(8 * 24 * 3600))
        .await
        .unwrap();
    store
        .mark_failed(failed, "550 no", now - Duration::from_secs(8 * 24 * 3600))
        .await
        .unwrap();
    let purged = store
        .purge_sent_bodies(now - Duration::from_secs(7 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(purged, 1, "only the sent message loses its body");
    assert_eq!(
        store.get(old).await.unwrap().unwrap().status,
        Status::Sent,
        "the status row stays"
    );
    assert!(
        store.requeue_failed(failed, now).await.unwrap(),
        "a failed message keeps its body and can be retried"
    );
    assert!(store.delete(old).await.unwrap());
    assert!(store.get(old).await.unwrap().is_none());
}

/// Many workers claiming at once, through one store or several (replicas on
/// one database): every message is claimed exactly once.
pub async fn concurrent_claims_never_overlap(stores: Vec<Arc<dyn JobStore>>) {
    let now = OffsetDateTime::now_utc();
    let mut expected = std::collections::HashSet::new();
    for _ in 0..200 {
        match stores[0].enqueue(job("acme", None, now)).await.unwrap() {
            Enqueued::Created(id) => expected.insert(id),
            other => panic!("{other:?}"),
        };
    }
    let mut workers = Vec::new();
    for i in 0..8 {
        let store = stores[i % stores.len()].clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = claim(&store, now, 7).await;
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|j| j.message.id));
            }
        }));
    }
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for w in workers {
        for id in w.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "{id} was claimed twice");
        }
    }
    assert_eq!(total, 200);
    assert_eq!(seen, expected);
    for store in &stores {
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.queued, stats.sending), (0, 200));
    }
}

/// The figures behind `/metrics`: counts per unfinished status, and the
/// oldest message not yet sent (failed ones do not count as waiting).
pub async fn queue_figures(store: Arc<dyn JobStore>) {
    let empty = store.stats().await.unwrap();
    assert_eq!(empty, Default::default());
    let now = OffsetDateTime::now_utc();
    let old = now - Duration::from_secs(3600);
    let older = now - Duration::from_secs(7200);
    store.enqueue(job("acme", None, older)).await.unwrap();
    store.enqueue(job("acme", None, old)).await.unwrap();
    for _ in 0..3 {
        store.enqueue(job("globex", None, now)).await.unwrap();
    }
    // The two oldest are claimed first: one fails for good, one will be retried.
    let claimed = claim(&store, now, 2).await;
    assert_eq!(claimed.len(), 2);
    let (first, second) = (claimed[0].message.id, claimed[1].message.id);
    store.mark_failed(first, "550 no", now).await.unwrap();
    store
        .mark_retrying(second, "451 later", now + Duration::from_secs(60), now)
        .await
        .unwrap();
    claim(&store, now, 1).await;
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.queued, stats.sending, stats.retrying, stats.failed),
        (2, 1, 1, 1)
    );
    let oldest = stats.oldest_unsent.expect("something waits");
    let second_created = store.get(second).await.unwrap().unwrap().created_at;
    assert_eq!(oldest, second_created, "the failed one does not count");
    assert!((oldest - old).abs() < time::Duration::milliseconds(1));
    assert_eq!(store.pending_count("globex").await.unwrap(), 3);
}
