//! The `sent` outcomes of one commit group, recorded with two statements
//! instead of two each: the attempts' history rows, then the status rows.
//! Both carry every outcome's own lease fence (`id`, `claims`, `sending`),
//! so an attempt that lost its lease records nothing, and each outcome is
//! answered by whether its own row changed.

use std::collections::HashSet;

use rusqlite::Connection;

use super::ms;
use crate::queue::grouping::Delivered;

/// One outcome as the statements read it: `[id, claim, provider id, now]`.
type Entry = (String, u32, Option<String>, i64);

/// Records `delivered`; for each, whether its lease still held.
pub(super) fn record_all(
    conn: &Connection,
    delivered: &[Delivered<'_>],
) -> anyhow::Result<Vec<bool>> {
    if delivered.is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<Entry> = delivered
        .iter()
        .map(|d| {
            let id = d.lease.id.to_string();
            (
                id,
                d.lease.claim,
                d.provider_message_id.map(str::to_owned),
                ms(d.now),
            )
        })
        .collect();
    let entries = serde_json::to_string(&entries)?;
    // Before the update, under the same fence: only the attempt that still
    // holds the message leaves a row in its history. `+status` in both: with
    // it SQLite looks each outcome's row up by its id; without it, it walks
    // every `sending` row through the status index and scans the outcomes
    // for each.
    conn.prepare_cached(
        "INSERT INTO attempts (message_id, attempt, transport, outcome, answer, finished_at) \
         SELECT m.id, m.attempts, m.transport, 'sent', json_extract(o.value, '$[2]'), \
                json_extract(o.value, '$[3]') \
         FROM json_each(?1) AS o JOIN messages AS m ON m.id = json_extract(o.value, '$[0]') \
         WHERE m.claims = json_extract(o.value, '$[1]') AND +m.status = 'sending'",
    )?
    .execute([&entries])?;
    let mut update = conn.prepare_cached(
        "UPDATE messages SET status = 'sent', provider_message_id = json_extract(o.value, '$[2]'), \
             sent_at = json_extract(o.value, '$[3]'), updated_at = json_extract(o.value, '$[3]'), \
             lease_until = NULL, next_attempt_at = NULL \
         FROM json_each(?1) AS o \
         WHERE messages.id = json_extract(o.value, '$[0]') \
           AND messages.claims = json_extract(o.value, '$[1]') AND +messages.status = 'sending' \
         RETURNING messages.id",
    )?;
    let applied = update
        .query_map([&entries], |row| row.get::<_, String>(0))?
        .collect::<Result<HashSet<String>, _>>()?;
    Ok(delivered
        .iter()
        .map(|d| applied.contains(&d.lease.id.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::SqliteConnection;
    use time::OffsetDateTime;

    use super::record_all;
    use crate::email::{Mailbox, OutgoingMessage};
    use crate::queue::batch::Enqueue;
    use crate::queue::grouping::Delivered;
    use crate::queue::packing::{self, Stored};
    use crate::queue::{Enqueued, Lease, NewJob};

    /// `status, provider_message_id, sent_at, lease_until`.
    type StatusRow = (String, Option<String>, Option<i64>, Option<i64>);

    fn claimed(conn: &rusqlite::Connection, now: OffsetDateTime) -> Lease {
        let message = OutgoingMessage::plain(
            "acme",
            Mailbox::new("no-reply@acme.example"),
            Mailbox::new("ada@example.com"),
            "Hi",
            "Hello",
        );
        let stored = Stored::Packed(packing::pack(&serde_json::to_vec(&message).unwrap()).unwrap());
        let job = NewJob {
            message,
            idempotency_key: None,
            transport: "relay".into(),
            now,
            lease: Some(Duration::from_secs(60)),
            origin: Default::default(),
            limits: Vec::new(),
        };
        let new = Enqueue { job, stored };
        match super::super::accept::insert_all(conn, &[&new]).unwrap()[..] {
            [Enqueued::Claimed(lease)] => lease,
            ref other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn each_outcome_of_a_group_is_fenced_and_answered_by_its_own_lease() {
        let (mut conn, direct): (SqliteConnection, _) = super::super::writer::test_store().await;
        let now = OffsetDateTime::now_utc();
        let (a, b, c) = (
            claimed(&direct, now),
            claimed(&direct, now),
            claimed(&direct, now),
        );
        // b was claimed again meanwhile: its first attempt lost the lease.
        sqlx::query("UPDATE messages SET claims = 2 WHERE id = ?")
            .bind(b.id.to_string())
            .execute(&mut conn)
            .await
            .unwrap();
        let gone = Lease {
            id: uuid::Uuid::now_v7(),
            ..a
        };
        let group = [
            (&a, Some("prov-a")),
            (&b, Some("prov-b")),
            (&gone, None),
            (&c, None),
        ]
        .map(|(lease, provider_message_id)| Delivered {
            lease,
            provider_message_id,
            now,
        });
        let applied = record_all(&direct, &group).unwrap();
        assert_eq!(applied, [true, false, false, true]);
        let history: Vec<(String, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT message_id, attempt, transport, answer FROM attempts ORDER BY id",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let expected = [(a.id, Some("prov-a")), (c.id, None)]
            .map(|(id, answer)| (id.to_string(), 1, "relay".into(), answer.map(String::from)));
        assert_eq!(history, expected);
        let rows: Vec<StatusRow> = sqlx::query_as(
            "SELECT status, provider_message_id, sent_at, lease_until FROM messages ORDER BY id",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let sent_at = Some(super::ms(now));
        assert_eq!(
            rows[0],
            ("sent".into(), Some("prov-a".into()), sent_at, None)
        );
        assert_eq!(rows[1].0, "sending", "a lost lease records nothing");
        assert_eq!(rows[2], ("sent".into(), None, sent_at, None));
    }
}
