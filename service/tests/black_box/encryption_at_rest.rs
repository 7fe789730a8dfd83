//! Messages at rest with `MAILBRIDGE_ENCRYPTION_KEYS`: after sending known
//! markers, neither the SQLite files (database, WAL) nor a PostgreSQL dump
//! hold any of them; `mailbridge keys rotate` re-encrypts stored messages so
//! that, with the old key removed, they still deliver; a ciphertext moved to
//! another row fails that message with a clear reason instead of a crash.

use crate::common;

use std::time::Duration;

use common::postgres::Postgres;
use common::server::TestServer;
use serde_json::{Value, json};

const OLD: &str = "old:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const NEW: &str = "new:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const MARKERS: [&str; 4] = [
    "SUBJECT-MARKER-7f3a",
    "BODY-MARKER-91c2",
    "LINK-MARKER-4d8e",
    "rcpt-marker-55aa@example.com",
];
/// Nothing listens there: messages stay `retrying`, stored.
const UNREACHABLE: &str = "smtp://127.0.0.1:9?tls=none";

fn message(n: usize) -> Value {
    json!({
        "to": [{"email": MARKERS[3]}],
        "subject": format!("{} {n}", MARKERS[0]),
        "text": format!("{} https://sso.example/reset?key={}", MARKERS[1], MARKERS[2]),
        "html": format!("<p>{}</p>", MARKERS[1]),
    })
}

async fn accept(server: &TestServer, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let (status, _, body) = server.post("/v1/messages", Some("acme"), &message(n)).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// The markers of subject, bodies and link found in the files of `dir` (the
/// database and its WAL). Recipients stay searchable, so they are not among them.
fn markers_in_files(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("mb.db")
        {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for marker in &MARKERS[..3] {
            if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                found.push(format!("{marker} in {}", path.display()));
            }
        }
    }
    found
}

/// Re-encrypts the messages stored at `db` with the new key (both keys set,
/// the new one first); `count` of them.
fn rotate(db: &str, count: usize) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailbridge"))
        .args(["keys", "rotate"])
        .env("MAILBRIDGE_DATABASE_URL", db)
        .env("MAILBRIDGE_ENCRYPTION_KEYS", format!("{NEW},{OLD}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("re-encrypted {count} ")),
        "{stdout}"
    );
}

/// The old key removed: the messages `ids` stored at `db` still deliver, with
/// their content, into `outbox`.
async fn delivered_with_the_new_key_alone(db: &str, ids: &[String], outbox: &std::path::Path) {
    let server = TestServer::start(&[
        ("MAILBRIDGE_DATABASE_URL", db),
        ("MAILBRIDGE_ENCRYPTION_KEYS", NEW),
        (
            "MAILBRIDGE_TRANSPORT",
            &format!("file://{}", outbox.display()),
        ),
    ])
    .await;
    for id in ids {
        server
            .wait_status(id, "sent", Duration::from_secs(20))
            .await;
    }
    let delivered: String = std::fs::read_dir(outbox)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(delivered.contains(MARKERS[0]) && delivered.contains(MARKERS[2]));
    server.stop().await;
}

#[tokio::test]
async fn sqlite_files_hold_no_plain_text_and_rotation_keeps_messages_deliverable() {
    // The database lives outside the server's own directory, to outlive it.
    let kept = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/mb.db", kept.path().display());
    let first = TestServer::start(&[
        ("MAILBRIDGE_DATABASE_URL", db.as_str()),
        ("MAILBRIDGE_ENCRYPTION_KEYS", OLD),
        ("MAILBRIDGE_TRANSPORT", UNREACHABLE),
        ("MAILBRIDGE_RETRY_MAX_ATTEMPTS", "1000"),
    ])
    .await;
    let ids = accept(&first, 3).await;
    first
        .wait_status(&ids[2], "retrying", Duration::from_secs(10))
        .await;
    assert!(
        kept.path().join("mb.db-wal").exists(),
        "the WAL is checked as well"
    );
    let found = markers_in_files(kept.path());
    assert!(found.is_empty(), "plain text at rest: {found:?}");
    first.stop().await;

    // Rotate to the new key (both set, the new one first), online-capable CLI.
    rotate(&db, 3);
    let found = markers_in_files(kept.path());
    assert!(found.is_empty(), "plain text after rotation: {found:?}");

    delivered_with_the_new_key_alone(&db, &ids, &kept.path().join("outbox")).await;
}

#[test]
fn rotation_refuses_a_sqlite_path_that_does_not_exist_and_creates_nothing() {
    // A mistyped path once became a new, empty queue, and the command
    // reported success: the operator believed the old key could go.
    let dir = tempfile::tempdir().unwrap();
    for missing in ["mb.db", "typo/mb.db"] {
        let path = dir.path().join(missing);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailbridge"))
            .args(["keys", "rotate"])
            .env_clear()
            .env(
                "MAILBRIDGE_DATABASE_URL",
                format!("sqlite://{}", path.display()),
            )
            .env("MAILBRIDGE_ENCRYPTION_KEYS", format!("{NEW},{OLD}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("no SQLite database at {}", path.display())),
            "{stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let created: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(created.is_empty(), "{created:?}");
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_fails_that_message_clearly() {
    let first = TestServer::start(&[
        ("MAILBRIDGE_ENCRYPTION_KEYS", OLD),
        ("MAILBRIDGE_TRANSPORT", UNREACHABLE),
        ("MAILBRIDGE_RETRY_MAX_ATTEMPTS", "1000"),
    ])
    .await;
    let ids = accept(&first, 2).await;
    first
        .wait_status(&ids[1], "retrying", Duration::from_secs(10))
        .await;
    let db = format!("sqlite://{}/mb.db", first.dir.path().display());
    // Swap the two rows' stored messages, as someone with the database could.
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    let stored = |id: &str| {
        sqlx::query_scalar::<_, String>("SELECT message FROM bodies WHERE message_id = ?")
            .bind(id.to_owned())
            .fetch_one(&pool)
    };
    let (a, b) = (
        stored(&ids[0]).await.unwrap(),
        stored(&ids[1]).await.unwrap(),
    );
    for (id, message) in [(&ids[0], b), (&ids[1], a)] {
        let done = sqlx::query("UPDATE bodies SET message = ? WHERE message_id = ?")
            .bind(message)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    }
    pool.close().await;
    for id in &ids {
        let record = first
            .wait_status(id, "failed", Duration::from_secs(20))
            .await;
        let error = record["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("does not decrypt"), "{record}");
        assert!(error.contains("another row"), "{record}");
    }
    let (status, _) = first.get("/readyz", "").await;
    assert_eq!(status, 200, "the service keeps running");
    first.stop().await;
}

#[tokio::test]
async fn a_postgres_dump_holds_no_plain_text_and_rotation_keeps_messages_deliverable() {
    let pg = Postgres::start();
    let url = pg.database();
    let server = TestServer::start(&[
        ("MAILBRIDGE_DATABASE_URL", url.as_str()),
        ("MAILBRIDGE_ENCRYPTION_KEYS", OLD),
        ("MAILBRIDGE_TRANSPORT", UNREACHABLE),
    ])
    .await;
    let ids = accept(&server, 2).await;
    server
        .wait_status(&ids[1], "retrying", Duration::from_secs(10))
        .await;
    let dump = pg.dump(&url);
    assert!(dump.contains(&ids[0]), "the rows are in the dump");
    assert!(
        dump.contains(&MARKERS[3].to_lowercase()),
        "recipients stay searchable, in the recipients table"
    );
    for marker in &MARKERS[..3] {
        assert!(!dump.contains(marker), "{marker} in the PostgreSQL dump");
    }
    server.stop().await;

    // One body as it was stored before bodies were text (JSONB): rotation
    // re-seals it too, into the text form.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let moved = sqlx::query(
        "UPDATE bodies SET message = body::jsonb, body = NULL WHERE message_id = $1::uuid",
    )
    .bind(&ids[0])
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(moved.rows_affected(), 1);

    rotate(&url, 2);
    let jsonb_left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bodies WHERE message IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(jsonb_left, 0, "a re-sealed body is written back as text");
    pool.close().await;
    let dump = pg.dump(&url);
    for marker in &MARKERS[..3] {
        assert!(
            !dump.contains(marker),
            "{marker} in the dump after rotation"
        );
    }

    let outbox = tempfile::tempdir().unwrap();
    delivered_with_the_new_key_alone(&url, &ids, outbox.path()).await;
}

/// Three messages stored at `db` by a service without keys (packed), and
/// the JSON text of a message for the first of them, as stores written
/// before packing hold it.
async fn stored_without_keys(db: &str) -> (Vec<String>, String) {
    let first = TestServer::start(&[
        ("MAILBRIDGE_DATABASE_URL", db),
        ("MAILBRIDGE_TRANSPORT", UNREACHABLE),
        ("MAILBRIDGE_RETRY_MAX_ATTEMPTS", "1000"),
    ])
    .await;
    let ids = accept(&first, 3).await;
    first
        .wait_status(&ids[2], "retrying", Duration::from_secs(10))
        .await;
    first.stop().await;
    let mut text_row = mailbridge::email::OutgoingMessage::plain(
        "acme",
        mailbridge::email::Mailbox::new("no-reply@acme.example"),
        mailbridge::email::Mailbox::new(MARKERS[3]),
        &format!("{} as text", MARKERS[0]),
        &format!(
            "{} https://sso.example/reset?key={}",
            MARKERS[1], MARKERS[2]
        ),
    );
    text_row.id = uuid::Uuid::parse_str(&ids[0]).unwrap();
    (ids, serde_json::to_string(&text_row).unwrap())
}

#[tokio::test]
async fn plain_sqlite_rows_are_sealed_by_rotation() {
    // Rows stored without keys (packed JSON, and JSON text as stores
    // written before packing hold) are sealed by `keys rotate` and deliver
    // with the key alone.
    let kept = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/mb.db", kept.path().display());
    let (ids, text_row) = stored_without_keys(&db).await;
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query("UPDATE bodies SET message = ? WHERE message_id = ?")
        .bind(&text_row)
        .bind(&ids[0])
        .execute(&pool)
        .await
        .unwrap();
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT typeof(message) FROM bodies ORDER BY message_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(kinds, ["text", "blob", "blob"]);
    pool.close().await;

    rotate(&db, 3);
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    let sealed: Vec<String> = sqlx::query_scalar("SELECT message FROM bodies")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(sealed.len(), 3);
    for value in &sealed {
        assert!(value.contains("\"kid\":\"new\""), "{value}");
        assert!(!MARKERS.iter().any(|m| value.contains(m)), "{value}");
    }
    delivered_with_the_new_key_alone(&db, &ids, &kept.path().join("outbox")).await;
}

#[tokio::test]
async fn plain_postgres_rows_are_sealed_by_rotation() {
    // The same on PostgreSQL: packed bodies and one as text (as stores
    // written before packing hold) are sealed into text by `keys rotate`.
    let pg = Postgres::start();
    let url = pg.database();
    let (ids, text_row) = stored_without_keys(&url).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE bodies SET body = $1, packed = NULL WHERE message_id = $2::uuid")
        .bind(&text_row)
        .bind(&ids[0])
        .execute(&pool)
        .await
        .unwrap();
    let forms: Vec<(bool, bool)> = sqlx::query_as(
        "SELECT body IS NOT NULL, packed IS NOT NULL FROM bodies ORDER BY message_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(forms, [(true, false), (false, true), (false, true)]);

    rotate(&url, 3);
    let sealed: Vec<(Option<String>, bool)> =
        sqlx::query_as("SELECT body, packed IS NULL FROM bodies")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(sealed.len(), 3);
    for (body, no_packed) in &sealed {
        let body = body.as_deref().unwrap_or_default();
        assert!(body.contains("\"kid\":\"new\"") && *no_packed, "{body}");
        assert!(!MARKERS.iter().any(|m| body.contains(m)), "{body}");
    }
    let outbox = tempfile::tempdir().unwrap();
    delivered_with_the_new_key_alone(&url, &ids, outbox.path()).await;
}
