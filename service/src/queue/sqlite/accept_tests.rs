//! One group's new messages, stored together, answer as if stored one by one.

use std::time::Duration;

use sqlx::{Connection, SqliteConnection};
use time::OffsetDateTime;

use super::insert_all;
use crate::email::{Mailbox, OutgoingMessage};
use crate::queue::{Enqueued, NewJob};

async fn store() -> SqliteConnection {
    let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
    sqlx::migrate!("./migrations").run(&mut conn).await.unwrap();
    conn
}

fn job(key: Option<&str>, now: OffsetDateTime) -> NewJob {
    let id = uuid::Uuid::now_v7();
    let message = OutgoingMessage {
        id,
        tenant: "acme".into(),
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
    };
    NewJob {
        message,
        idempotency_key: key.map(str::to_owned),
        transport: "default".into(),
        now,
        lease: None,
    }
}

async fn key_of(conn: &mut SqliteConnection, job: &NewJob) -> Option<String> {
    sqlx::query_scalar("SELECT idempotency_key FROM messages WHERE id = ?")
        .bind(job.message.id.to_string())
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn keys_repeated_within_a_group_answer_as_one_insert_after_the_other() {
    let mut conn = store().await;
    let t0 = OffsetDateTime::now_utc() - Duration::from_secs(48 * 3600);
    let later = t0 + Duration::from_secs(25 * 3600);
    let old = job(Some("stored-old"), t0);
    let fresh = job(Some("stored-fresh"), later);
    let stored = insert_all(&mut conn, &[&old, &fresh]).await.unwrap();
    assert_eq!(stored.len(), 2);

    let a = job(Some("k"), t0);
    let b = job(Some("k"), later); // a's key has expired by b's time: b takes it
    let c = job(Some("k"), later); // a repeat of b
    let d = job(None, later);
    let e = job(Some("stored-old"), later); // expired holder on disk
    let f = job(Some("stored-fresh"), later); // live holder on disk
    let group = [&a, &b, &c, &d, &e, &f];
    let answers = insert_all(&mut conn, &group).await.unwrap();
    let id = |j: &NewJob| j.message.id;
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
}

#[tokio::test]
async fn a_large_group_is_stored_whole_and_in_order() {
    let mut conn = store().await;
    let now = OffsetDateTime::now_utc();
    // 64 + 16 + 16 + 4 + 1 + 1 + 1 rows: every statement shape.
    let jobs: Vec<NewJob> = (0..103)
        .map(|i| job((i % 2 == 0).then(|| format!("key-{i}")).as_deref(), now))
        .collect();
    let refs: Vec<&NewJob> = jobs.iter().collect();
    let answers = insert_all(&mut conn, &refs).await.unwrap();
    let created: Vec<Enqueued> = jobs
        .iter()
        .map(|j| Enqueued::Created(j.message.id))
        .collect();
    assert_eq!(answers, created);
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM messages ORDER BY rowid")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let ids: Vec<String> = jobs.iter().map(|j| j.message.id.to_string()).collect();
    assert_eq!(stored, ids);
    let body: String = sqlx::query_scalar("SELECT message FROM messages WHERE id = ?")
        .bind(&ids[70])
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let message: OutgoingMessage = serde_json::from_str(&body).unwrap();
    assert_eq!(message.id, jobs[70].message.id);
}
