//! The SQLite store: durable commits, and the store contract (idempotency
//! window, group commit under concurrency, leases, listing, requeueing).

use crate::store_contract;

use std::sync::Arc;

use mailbridge::queue::sqlite::SqliteStore;
use mailbridge::queue::{Enqueued, JobStore, Lane, Outcome, Status};
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
async fn an_address_is_removed_in_every_form_it_is_stored_under() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::suppressions::an_address_is_removed_in_every_form_it_is_stored_under(Arc::new(
        open(&dir).await,
    ))
    .await;
}

#[tokio::test]
async fn an_address_is_listed_and_removed_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::suppressions::an_address_is_listed_and_removed_in_any_case(Arc::new(
        open(&dir).await,
    ))
    .await;
}

#[tokio::test]
async fn suppressions_listed_before_addresses_were_lower_cased_suppress_every_spelling() {
    // A store at migration 0011, its entries' local parts as providers and
    // administrators wrote them, then opened by this version.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("q")).unwrap();
    let url = format!("sqlite://{}/q/mb.db?mode=rwc", dir.path().display());
    let old = sqlx::SqlitePool::connect(&url).await.unwrap();
    let earlier = store_contract::migrations_before("migrations", "0012").await;
    earlier.run(&old).await.unwrap();
    for (tenant, email, reason, at) in [
        ("acme", "Ada@example.com", "bounce", 1),
        ("acme", "ada@example.com", "manual", 2),
        ("acme", "GRACE@bücher.example", "complaint", 3),
        ("acme", "Linus@xn--bcher-kva.example", "bounce", 4),
        ("other", "ADA@example.com", "manual", 5),
    ] {
        sqlx::query(
            "INSERT INTO suppressions (tenant, email, reason, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(email)
        .bind(reason)
        .bind(at)
        .execute(&old)
        .await
        .unwrap();
    }
    old.close().await;

    let store = open(&dir).await;
    store_contract::suppressions::entries_listed_before_lower_casing_are_one_per_address(&store)
        .await;
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
async fn messages_handed_over_from_threads_are_answered_as_enqueued() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::messages_handed_over_from_threads_are_answered_as_enqueued(Arc::new(
        open(&dir).await,
    ))
    .await;
}

#[tokio::test]
async fn leases_expire_and_the_message_is_claimed_again() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::leases_expire_and_the_message_is_claimed_again(Arc::new(open(&dir).await))
        .await;
}

#[tokio::test]
async fn claims_take_the_oldest_due_of_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::claims_take_the_oldest_due_of_every_kind(Arc::new(open(&dir).await)).await;
}

#[tokio::test]
async fn notices_are_claimed_fairly_across_destinations() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::notices_are_claimed_fairly_across_destinations(Arc::new(open(&dir).await))
        .await;
}

#[tokio::test]
async fn the_least_busy_destination_takes_a_freed_notice_slot() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::the_least_busy_destination_takes_a_freed_notice_slot(Arc::new(
        open(&dir).await,
    ))
    .await;
}

#[tokio::test]
async fn each_lane_claims_only_its_own_rows() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::each_lane_claims_only_its_own_rows(Arc::new(open(&dir).await)).await;
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
async fn retention_drops_the_bodies_of_suppressed_messages_too() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::retention_drops_the_bodies_of_suppressed_messages_too(Arc::new(
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
async fn waking_a_transport_makes_its_waiting_messages_due() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir).await);
    store_contract::waking_a_transport_makes_its_waiting_messages_due(store).await;
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
async fn origin_is_kept_beside_the_body() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::origin_is_kept_beside_the_body(Arc::new(open(&dir).await)).await;
}

#[tokio::test]
async fn a_row_sealed_with_a_key_this_process_lacks_waits_for_it() {
    // One process, restarted with a key removed by mistake (and then without
    // keys at all) before the key is put back.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/q/mb.db", dir.path().display());
    let sealed = |ids: &[&str]| {
        let (url, keys) = (url.clone(), store_contract::keyring(ids));
        async move { Arc::new(SqliteStore::open_sealed(&url, keys).await.unwrap()) as Arc<dyn JobStore> }
    };
    let holder = sealed(&["new", "old"]).await;
    let lacking = vec![sealed(&["old"]).await, sealed(&[]).await];
    store_contract::a_row_sealed_with_a_key_a_replica_lacks_waits_for_one_that_holds_it(
        holder,
        lacking,
        &store_contract::KEY_MATERIAL,
    )
    .await;
}

#[tokio::test]
async fn an_unreadable_row_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/q/mb.db", dir.path().display());
    let store = Arc::new(open(&dir).await);
    store_contract::an_unreadable_row_fails_alone(store, |id| async move {
        let other = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("UPDATE bodies SET message = '{\"not\": \"a message\"' WHERE message_id = ?")
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

#[tokio::test]
async fn delivery_events_are_kept_once_per_provider_event() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::delivery_events_are_kept_once_per_provider_event(Arc::new(open(&dir).await))
        .await;
}

#[tokio::test]
async fn a_signature_is_taken_with_one_body_only() {
    let dir = tempfile::tempdir().unwrap();
    let first: Arc<dyn JobStore> = Arc::new(open(&dir).await);
    store_contract::a_signature_is_taken_with_one_body_only(vec![first]).await;
    // And after a restart: what one process took, the next one knows.
    use mailbridge::events::signature::SignatureToken;
    let now = OffsetDateTime::now_utc();
    let token = SignatureToken::new("tok-9", b"delivered", now);
    assert!(open(&dir).await.take_signature(&token, now).await.unwrap());
    let forged = SignatureToken::new("tok-9", b"failed", now);
    assert!(!open(&dir).await.take_signature(&forged, now).await.unwrap());
}

#[tokio::test]
async fn a_messages_events_are_bounded_keeping_the_final_and_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::events::a_messages_events_are_bounded_keeping_the_final_and_the_latest(
        Arc::new(open(&dir).await),
    )
    .await;
}

#[tokio::test]
async fn a_peers_long_ids_are_stored_and_found() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::a_peers_long_ids_are_stored_and_found(Arc::new(open(&dir).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peers_nul_bytes_are_stored_replaced() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::a_peers_nul_bytes_are_stored_replaced(Arc::new(open(&dir).await)).await;
}

#[tokio::test]
async fn suppressions_and_suppressed_messages() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::suppressions_and_suppressed_messages(Arc::new(open(&dir).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_spend_their_limits_when_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn JobStore> = Arc::new(open(&dir).await);
    store_contract::messages_spend_their_limits_when_stored(vec![store]).await;
}

#[tokio::test]
async fn flow_limit_cells_are_pruned_after_their_window() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::flow_limit_cells_are_pruned_after_their_window(Arc::new(open(&dir).await))
        .await;
}

#[tokio::test]
async fn history_searches_and_breakdown() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::console::history_searches_and_breakdown(Arc::new(open(&dir).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_messages_arriving_together_answer_one_after_the_other() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::groups::new_messages_arriving_together_answer_one_after_the_other(Arc::new(
        open(&dir).await,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_arriving_together_are_fenced_each_by_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::groups::outcomes_arriving_together_are_fenced_each_by_its_lease(Arc::new(
        open(&dir).await,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_is_stored_with_its_outcome_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::groups::a_notice_is_stored_with_its_outcome_and_only_then(Arc::new(
        open(&dir).await,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_outcomes_do_not_copy_the_body() {
    // The body is written once, at accept; a claim and an outcome rewrite
    // only the small status row. Were the body in that row, SQLite would
    // copy it into the WAL at each of them (2 MB per round here).
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir).await);
    let now = OffsetDateTime::now_utc();
    for _ in 0..16 {
        let mut job = job("acme", None, now);
        job.message.text = Some("x".repeat(128 * 1024));
        store.enqueue(job).await.unwrap();
    }
    let other = sqlx::SqlitePool::connect(&format!("sqlite://{}/q/mb.db", dir.path().display()))
        .await
        .unwrap();
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&other)
        .await
        .unwrap();
    assert_eq!(busy, 0, "the WAL was emptied");
    let wal = dir.path().join("q/mb.db-wal");
    let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_size(), 0);

    let claimed = crate::store_contract::claim(&store, now, 100).await;
    assert_eq!(claimed.len(), 16);
    assert_eq!(
        claimed[0].message.text.as_ref().map(String::len),
        Some(128 * 1024)
    );
    let tasks: Vec<_> = claimed
        .into_iter()
        .map(|job| {
            let store = store.clone();
            let sent = Outcome::Sent {
                provider_message_id: None,
            };
            tokio::spawn(async move { store.record(&job.lease, &sent, now).await.unwrap() })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap());
    }
    let written = wal_size();
    assert!(
        written < 1024 * 1024,
        "{written} bytes of WAL for 16 claims and 16 outcomes"
    );
    other.close().await;
}

#[tokio::test]
async fn messages_stored_before_bodies_had_their_own_table_are_still_delivered() {
    // A store at migration 0005 (bodies inside the status rows), then opened
    // by this version: its bodies move to their own table.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("q")).unwrap();
    let url = format!("sqlite://{}/q/mb.db?mode=rwc", dir.path().display());
    let old = sqlx::SqlitePool::connect(&url).await.unwrap();
    let earlier = store_contract::migrations_before("migrations", "0006").await;
    earlier.run(&old).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let message = store_contract::message("acme");
    let ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    sqlx::query(
        "INSERT INTO messages (id, tenant, status, transport, message, created_at, age_from, \
         updated_at, next_attempt_at) VALUES (?, 'acme', 'queued', 'default', ?, ?, ?, ?, ?)",
    )
    .bind(message.id.to_string())
    .bind(serde_json::to_string(&message).unwrap())
    .bind(ms)
    .bind(ms)
    .bind(ms)
    .bind(ms)
    .execute(&old)
    .await
    .unwrap();
    old.close().await;

    let store = Arc::new(open(&dir).await);
    let claimed = crate::store_contract::claim(&store, now, 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message, message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_read_the_due_rows_in_order() {
    // Every kind of claim of each lane reads its due rows in order from the
    // lane's index (`messages_due`, `notices_due`), also when the statistics
    // say that nearly every row is sent: any other plan reads or sorts more
    // than the backlog. Waking a transport's held messages reads only those
    // too, not every row the transport ever sent.
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir).await);
    let other = sqlx::SqlitePool::connect(&format!("sqlite://{}/q/mb.db", dir.path().display()))
        .await
        .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) \
         INSERT INTO messages (id, tenant, status, transport, created_at, age_from, updated_at, sent_at) \
         SELECT 'old-' || i, 'acme', 'sent', CASE WHEN i % 2 = 0 THEN 'webhook' ELSE 'default' END, \
                0, 0, 0, 0 FROM n",
    )
    .execute(&other)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&other).await.unwrap();
    // Messages: each kind of due row from the lane's index. Notices: the
    // waiting tenants and each destination's due rows from
    // `notices_waiting`, its room from `messages_breakdown`, abandoned
    // leases from `notices_due`.
    let steps = |plan: &[String], step: &str| plan.iter().filter(|s| s.contains(step)).count();
    for (lane, searches) in [
        (
            Lane::Messages,
            &[("SEARCH messages USING INDEX messages_due (status=?", 3)][..],
        ),
        (
            Lane::Notices,
            &[
                ("USING INDEX notices_waiting", 3),
                ("SEARCH m USING INDEX notices_waiting (tenant>?)", 1),
                (
                    "USING INDEX notices_waiting (tenant=? AND transport=? AND next_attempt_at<?)",
                    1,
                ),
                (
                    "USING COVERING INDEX messages_breakdown (tenant=? AND status=? AND transport=?)",
                    2,
                ),
                ("SEARCH messages USING INDEX notices_due (status=?", 1),
            ][..],
        ),
    ] {
        let plan = explain(&other, mailbridge::queue::sqlite::claim_statement(lane)).await;
        for (step, count) in searches {
            assert_eq!(steps(&plan, step), *count, "{lane:?}, {step}: {plan:#?}");
        }
        // No table is read whole (under any of its aliases).
        let scans_messages = |step: &String| {
            let mut words = step.split(' ');
            words.next() == Some("SCAN")
                && matches!(words.next(), Some("messages" | "m" | "s" | "w"))
        };
        assert!(!plan.iter().any(scans_messages), "{lane:?}: {plan:#?}");
    }
    let plan = explain(&other, mailbridge::queue::sqlite::WAKE).await;
    assert!(
        plan.iter().any(|step| step
            .contains("SEARCH messages USING INDEX messages_due (status=? AND next_attempt_at>?)")),
        "{plan:#?}"
    );
    other.close().await;
}

/// The steps of `EXPLAIN QUERY PLAN` for `sql` (its parameters unbound).
async fn explain(pool: &sqlx::SqlitePool, sql: &str) -> Vec<String> {
    use sqlx::Row as _;
    sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>("detail"))
        .collect()
}

#[tokio::test]
async fn plain_bodies_are_stored_packed_and_text_rows_still_read() {
    // A plain message's JSON is kept compressed (a zero byte, its length,
    // the LZ4 block); a row holding JSON text, as stores written before
    // did, is read as it is.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/q/mb.db", dir.path().display());
    let store = Arc::new(open(&dir).await);
    let now = OffsetDateTime::now_utc();
    let mut long = job("acme", None, now);
    let link =
        "https://sso.example.com/realms/acme/login-actions/action-token?key=eyJhbGciOiJIUzI1NiJ9";
    long.message.text = Some(format!("Reset your password: {link}\n").repeat(40));
    long.message.html = Some(format!("<p><a href=\"{link}\">Reset password</a></p>").repeat(40));
    let json = serde_json::to_vec(&long.message).unwrap();
    let packed_message = long.message.clone();
    let older = job("acme", None, now);
    let older_message = older.message.clone();
    for new in [long, older] {
        assert!(matches!(
            store.enqueue(new).await.unwrap(),
            Enqueued::Created(_)
        ));
    }
    let other = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (kind, stored): (String, Vec<u8>) =
        sqlx::query_as("SELECT typeof(message), message FROM bodies WHERE message_id = ?")
            .bind(packed_message.id.to_string())
            .fetch_one(&other)
            .await
            .unwrap();
    assert_eq!(kind, "blob");
    assert_eq!(stored[0], 0);
    assert_eq!(
        u32::from_le_bytes(stored[1..5].try_into().unwrap()) as usize,
        json.len()
    );
    assert!(
        stored.len() * 4 < json.len(),
        "{} bytes stored for {} of JSON",
        stored.len(),
        json.len()
    );
    sqlx::query("UPDATE bodies SET message = ? WHERE message_id = ?")
        .bind(serde_json::to_string(&older_message).unwrap())
        .bind(older_message.id.to_string())
        .execute(&other)
        .await
        .unwrap();
    let kind: String =
        sqlx::query_scalar("SELECT typeof(message) FROM bodies WHERE message_id = ?")
            .bind(older_message.id.to_string())
            .fetch_one(&other)
            .await
            .unwrap();
    assert_eq!(kind, "text");
    other.close().await;

    let mut claimed = crate::store_contract::claim(&store, now, 10).await;
    claimed.sort_by_key(|job| job.message.id);
    let mut expected = vec![packed_message, older_message];
    expected.sort_by_key(|message| message.id);
    let messages: Vec<_> = claimed.into_iter().map(|job| job.message).collect();
    assert_eq!(messages, expected);
}
