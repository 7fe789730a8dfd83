//! The PostgreSQL store against a real PostgreSQL server on loopback: the
//! store contract, two replicas claiming from one database, and two service
//! processes sharing one queue.

use crate::common;
use crate::store_contract;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::postgres::Postgres;
use common::server::TestServer;
use mailbridge::queue::postgres::PgStore;
use mailbridge::queue::{JobStore, Lane};
use serde_json::json;

async fn open(url: &str) -> Arc<dyn JobStore> {
    Arc::new(PgStore::open(url).await.expect("open the postgres store"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_contract_holds_on_postgres() {
    let pg = Postgres::start();
    messages_stored_before_bodies_had_their_own_table_are_still_delivered(&pg.database()).await;
    suppressions_listed_before_addresses_were_lower_cased_suppress_every_spelling(&pg.database())
        .await;
    bodies_compressed_before_and_after_lz4_read_back(&pg.database()).await;
    a_packed_keycloak_body_stays_in_its_row(&pg.database()).await;
    sent_outcomes_find_their_rows_by_id_whatever_the_statistics(&pg.database()).await;
    claims_read_the_due_rows_in_order(&pg.database()).await;
    the_suppression_lists_statistics_follow_its_growth(&pg.database()).await;
    the_queues_statistics_follow_its_growth(&pg.database()).await;
    a_replica_counts_from_the_statistics_it_finds(&pg.database()).await;
    flow_limit_statistics_follow_the_cells_created(&pg.database()).await;
    a_message_and_the_rows_hanging_off_it_go_together(&pg.database()).await;
    the_pending_count_reads_only_unsent_rows_whatever_the_statistics(&pg.database()).await;
    store_contract::idempotency_keys_hold_for_24_hours_per_tenant(open(&pg.database()).await).await;
    store_contract::concurrent_enqueues_are_all_committed(open(&pg.database()).await).await;
    store_contract::messages_handed_over_from_threads_are_answered_as_enqueued(
        open(&pg.database()).await,
    )
    .await;
    store_contract::leases_expire_and_the_message_is_claimed_again(open(&pg.database()).await)
        .await;
    store_contract::claims_take_the_oldest_due_of_every_kind(open(&pg.database()).await).await;
    store_contract::each_lane_claims_only_its_own_rows(open(&pg.database()).await).await;
    store_contract::notices_are_claimed_fairly_across_destinations(open(&pg.database()).await)
        .await;
    store_contract::the_least_busy_destination_takes_a_freed_notice_slot(
        open(&pg.database()).await,
    )
    .await;
    store_contract::outcomes_listing_and_requeue(open(&pg.database()).await).await;
    store_contract::retention_drops_old_sent_bodies_but_keeps_their_status(
        open(&pg.database()).await,
    )
    .await;
    store_contract::retention_drops_the_bodies_of_suppressed_messages_too(
        open(&pg.database()).await,
    )
    .await;
    store_contract::queue_figures(open(&pg.database()).await).await;
    store_contract::outcomes_are_fenced_by_the_lease(open(&pg.database()).await).await;
    store_contract::renewal_and_release(open(&pg.database()).await).await;
    store_contract::waking_a_transport_makes_its_waiting_messages_due(open(&pg.database()).await)
        .await;
    store_contract::an_enqueue_can_claim_at_once(open(&pg.database()).await).await;
    store_contract::origin_is_kept_beside_the_body(open(&pg.database()).await).await;
    store_contract::a_late_claim_hands_out_a_live_lease(open(&pg.database()).await).await;
    store_contract::delivery_events_are_kept_once_per_provider_event(open(&pg.database()).await)
        .await;
    store_contract::suppressions_and_suppressed_messages(open(&pg.database()).await).await;
    store_contract::suppressions::an_address_is_removed_in_every_form_it_is_stored_under(
        open(&pg.database()).await,
    )
    .await;
    store_contract::suppressions::an_address_is_listed_and_removed_in_any_case(
        open(&pg.database()).await,
    )
    .await;
    store_contract::a_peers_nul_bytes_are_stored_replaced(open(&pg.database()).await).await;
    let database = pg.database();
    store_contract::a_signature_is_taken_with_one_body_only(vec![
        open(&database).await,
        open(&database).await,
    ])
    .await;
    store_contract::console::history_searches_and_breakdown(open(&pg.database()).await).await;
    store_contract::groups::new_messages_arriving_together_answer_one_after_the_other(
        open(&pg.database()).await,
    )
    .await;
    store_contract::groups::outcomes_arriving_together_are_fenced_each_by_its_lease(
        open(&pg.database()).await,
    )
    .await;
    store_contract::groups::a_notice_is_stored_with_its_outcome_and_only_then(
        open(&pg.database()).await,
    )
    .await;
    store_contract::flow_limit_cells_are_pruned_after_their_window(open(&pg.database()).await)
        .await;
    let url = pg.database();
    store_contract::an_unreadable_row_fails_alone(open(&url).await, |id| async move {
        let other = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(
            "UPDATE bodies SET body = '{\"not\": \"a message\"}', packed = NULL WHERE message_id = $1",
        )
            .bind(id)
            .execute(&other)
            .await
            .unwrap();
        other.close().await;
    })
    .await;

    // Replicas with different keys on one database.
    let shared = pg.database();
    let sealed = |ids: &'static [&'static str]| {
        let url = shared.clone();
        async move {
            let keys = store_contract::keyring(ids);
            let store = PgStore::open_sealed(&url, keys).await.unwrap();
            Arc::new(store) as Arc<dyn JobStore>
        }
    };
    store_contract::a_row_sealed_with_a_key_a_replica_lacks_waits_for_one_that_holds_it(
        sealed(&["new", "old"]).await,
        vec![sealed(&["old"]).await, sealed(&[]).await],
        &store_contract::KEY_MATERIAL,
    )
    .await;

    // Two replicas (two pools, two caches) on one database.
    let shared = pg.database();
    let (a, b) = (open(&shared).await, open(&shared).await);
    store_contract::concurrent_claims_never_overlap(vec![a, b]).await;
    let (a, b) = (open(&shared).await, open(&shared).await);
    store_contract::messages_spend_their_limits_when_stored(vec![a, b]).await;

    // A commit is in the database, not in this process: a new pool sees it.
    let url = pg.database();
    let now = time::OffsetDateTime::now_utc();
    let mailbridge::queue::Enqueued::Created(id) = open(&url)
        .await
        .enqueue(store_contract::job("acme", None, now))
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    let record = open(&url).await.get(id).await.unwrap().expect("committed");
    assert_eq!(record.tenant, "acme");
}

/// A database at migration 0005 (bodies inside the status rows) with a
/// message waiting, opened by this version: the body moves to its own table
/// and the message is delivered as it was stored.
async fn messages_stored_before_bodies_had_their_own_table_are_still_delivered(url: &str) {
    let old = sqlx::PgPool::connect(url).await.unwrap();
    let earlier = store_contract::migrations_before("migrations-postgres", "0006").await;
    earlier.run(&old).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let message = store_contract::message("acme");
    sqlx::query(
        "INSERT INTO messages (id, tenant, status, transport, message, created_at, age_from, \
         updated_at, next_attempt_at) VALUES ($1, 'acme', 'queued', 'default', $2, $3, $3, $3, $3)",
    )
    .bind(message.id)
    .bind(sqlx::types::Json(&message))
    .bind(now)
    .execute(&old)
    .await
    .unwrap();
    old.close().await;

    let store = open(url).await;
    let claimed = store_contract::claim(&store, now, 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message, message);
}

/// A store at migration 0016, its entries' local parts as providers and
/// administrators wrote them, then opened by this version: one entry per
/// address, in lower case, the first listed kept.
async fn suppressions_listed_before_addresses_were_lower_cased_suppress_every_spelling(url: &str) {
    let old = sqlx::PgPool::connect(url).await.unwrap();
    let earlier = store_contract::migrations_before("migrations-postgres", "0017").await;
    earlier.run(&old).await.unwrap();
    let at = |s: i64| time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap();
    for (tenant, email, reason, when) in [
        ("acme", "Ada@example.com", "bounce", 1),
        ("acme", "ada@example.com", "manual", 2),
        ("acme", "GRACE@bücher.example", "complaint", 3),
        ("acme", "Linus@xn--bcher-kva.example", "bounce", 4),
        ("other", "ADA@example.com", "manual", 5),
    ] {
        sqlx::query(
            "INSERT INTO suppressions (tenant, email, reason, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant)
        .bind(email)
        .bind(reason)
        .bind(at(when))
        .execute(&old)
        .await
        .unwrap();
    }
    old.close().await;

    let store = open(url).await;
    store_contract::suppressions::entries_listed_before_lower_casing_are_one_per_address(
        store.as_ref(),
    )
    .await;
}

/// Bodies written before migration 0009 (pglz, JSONB), between 0010 and
/// 0013 (text, compressed by the server with lz4) and after 0013 (packed by
/// the service, kept in the row as they are) are all read back as they
/// were stored.
async fn bodies_compressed_before_and_after_lz4_read_back(url: &str) {
    let stored = |pool: sqlx::PgPool, id: uuid::Uuid| async move {
        sqlx::query_as::<_, (Option<String>, Option<String>, Option<String>)>(
            "SELECT pg_column_compression(message), pg_column_compression(body), \
                    CASE WHEN packed IS NULL THEN NULL ELSE 'packed' END \
             FROM bodies WHERE message_id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    // Long enough to be compressed, as a real HTML body is.
    let large = |n: u32| {
        let mut message = store_contract::message("acme");
        message.html = Some(format!("<p>Hello {n}</p>").repeat(400));
        message
    };
    let old = sqlx::PgPool::connect(url).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let insert = |message: mailbridge::email::OutgoingMessage, column: &'static str| {
        let old = old.clone();
        async move {
            sqlx::query(
                "INSERT INTO messages (id, tenant, status, transport, created_at, age_from, \
                 updated_at, next_attempt_at) VALUES ($1, 'acme', 'queued', 'default', $2, $2, $2, $2)",
            )
            .bind(message.id)
            .bind(now)
            .execute(&old)
            .await
            .unwrap();
            let body = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO bodies (message_id, {column}) VALUES ($1, $2::text::{})",
                if column == "message" { "jsonb" } else { "text" }
            )))
            .bind(message.id)
            .bind(serde_json::to_string(&message).unwrap());
            body.execute(&old).await.unwrap();
        }
    };
    store_contract::migrations_before("migrations-postgres", "0009")
        .await
        .run(&old)
        .await
        .unwrap();
    let jsonb = large(1);
    insert(jsonb.clone(), "message").await;
    store_contract::migrations_before("migrations-postgres", "0013")
        .await
        .run(&old)
        .await
        .unwrap();
    let text = large(2);
    insert(text.clone(), "body").await;

    let store = open(url).await;
    let packed = large(3);
    let mut job = store_contract::job("acme", None, now);
    job.message = packed.clone();
    store.enqueue(job).await.unwrap();
    let (jsonb_form, text_form, packed_form) = (
        stored(old.clone(), jsonb.id).await,
        stored(old.clone(), text.id).await,
        stored(old.clone(), packed.id).await,
    );
    assert_eq!(
        jsonb_form.0.as_deref(),
        Some("pglz"),
        "the migrations rewrote no body"
    );
    assert_eq!(
        text_form.1.as_deref(),
        Some("lz4"),
        "this PostgreSQL has lz4 (Debian's and the official images do)"
    );
    assert_eq!(
        (packed_form.0, packed_form.1, packed_form.2.as_deref()),
        (None, None, Some("packed")),
        "a new body is packed by the service"
    );
    let (in_row, packed_len): (Option<String>, i32) = sqlx::query_as(
        "SELECT pg_column_compression(packed), pg_column_size(packed) FROM bodies WHERE message_id = $1",
    )
    .bind(packed.id)
    .fetch_one(&old)
    .await
    .unwrap();
    assert_eq!(
        in_row, None,
        "the server does not compress a packed body again"
    );
    let json_len = serde_json::to_vec(&packed).unwrap().len();
    assert!(
        (packed_len as usize) * 4 < json_len,
        "{packed_len} bytes stored for {json_len} of JSON"
    );
    let mut claimed: Vec<_> = store_contract::claim(&store, now, 10)
        .await
        .into_iter()
        .map(|j| j.message)
        .collect();
    claimed.sort_by_key(|m| m.id);
    let mut expected = vec![jsonb, text, packed];
    expected.sort_by_key(|m| m.id);
    assert_eq!(claimed, expected);
    old.close().await;
}

/// A Keycloak-sized body (7 KB of JSON, 2.7 KB packed) stays in its row:
/// no TOAST chunks to write at accept and read back at each claim.
async fn a_packed_keycloak_body_stays_in_its_row(url: &str) {
    let store = open(url).await;
    let now = time::OffsetDateTime::now_utc();
    let mut job = store_contract::job("acme", None, now);
    let link = "https://sso.example.com/realms/acme/login-actions/action-token?key=";
    // An action token does not compress: 2,400 pseudo-random characters.
    let mut x: u64 = 7;
    let token: String = (0..2400)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                    [(x >> 58) as usize % 62],
            )
        })
        .collect();
    job.message.text = Some(format!("Reset your password: {link}{token}\n"));
    job.message.html = Some(format!(
        "{}<a href=\"{link}{token}\">Reset</a>",
        "<p style=\"font-family: sans-serif; color: #333\">Hello Ada,</p>".repeat(60)
    ));
    store.enqueue(job).await.unwrap();
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let (size, toast_pages): (i32, i64) = sqlx::query_as(
        "SELECT (SELECT pg_column_size(packed) FROM bodies LIMIT 1), \
                pg_relation_size((SELECT reltoastrelid FROM pg_class WHERE relname = 'bodies'))",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert!(size > 2100 && size < 4000, "packed body of {size} bytes");
    assert_eq!(toast_pages, 0, "nothing went to the TOAST table");
}

/// A message's body, recipients and history carry no foreign key (whose
/// checks PostgreSQL plans once per connection, as a sequential scan of
/// `messages` if that happens while the table is young, and keeps): writing
/// them fires no check, and deleting the message removes them in the same
/// statement, only when the message itself goes.
async fn a_message_and_the_rows_hanging_off_it_go_together(url: &str) {
    use mailbridge::queue::{Enqueued, Outcome};
    let store = open(url).await;
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let rows = |id: uuid::Uuid| {
        let pool = pool.clone();
        async move {
            let mut counts = Vec::new();
            for table in ["bodies", "recipients", "attempts", "delivery_events"] {
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT count(*) FROM {table} WHERE message_id = $1"
                )))
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
                counts.push(n);
            }
            counts
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let mut failing = store_contract::job("acme", None, now);
    failing.message.cc = vec![mailbridge::email::Mailbox::new("bob@example.com")];
    let Enqueued::Created(done) = store.enqueue(failing).await.unwrap() else {
        panic!("not created")
    };
    let claimed = store_contract::claim(&store, now, 1).await;
    let failed = Outcome::Failed {
        error: "550 5.1.1 no such user".into(),
    };
    assert!(store.record(&claimed[0].lease, &failed, now).await.unwrap());
    let Enqueued::Created(waiting) = store
        .enqueue(store_contract::job("acme", None, now))
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    for (message, event) in [(done, "bounced-1"), (waiting, "delivered-1")] {
        let event = mailbridge::events::DeliveryEvent {
            message_id: message,
            kind: mailbridge::events::EventType::Delivered,
            bounce: None,
            recipient: None,
            detail: None,
            transport: "default".into(),
            provider_event_id: Some(event.into()),
            occurred_at: now,
            received_at: now,
        };
        assert!(store.add_event(&event).await.unwrap());
    }
    assert_eq!(rows(done).await, [1, 2, 1, 1]);
    assert_eq!(rows(waiting).await, [1, 1, 0, 1]);

    // Writing them fires no foreign-key check.
    let mut tx = pool.begin().await.unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN (ANALYZE, COSTS OFF) WITH b AS (INSERT INTO bodies (message_id, body) \
           VALUES (gen_random_uuid(), '{}')), \
         r AS (INSERT INTO recipients (message_id, address) VALUES ($1, 'carl@example.com')), \
         e AS (INSERT INTO delivery_events (message_id, transport, type, occurred_at, received_at) \
           VALUES ($1, 'default', 'delivered', now(), now())) \
         INSERT INTO attempts (message_id, attempt, transport, outcome, finished_at) \
           VALUES ($1, 1, 'default', 'retrying', now())",
    )
    .bind(waiting)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let plan = plan.join("\n");
    assert!(!plan.contains("Trigger for constraint"), "{plan}");

    // Only a message that reached its end is deleted, and its rows with it.
    assert!(!store.delete(waiting).await.unwrap(), "still queued");
    assert_eq!(rows(waiting).await, [1, 1, 0, 1]);
    assert!(store.delete(done).await.unwrap());
    assert_eq!(rows(done).await, [0, 0, 0, 0]);
    assert!(store.get(done).await.unwrap().is_none());
    assert_eq!(
        rows(waiting).await,
        [1, 1, 0, 1],
        "the other message keeps its rows"
    );
    pool.close().await;
}

/// The pending count at accept reads only the tenant's unsent entries of
/// `messages_breakdown`, also when the statistics come from the table's
/// first few rows (all sent, another tenant), as autovacuum leaves them
/// early in an install's life, and the table has grown since.
async fn the_pending_count_reads_only_unsent_rows_whatever_the_statistics(url: &str) {
    drop(open(url).await);
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let insert = |tenant: &'static str, status: &'static str, n: i32| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO messages (id, tenant, status, transport, created_at, age_from, updated_at) \
                 SELECT gen_random_uuid(), $1, $2, 'default', now(), now(), now() \
                 FROM generate_series(1, $3)",
            )
            .bind(tenant)
            .bind(status)
            .bind(n)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    insert("young", "sent", 30).await;
    sqlx::query("ANALYZE messages")
        .execute(&pool)
        .await
        .unwrap();
    insert("acme", "sent", 20_000).await;
    insert("acme", "queued", 3).await;
    insert("acme", "retrying", 2).await;
    // Notices waiting: a receiver that is down. They are not counted.
    sqlx::query(
        "INSERT INTO messages (id, tenant, status, transport, created_at, age_from, updated_at) \
         SELECT gen_random_uuid(), 'acme', 'retrying', 'webhook', now(), now(), now() \
         FROM generate_series(1, 4)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {}",
        mailbridge::queue::postgres::PENDING_COUNT.replace("$1", "'acme'")
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(!plan.contains("Seq Scan"), "{plan}");
    assert!(!plan.contains("Filter"), "{plan}");
    assert!(!plan.contains("Rows Removed"), "{plan}");
    let count: i64 = sqlx::query_scalar(mailbridge::queue::postgres::PENDING_COUNT)
        .bind("acme")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 5);
    sqlx::query("DELETE FROM messages WHERE tenant IN ('young', 'acme')")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// A group's `sent` outcomes look each row up by its primary key, also when
/// the statistics (taken while the queue was quiet) say almost no row is
/// `sending`: reading a status index instead costs every message in flight,
/// and every dead entry earlier outcomes left there, at each group.
async fn sent_outcomes_find_their_rows_by_id_whatever_the_statistics(url: &str) {
    let plans = plans_after(
        url,
        "INSERT INTO messages (id, tenant, status, transport, created_at, age_from, updated_at, claims) \
         SELECT gen_random_uuid(), 'acme', CASE WHEN i = 1 THEN 'sending' ELSE 'sent' END, 'default', \
                now(), now(), now(), 1 FROM generate_series(1, 5000) AS i",
        "(uuid[], int4[], text[], timestamptz[])",
        mailbridge::queue::postgres::RECORD_SENT,
        "(array_fill(gen_random_uuid(), ARRAY[10]), array_fill(1, ARRAY[10]), \
          array_fill(NULL::text, ARRAY[10]), array_fill(now(), ARRAY[10]))",
    )
    .await;
    for (mode, plan) in plans {
        assert!(
            plan.contains("Index Scan using messages_pkey on messages m"),
            "{mode}:\n{plan}"
        );
        for other in [
            "messages_status_id",
            "messages_due",
            "messages_breakdown",
            "Seq Scan on messages",
        ] {
            assert!(!plan.contains(other), "{mode}:\n{plan}");
        }
    }
}

/// Every kind of claim of each lane reads its due rows in order from the
/// lane's index (`messages_due`, `notices_due`), in custom and generic
/// plans, also when the statistics say that nearly every row is sent: any
/// other plan reads or sorts more than the backlog.
async fn claims_read_the_due_rows_in_order(url: &str) {
    use mailbridge::queue::postgres::claim_statement;
    // Messages: each kind of due row from the lane's index. Notices: the
    // first waiting tenant and each destination's due rows from
    // `notices_waiting` (the next tenant's step, a subplan of the recursion,
    // is printed only by EXPLAIN ANALYZE: it reads `notices_waiting` too),
    // abandoned leases from `notices_due`.
    for (lane, index, count) in [
        (Lane::Messages, "messages_due", 3),
        (Lane::Notices, "notices_waiting", 2),
        (Lane::Notices, "notices_due", 1),
    ] {
        let plans = plans_after(
            url,
            "INSERT INTO messages (id, tenant, status, transport, created_at, age_from, updated_at, claims) \
             SELECT gen_random_uuid(), 'acme', 'sent', CASE WHEN i % 2 = 0 THEN 'webhook' ELSE 'default' END, \
                    now(), now(), now(), 1 \
             FROM generate_series(1, 5000) AS i",
            match lane {
                Lane::Messages => "(timestamptz, timestamptz, int8, timestamptz)",
                Lane::Notices => "(timestamptz, timestamptz, int8, timestamptz, int8)",
            },
            claim_statement(lane),
            match lane {
                Lane::Messages => "(now() + interval '1 minute', now(), 64, now())",
                Lane::Notices => "(now() + interval '1 minute', now(), 64, now(), 8)",
            },
        )
        .await;
        for (mode, plan) in plans {
            let scan = format!("Scan using {index} on messages");
            assert_eq!(
                plan.matches(&scan).count(),
                count,
                "{lane:?}, {mode}:\n{plan}"
            );
            assert!(
                !plan.contains("Seq Scan on messages"),
                "{lane:?}, {mode}:\n{plan}"
            );
        }
    }
    // Waking a transport's held messages reads only those, not every row
    // the transport ever sent.
    let plans = plans_after(
        url,
        "SELECT 1",
        "(timestamptz, text, int8)",
        mailbridge::queue::postgres::WAKE,
        "(now(), 'default', 1000)",
    )
    .await;
    for (mode, plan) in plans {
        assert!(
            plan.contains("Index Scan using messages_due on messages"),
            "{mode}:\n{plan}"
        );
        assert!(!plan.contains("Seq Scan on messages"), "{mode}:\n{plan}");
    }
}

/// The replica that adds entries to the suppression list takes its
/// statistics again whenever the list may have doubled: a lookup's plan
/// kept from a list of ten entries (a scan of the whole list) would
/// otherwise stay until autovacuum's next ANALYZE, however large the list
/// grew meanwhile.
async fn the_suppression_lists_statistics_follow_its_growth(url: &str) {
    use mailbridge::suppression::{Reason, Suppression};
    let store = open(url).await;
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    without_autovacuum(&pool, &["suppressions"]).await;
    let entry = |i: u32| Suppression {
        tenant: "acme".into(),
        email: format!("user{i}@example.org"),
        reason: Reason::Manual,
        detail: None,
        message_id: None,
        created_at: time::OffsetDateTime::now_utc(),
    };
    for i in 0..10 {
        assert!(store.suppress(&entry(i)).await.unwrap());
    }
    sqlx::query("ANALYZE suppressions")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(reltuples(&pool, "suppressions").await, 10.0);
    // Entries already on the list add nothing.
    for i in 0..10 {
        assert!(!store.suppress(&entry(i)).await.unwrap());
    }
    // The replica's 1,000th new entry (ten of them before that ANALYZE).
    for i in 10..999 {
        assert!(store.suppress(&entry(i)).await.unwrap());
    }
    assert_eq!(
        reltuples(&pool, "suppressions").await,
        10.0,
        "999 new entries: not yet"
    );
    assert!(store.suppress(&entry(999)).await.unwrap());
    // Taken in the background: the request does not wait for it.
    settles(&pool, "suppressions", 1_000.0).await;
    // Then when the list has doubled since.
    for i in 1_000..1_999 {
        assert!(store.suppress(&entry(i)).await.unwrap());
    }
    assert_eq!(reltuples(&pool, "suppressions").await, 1_000.0);
    assert!(store.suppress(&entry(1_999)).await.unwrap());
    settles(&pool, "suppressions", 2_000.0).await;
    sqlx::query("DELETE FROM suppressions")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// A replica takes the statistics of the tables each message fills when its
/// accepts may have doubled them, and plans other connections keep from a
/// young table are made again: a claim planned while ten messages were
/// queued read the whole table with every claim (81 ms at 100,000 rows).
async fn the_queues_statistics_follow_its_growth(url: &str) {
    use mailbridge::queue::postgres::GROWTH_MIN;
    let store = open(url).await;
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    without_autovacuum(&pool, &["messages", "bodies", "recipients"]).await;
    let now = time::OffsetDateTime::now_utc();
    let enqueue = |n: u64| {
        let store = store.clone();
        async move {
            for _ in 0..n / 50 {
                let jobs = (0..50).map(|_| store.enqueue(store_contract::job("acme", None, now)));
                futures::future::try_join_all(jobs).await.unwrap();
            }
            for _ in 0..n % 50 {
                store
                    .enqueue(store_contract::job("acme", None, now))
                    .await
                    .unwrap();
            }
        }
    };
    enqueue(10).await;
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    assert_eq!(reltuples(&pool, "messages").await, 10.0);

    // Another connection keeps the claim's plan, made while ten messages were queued.
    let mut kept = pool.acquire().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PREPARE claim (timestamptz, timestamptz, int8, timestamptz) AS {}",
        mailbridge::queue::postgres::CLAIM_MESSAGES
    )))
    .execute(&mut *kept)
    .await
    .unwrap();
    let run = "EXECUTE claim (now() + interval '1 minute', now() + interval '1 minute', 8, now())";
    for _ in 0..6 {
        let mut tx = sqlx::Connection::begin(&mut *kept).await.unwrap();
        sqlx::query(run).execute(&mut *tx).await.unwrap();
        tx.rollback().await.unwrap();
    }
    let young = kept_plan(&mut kept, run).await;
    assert!(
        young.matches("using messages_due").count() < 3,
        "a young table's plan scans it:\n{young}"
    );

    enqueue(GROWTH_MIN - 11).await;
    assert_eq!(reltuples(&pool, "messages").await, 10.0, "not yet");
    enqueue(1).await;
    // Taken in the background: the accept does not wait for it.
    settles(&pool, "recipients", GROWTH_MIN as f32).await;
    for table in ["messages", "bodies"] {
        assert_eq!(reltuples(&pool, table).await, GROWTH_MIN as f32, "{table}");
    }
    // Made again, from the new statistics: every kind of claim reads the
    // index (a scan is left only where PostgreSQL finds it cheaper for a
    // table of this size: the new statistics say at most half the rows).
    let plan = kept_plan(&mut kept, run).await;
    assert_eq!(plan.matches("using messages_due").count(), 3, "{plan}");
    assert!(plan.contains("rows=1000 width"), "{plan}");
    drop(kept);
    pool.close().await;
}

/// A replica started on a large queue counts from the rows its statistics
/// say: 1,000 accepts do not double 5,000 rows, so no ANALYZE is taken.
async fn a_replica_counts_from_the_statistics_it_finds(url: &str) {
    use mailbridge::queue::postgres::GROWTH_MIN;
    drop(open(url).await);
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    without_autovacuum(&pool, &["messages"]).await;
    sqlx::query(
        "INSERT INTO messages (id, tenant, status, transport, created_at, age_from, updated_at, claims) \
         SELECT gen_random_uuid(), 'acme', 'sent', 'default', now(), now(), now(), 1 \
         FROM generate_series(1, 5000)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE messages")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(reltuples(&pool, "messages").await, 5_000.0);
    let store = open(url).await;
    let now = time::OffsetDateTime::now_utc();
    for _ in 0..GROWTH_MIN / 50 {
        let jobs = (0..50).map(|_| store.enqueue(store_contract::job("acme", None, now)));
        futures::future::try_join_all(jobs).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        reltuples(&pool, "messages").await,
        5_000.0,
        "an ANALYZE after {GROWTH_MIN} accepts"
    );
    pool.close().await;
}

/// Flow limits keep a cell per address, looked up and spent by prepared
/// statements at every accept of a tenant with limits: the replica that
/// creates cells takes the table's statistics when it may have doubled.
async fn flow_limit_statistics_follow_the_cells_created(url: &str) {
    use mailbridge::limits::{Limit, LimitCell};
    use mailbridge::queue::postgres::GROWTH_MIN;
    let store = open(url).await;
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    without_autovacuum(&pool, &["flow_limits"]).await;
    let cells = |from: u64, to: u64| -> Vec<LimitCell> {
        (from..to)
            .map(|i| LimitCell {
                key: format!("cell-{i}"),
                interval: Duration::from_secs(60),
                burst: Duration::ZERO,
                limit: Limit::Recipient,
            })
            .collect()
    };
    let now = time::OffsetDateTime::now_utc();
    let spend = |cells: Vec<LimitCell>| {
        let store = store.clone();
        async move {
            let job = mailbridge::queue::NewJob {
                limits: cells,
                ..store_contract::job("acme", None, now)
            };
            store.enqueue(job).await.unwrap().stored()
        }
    };
    assert!(spend(cells(0, 10)).await);
    sqlx::query("ANALYZE flow_limits")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(reltuples(&pool, "flow_limits").await, 10.0);
    // Spending cells that exist creates nothing.
    assert!(!spend(cells(0, 10)).await);
    for from in (10..GROWTH_MIN - 9).step_by(10) {
        let to = (from + 10).min(GROWTH_MIN - 1);
        assert!(spend(cells(from, to)).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        reltuples(&pool, "flow_limits").await,
        10.0,
        "999 cells: not yet"
    );
    assert!(spend(cells(GROWTH_MIN - 1, GROWTH_MIN)).await);
    settles(&pool, "flow_limits", GROWTH_MIN as f32).await;
    pool.close().await;
}

/// Runs `seed` and analyses `messages`, then answers the plans PostgreSQL
/// makes for `statement` (prepared with parameters of `types`, run with
/// `arguments`) in custom and in generic mode.
async fn plans_after(
    url: &str,
    seed: &str,
    types: &str,
    statement: &str,
    arguments: &str,
) -> Vec<(&'static str, String)> {
    drop(open(url).await);
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(seed))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("ANALYZE messages")
        .execute(&pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let mut plans = Vec::new();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("SET plan_cache_mode = {mode}")))
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PREPARE planned {types} AS {statement}"
        )))
        .execute(&mut *conn)
        .await
        .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN EXECUTE planned {arguments}"
        )))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        plans.push((mode, plan.join("\n")));
        sqlx::query("DEALLOCATE planned")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    drop(conn);
    pool.close().await;
    plans
}

/// Turns autovacuum off for `tables`: only the test's own ANALYZE or the
/// service's changes their statistics.
async fn without_autovacuum(pool: &sqlx::PgPool, tables: &[&str]) {
    for table in tables {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = false)"
        )))
        .execute(pool)
        .await
        .unwrap();
    }
}

/// The rows `table` has, as its statistics say.
async fn reltuples(pool: &sqlx::PgPool, table: &str) -> f32 {
    sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = $1::regclass")
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits (up to 20 s) until the statistics of `table` say `expected` rows:
/// a replica's ANALYZE runs in the background.
async fn settles(pool: &sqlx::PgPool, table: &str, expected: f32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = reltuples(pool, table).await;
        if now == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ANALYZE: the statistics of {table} say {now} rows, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The plan `conn` would run `statement` (an `EXECUTE`) with, in a
/// transaction rolled back.
async fn kept_plan(conn: &mut sqlx::PgConnection, statement: &str) -> String {
    let mut tx = sqlx::Connection::begin(conn).await.unwrap();
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {statement}")))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    plan.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messages_events_are_bounded_keeping_the_final_and_the_latest() {
    let pg = Postgres::start();
    store_contract::events::a_messages_events_are_bounded_keeping_the_final_and_the_latest(
        open(&pg.database()).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peers_long_ids_are_stored_and_found() {
    let pg = Postgres::start();
    store_contract::a_peers_long_ids_are_stored_and_found(open(&pg.database()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_url_or_a_missing_server_is_a_clear_error_without_the_password() {
    // Nothing listens on port 1.
    let nobody = "postgres://mailbridge:hunter2@127.0.0.1:1/mailbridge";
    let err = PgStore::open(nobody).await.unwrap_err().to_string();
    assert!(
        err.contains("connecting to postgres://***@127.0.0.1"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    let err = mailbridge::queue::open("mysql://u:hunter2@h/db")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("names no known store"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let err = PgStore::open("postgres://mailbridge:hunter2@127.0.0.1:99999/x")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a postgres:// URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_share_one_queue_and_send_each_message_once() {
    let pg = Postgres::start();
    let url = pg.database();
    let env = [("MAILBRIDGE_DATABASE_URL", url.as_str())];
    let servers = [TestServer::start(&env).await, TestServer::start(&env).await];
    let mut ids = Vec::new();
    for i in 0..60 {
        let server = &servers[i % 2];
        let body = json!({
            "to": [{"email": "ada@example.com"}],
            "subject": format!("message {i}"),
            "text": "hello",
        });
        let (status, _, answer) = server.post("/v1/messages", None, &body).await;
        assert_eq!(status, 202, "{answer}");
        ids.push(answer["id"].as_str().unwrap().to_owned());
    }
    // Each server sees every message, whichever accepted it.
    for (i, id) in ids.iter().enumerate() {
        let record = servers[(i + 1) % 2]
            .wait_status(id, "sent", Duration::from_secs(30))
            .await;
        assert_eq!(record["attempts"], 1, "{record}");
    }
    // Delivered once in all: every subject in exactly one outbox file.
    let mut subjects: HashMap<String, u32> = HashMap::new();
    for server in &servers {
        let outbox = server.dir.path().join("outbox");
        for entry in std::fs::read_dir(&outbox).expect("outbox").flatten() {
            let eml = std::fs::read_to_string(entry.path()).unwrap();
            let subject = eml
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .expect("a subject")
                .to_owned();
            *subjects.entry(subject).or_default() += 1;
        }
    }
    assert_eq!(subjects.len(), 60, "{subjects:?}");
    assert!(subjects.values().all(|&n| n == 1), "{subjects:?}");

    // The database goes away: readiness says so and requests get a problem,
    // not a crash; nothing already accepted is lost.
    pg.stop();
    let (status, body) = servers[0].get("/readyz", "").await;
    assert_eq!(status, 503, "{body}");
    let (status, _, answer) = servers[1]
        .post(
            "/v1/messages",
            None,
            &json!({"to": [{"email": "ada@example.com"}], "subject": "s", "text": "t"}),
        )
        .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["title"], "Service Unavailable");
    for server in servers {
        server.stop().await;
    }
}

/// A TCP proxy to `target` that can stop passing bytes on without closing
/// anything (packets lost on the way: a partition, not a reset).
struct BlackHole {
    port: u16,
    passing: Arc<std::sync::atomic::AtomicBool>,
}

impl BlackHole {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let passing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let gate = passing.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(Self::pipe(client_read, server_write, gate.clone()));
                tokio::spawn(Self::pipe(server_read, client_write, gate.clone()));
            }
        });
        Self { port, passing }
    }

    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        gate: Arc<std::sync::atomic::AtomicBool>,
    ) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut buf = vec![0u8; 16384];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // Lost, not refused: what was sent meanwhile never arrives,
            // even once the way is open again.
            if gate.load(std::sync::atomic::Ordering::SeqCst)
                && to.write_all(&buf[..n]).await.is_err()
            {
                return;
            }
        }
    }

    fn pass(&self, passing: bool) {
        self.passing
            .store(passing, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_figures_and_probes_during_a_partition_end_within_their_bounds() {
    let pg = Postgres::start();
    let url = pg.database();
    let target = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("host:port in the URL")
        .parse()
        .expect("an address");
    let hole = BlackHole::start(target).await;
    let through = url.replace(&target.to_string(), &format!("127.0.0.1:{}", hole.port));
    let store = open(&through).await;
    store.ping().await.expect("a ping while the way is open");
    hole.pass(false);
    // `/metrics` reads them: before, a scrape waited for TCP to give up
    // (about 15 minutes), and held a graceful stop as long.
    let queue_figures = tokio::time::timeout(Duration::from_secs(12), store.stats()).await;
    assert!(
        matches!(queue_figures, Ok(Err(_))),
        "queue figures during a partition end in an error within their bound"
    );
    // More probes than the pool has connections, each given up after 2 s
    // as `/readyz` does.
    for _ in 0..20 {
        let probe = tokio::time::timeout(Duration::from_secs(2), store.ping()).await;
        assert!(!matches!(probe, Ok(Ok(()))), "a ping through a partition");
    }
    hole.pass(true);
    // Connections whose answers were lost are closed, not pinned: new ones
    // serve at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(2), store.ping()).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store never answered again after the partition ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    store
        .stats()
        .await
        .expect("queue figures after the partition");
}
