//! The SQLite store: durable commits, idempotency window, group commit under
//! concurrency, leases and their expiry, listing and requeueing.

use std::sync::Arc;
use std::time::Duration;

use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::queue::sqlite::SqliteStore;
use mailbridge::queue::{Enqueued, JobStore, ListFilter, NewJob, Status};
use time::OffsetDateTime;
use uuid::Uuid;

fn message(tenant: &str) -> OutgoingMessage {
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

fn job(tenant: &str, key: Option<&str>, now: OffsetDateTime) -> NewJob {
    NewJob {
        message: message(tenant),
        idempotency_key: key.map(str::to_owned),
        transport: "default".into(),
        now,
        lease: None,
    }
}

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&format!("sqlite://{}/q/mb.db", dir.path().display()))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_commit_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let id = {
        let store = open(&dir).await;
        match store.enqueue(job("acme", None, now)).await.unwrap() {
            Enqueued::Created(id) => id,
            other => panic!("{other:?}"),
        }
    };
    let store = open(&dir).await;
    let record = store.get(id).await.unwrap().expect("still there");
    assert_eq!(record.status, Status::Queued);
    assert_eq!(record.tenant, "acme");
    assert_eq!(store.pending_count("acme").await.unwrap(), 1);
    assert_eq!(store.pending_count("other").await.unwrap(), 0);
}

#[tokio::test]
async fn idempotency_keys_hold_for_24_hours_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
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

#[tokio::test]
async fn concurrent_enqueues_are_all_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn JobStore> = Arc::new(open(&dir).await);
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

#[tokio::test]
async fn leases_expire_and_the_message_is_claimed_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = OffsetDateTime::now_utc();
    store.enqueue(job("acme", None, now)).await.unwrap();
    let claimed = store.claim(now, Duration::from_secs(60), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 1);
    assert!(
        store
            .claim(now, Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "held by the lease"
    );
    let after = now + Duration::from_secs(61);
    let again = store
        .claim(after, Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "an expired lease is claimable");
    assert_eq!(again[0].attempt, 2);
    assert_eq!(
        again[0].message.message_id, claimed[0].message.message_id,
        "same Message-ID"
    );
}

#[tokio::test]
async fn outcomes_listing_and_requeue() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = OffsetDateTime::now_utc();
    for _ in 0..3 {
        store.enqueue(job("acme", None, now)).await.unwrap();
    }
    let claimed = store.claim(now, Duration::from_secs(60), 10).await.unwrap();
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
    assert!(
        store
            .claim(now, Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    assert_eq!(
        store
            .claim(next, Duration::from_secs(60), 10)
            .await
            .unwrap()
            .len(),
        1
    );

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

#[tokio::test]
async fn retention_drops_old_sent_bodies_but_keeps_their_status() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = OffsetDateTime::now_utc();
    for _ in 0..2 {
        store.enqueue(job("acme", None, now)).await.unwrap();
    }
    let claimed = store.claim(now, Duration::from_secs(60), 10).await.unwrap();
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
