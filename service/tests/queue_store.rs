//! The SQLite store: durable commits, and the store contract (idempotency
//! window, group commit under concurrency, leases, listing, requeueing).

mod store_contract;

use std::sync::Arc;

use mailbridge::queue::sqlite::SqliteStore;
use mailbridge::queue::{Enqueued, JobStore, Status};
use store_contract::job;
use time::OffsetDateTime;

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
    store_contract::idempotency_keys_hold_for_24_hours_per_tenant(Arc::new(open(&dir).await)).await;
}

#[tokio::test]
async fn concurrent_enqueues_are_all_committed() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::concurrent_enqueues_are_all_committed(Arc::new(open(&dir).await)).await;
}

#[tokio::test]
async fn leases_expire_and_the_message_is_claimed_again() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::leases_expire_and_the_message_is_claimed_again(Arc::new(open(&dir).await))
        .await;
}

#[tokio::test]
async fn outcomes_listing_and_requeue() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::outcomes_listing_and_requeue(Arc::new(open(&dir).await)).await;
}

#[tokio::test]
async fn retention_drops_old_sent_bodies_but_keeps_their_status() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::retention_drops_old_sent_bodies_but_keeps_their_status(Arc::new(
        open(&dir).await,
    ))
    .await;
}

#[tokio::test]
async fn concurrent_claims_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::concurrent_claims_never_overlap(vec![Arc::new(open(&dir).await)]).await;
}

#[tokio::test]
async fn queue_figures() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::queue_figures(Arc::new(open(&dir).await)).await;
}

#[tokio::test]
async fn outcomes_are_fenced_by_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::outcomes_are_fenced_by_the_lease(Arc::new(open(&dir).await)).await;
}

#[tokio::test]
async fn renewal_and_release() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::renewal_and_release(Arc::new(open(&dir).await)).await;
}

#[tokio::test]
async fn an_enqueue_can_claim_at_once() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::an_enqueue_can_claim_at_once(Arc::new(open(&dir).await)).await;
}

#[tokio::test]
async fn an_unreadable_row_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/q/mb.db", dir.path().display());
    let store = Arc::new(open(&dir).await);
    store_contract::an_unreadable_row_fails_alone(store, |id| async move {
        let other = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("UPDATE messages SET message = '{\"not\": \"a message\"' WHERE id = ?")
            .bind(id.to_string())
            .execute(&other)
            .await
            .unwrap();
        other.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_late_claim_hands_out_a_live_lease() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::a_late_claim_hands_out_a_live_lease(Arc::new(open(&dir).await)).await;
}
