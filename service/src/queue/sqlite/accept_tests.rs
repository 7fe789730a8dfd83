//! One group's new messages, stored together, answer as if stored one by one.

use std::time::Duration;

use sqlx::SqliteConnection;
use time::OffsetDateTime;

use super::insert_all;
use crate::email::{Mailbox, OutgoingMessage};
use crate::queue::batch::Enqueue;
use crate::queue::packing::{self, Stored};
use crate::queue::{Enqueued, NewJob, Origin};

/// A migrated in-memory store: a sqlx connection to look at it, and a
/// connection as the writer's thread has.
async fn store() -> (SqliteConnection, rusqlite::Connection) {
    super::super::writer::test_store().await
}

fn new(key: Option<&str>, now: OffsetDateTime) -> Enqueue {
    let message = OutgoingMessage {
        cc: vec![Mailbox::new("grace@example.com")],
        ..OutgoingMessage::plain(
            "acme",
            Mailbox::new("no-reply@acme.example"),
            Mailbox::new("Ada@Example.com"),
            "Hi",
            "Hello",
        )
    };
    let stored = Stored::Packed(packing::pack(&serde_json::to_vec(&message).unwrap()).unwrap());
    let job = NewJob {
        message,
        idempotency_key: key.map(str::to_owned),
        transport: "default".into(),
        now,
        lease: None,
        origin: Origin {
            realm: Some("acme".into()),
            kind: Some("password-reset".into()),
            traceparent: None,
        },
        limits: Vec::new(),
    };
    Enqueue { job, stored }
}

async fn key_of(conn: &mut SqliteConnection, new: &Enqueue) -> Option<String> {
    sqlx::query_scalar("SELECT idempotency_key FROM messages WHERE id = ?")
        .bind(new.job.message.id.to_string())
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn keys_repeated_within_a_group_answer_as_one_insert_after_the_other() {
    let (mut conn, direct) = store().await;
    let t0 = OffsetDateTime::now_utc() - Duration::from_secs(48 * 3600);
    let later = t0 + Duration::from_secs(25 * 3600);
    let old = new(Some("stored-old"), t0);
    let fresh = new(Some("stored-fresh"), later);
    let stored = insert_all(&direct, &[&old, &fresh]).unwrap();
    assert_eq!(stored.len(), 2);

    let a = new(Some("k"), t0);
    let b = new(Some("k"), later); // a's key has expired by b's time: b takes it
    let c = new(Some("k"), later); // a repeat of b
    let d = new(None, later);
    let e = new(Some("stored-old"), later); // expired holder on disk
    let f = new(Some("stored-fresh"), later); // live holder on disk
    let group = [&a, &b, &c, &d, &e, &f];
    let answers = insert_all(&direct, &group).unwrap();
    let id = |n: &Enqueue| n.job.message.id;
    assert_eq!(
        answers,
        vec![
            Enqueued::Created(id(&a)),
            Enqueued::Created(id(&b)),
            Enqueued::Duplicate(id(&b)),
            Enqueued::Created(id(&d)),
            Enqueued::Created(id(&e)),
            Enqueued::Duplicate(id(&fresh)),
        ]
    );
    assert_eq!(key_of(&mut conn, &a).await, None, "a let go of its key");
    assert_eq!(key_of(&mut conn, &b).await.as_deref(), Some("k"));
    assert_eq!(key_of(&mut conn, &old).await, None);
    assert_eq!(key_of(&mut conn, &e).await.as_deref(), Some("stored-old"));
    let recipients: i64 = sqlx::query_scalar("SELECT count(*) FROM recipients")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        recipients,
        2 * 6,
        "two recipients for each message stored, none for repeats"
    );
}

#[tokio::test]
async fn a_large_group_is_stored_whole_and_in_order() {
    let (mut conn, direct) = store().await;
    let now = OffsetDateTime::now_utc();
    // A full chunk of 64 rows, then 39 in a statement shaped for 64.
    let group: Vec<Enqueue> = (0..103)
        .map(|i| new((i % 2 == 0).then(|| format!("key-{i}")).as_deref(), now))
        .collect();
    let refs: Vec<&Enqueue> = group.iter().collect();
    let answers = insert_all(&direct, &refs).unwrap();
    let created: Vec<Enqueued> = group
        .iter()
        .map(|n| Enqueued::Created(n.job.message.id))
        .collect();
    assert_eq!(answers, created);
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM messages ORDER BY rowid")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let ids: Vec<String> = group.iter().map(|n| n.job.message.id.to_string()).collect();
    assert_eq!(stored, ids);
    let body: Vec<u8> = sqlx::query_scalar("SELECT message FROM bodies WHERE message_id = ?")
        .bind(&ids[70])
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let message: OutgoingMessage =
        serde_json::from_slice(&packing::unpack(&body).unwrap()).unwrap();
    assert_eq!(message.id, group[70].job.message.id);
    let origin: (Option<String>, Option<String>, Option<String>) =
        sqlx::query_as("SELECT realm, kind, traceparent FROM messages WHERE id = ?")
            .bind(&ids[70])
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        origin,
        (Some("acme".into()), Some("password-reset".into()), None)
    );
    let addresses: Vec<String> =
        sqlx::query_scalar("SELECT address FROM recipients WHERE message_id = ? ORDER BY address")
            .bind(&ids[70])
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(addresses, ["ada@example.com", "grace@example.com"]);
    let first_chunk: i64 =
        sqlx::query_scalar("SELECT count(*) FROM recipients WHERE message_id = ?")
            .bind(&ids[3])
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(first_chunk, 2, "the first chunk's recipients too");
}

#[tokio::test]
async fn a_body_that_cannot_go_in_fails_the_groups_insert() {
    let (mut conn, direct) = store().await;
    let now = OffsetDateTime::now_utc();
    let group: Vec<Enqueue> = (0..3).map(|_| new(None, now)).collect();
    // A body already there for the last message: the status rows go in,
    // the bodies' statement fails, and so does the whole insert (the writer
    // then rolls the group back).
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO bodies (message_id, message) VALUES (?, 'x')")
        .bind(group[2].job.message.id.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    let refs: Vec<&Enqueue> = group.iter().collect();
    let refused = insert_all(&direct, &refs).unwrap_err();
    assert!(refused.to_string().contains("UNIQUE"), "{refused:#}");
}

#[tokio::test]
async fn groups_of_every_size_store_every_row_and_nothing_else() {
    let (mut conn, direct) = store().await;
    let now = OffsetDateTime::now_utc();
    let mut total = 0;
    // Every shape, full and partly filled, and more than one chunk.
    for size in (1..=66).chain([127, 128, 129]) {
        let group: Vec<Enqueue> = (0..size).map(|_| new(None, now)).collect();
        let refs: Vec<&Enqueue> = group.iter().collect();
        let answers = insert_all(&direct, &refs).unwrap();
        assert_eq!(answers.len(), size);
        total += size;
        let counts: (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM bodies), \
             (SELECT count(*) FROM bodies JOIN messages ON messages.id = bodies.message_id), \
             (SELECT count(*) FROM recipients JOIN messages ON messages.id = recipients.message_id)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let total = i64::try_from(total).unwrap();
        assert_eq!(
            counts,
            (total, total, total, 2 * total),
            "after a group of {size}"
        );
    }
}

#[tokio::test]
async fn a_message_stored_claimed_gets_its_first_lease_and_its_stored_form() {
    let (mut conn, direct) = store().await;
    let now = OffsetDateTime::now_utc();
    let mut claimed = new(None, now);
    claimed.job.lease = Some(Duration::from_secs(60));
    // The writer stores whatever form sealing gave, not the message itself.
    claimed.stored = Stored::Text(r#"{"sealed": {"kid": "k1", "nonce": "n", "ct": "c"}}"#.into());
    let queued = new(None, now);
    let answers = insert_all(&direct, &[&claimed, &queued]).unwrap();
    let Enqueued::Claimed(lease) = answers[0] else {
        panic!("{answers:?}")
    };
    assert_eq!(
        (lease.id, lease.attempt, lease.claim),
        (claimed.job.message.id, 1, 1)
    );
    let row: (String, i64, i64, Option<i64>, String) = sqlx::query_as(
        "SELECT status, attempts, claims, lease_until, message FROM messages \
         JOIN bodies ON message_id = id WHERE id = ?",
    )
    .bind(claimed.job.message.id.to_string())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((row.0.as_str(), row.1, row.2), ("sending", 1, 1));
    assert_eq!(row.3, Some(super::ms(lease.until)));
    assert!(row.4.contains("\"sealed\""), "{}", row.4);
    assert_eq!(answers[1], Enqueued::Created(queued.job.message.id));
}
