//! Retention in SQLite: the bodies of messages sent or suppressed before the
//! cut-off are deleted, a batch of bodies at a time in the table's own order
//! (see [`super::walk`]): a single `DELETE` of every such body held the one
//! write connection while every commit group waited for it (millions of
//! rows when `MAILBRIDGE_RETENTION` is shortened: every accept answered 503
//! after its 30 s wait). Failed messages keep their bodies for an admin's
//! retry; every status row stays.

use sqlx::SqlitePool;
use time::OffsetDateTime;

use super::ms;
use super::walk::Walk;
use crate::queue::{Pruned, StoreError};

/// Whether the message of a body ended before the time bound `$t`: sent,
/// or suppressed (never sent, and it cannot be retried), counted from when
/// it did. The message is looked up by its primary key.
macro_rules! ended_before {
    ($t:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM messages WHERE messages.id = bodies.message_id AND \
             (status = 'sent' AND sent_at < ",
            $t,
            " OR status = 'suppressed' AND updated_at < ",
            $t,
            "))"
        )
    };
}

/// The walk over `bodies`.
const BODIES: Walk = Walk {
    last: "SELECT rowid FROM bodies WHERE rowid > ? ORDER BY rowid LIMIT 1 OFFSET ?",
    range: concat!(
        "DELETE FROM bodies WHERE rowid > ?1 AND rowid <= ?2 AND ",
        ended_before!("?3")
    ),
    rest: concat!(
        "DELETE FROM bodies WHERE rowid > ?1 AND ",
        ended_before!("?2")
    ),
    what: "removing the bodies of messages past their retention",
};

/// Deletes the bodies of messages that ended before `older_than` among the
/// `batch` bodies after `after` (a rowid; `next` is one).
pub async fn purge(
    pool: &SqlitePool,
    older_than: OffsetDateTime,
    after: Option<&str>,
    batch: u32,
) -> Result<Pruned, StoreError> {
    Ok(BODIES.step(pool, after, batch, ms(older_than)).await?)
}

#[cfg(test)]
mod tests {
    use sqlx::Row as _;
    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    const DAY: i64 = 24 * 3600 * 1000;

    /// `n` messages with their bodies, by turns: sent long ago, sent
    /// lately, suppressed long ago, failed long ago, queued long ago.
    async fn messages(n: i64, now: i64) -> SqlitePool {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::migrate!("./migrations").run(&pool).await.unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1), \
             m(i, status, at) AS (SELECT i, CASE i % 5 WHEN 0 THEN 'sent' WHEN 1 THEN 'sent' \
               WHEN 2 THEN 'suppressed' WHEN 3 THEN 'failed' ELSE 'queued' END, \
               CASE i % 5 WHEN 1 THEN ?2 ELSE ?2 - 8 * ?3 END FROM n) \
             INSERT INTO messages (id, tenant, status, transport, created_at, age_from, updated_at, sent_at) \
             SELECT printf('m%08d', i), 'acme', status, 'default', at, at, at, \
               CASE status WHEN 'sent' THEN at END FROM m",
        )
        .bind(n)
        .bind(now)
        .bind(DAY)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO bodies (message_id, message) SELECT id, '{}' FROM messages")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    #[tokio::test]
    async fn retention_walks_the_bodies_a_batch_at_a_time_and_keeps_what_may_still_go_out() {
        let now = OffsetDateTime::now_utc();
        let pool = messages(3_000, ms(now)).await;
        let cutoff = now - std::time::Duration::from_secs(7 * 24 * 3600);
        let (mut after, mut steps, mut deleted) = (None, 0, 0);
        loop {
            let step = purge(&pool, cutoff, after.as_deref(), 250).await.unwrap();
            assert!(step.deleted <= 250, "{step:?}");
            deleted += step.deleted;
            steps += 1;
            match step.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        // Sent and suppressed long ago: two in five.
        assert_eq!(deleted, 1_200);
        // 3,000 bodies: twelve full steps, then one that finds none left.
        assert_eq!(steps, 13);
        let left: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM messages JOIN bodies ON message_id = id \
             GROUP BY status ORDER BY status",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let left: Vec<(&str, i64)> = left.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        assert_eq!(
            left,
            [("failed", 600), ("queued", 600), ("sent", 600)],
            "failed and unsent messages and those sent lately keep their bodies"
        );
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 3_000, "every status row stays");
    }

    #[tokio::test]
    async fn each_retention_statement_reads_a_range_of_the_bodies_and_their_messages_by_id() {
        let pool = messages(10, 0).await;
        for sql in BODIES.statements() {
            let steps = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&pool)
                .await
                .unwrap();
            let plan: Vec<String> = steps.iter().map(|row| row.get("detail")).collect();
            let plan = plan.join(" / ");
            assert!(
                plan.contains("SEARCH bodies USING INTEGER PRIMARY KEY (rowid>"),
                "{sql}: {plan}"
            );
            assert!(!plan.contains("SCAN"), "{sql}: {plan}");
            if sql.contains("EXISTS") {
                assert!(
                    plan.contains("SEARCH messages USING INDEX sqlite_autoindex_messages_1 (id=?)"),
                    "{sql}: {plan}"
                );
            }
        }
    }
}
