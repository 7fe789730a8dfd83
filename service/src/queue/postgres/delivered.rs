//! The `sent` outcomes of one commit group, recorded with one statement
//! instead of two each: the status rows are updated under every outcome's
//! own lease fence (`id`, `claims`, `sending`), and the history rows are
//! written from exactly the rows that changed, so an attempt that lost its
//! lease records nothing and each outcome is answered by whether its own
//! row changed.

use std::collections::HashSet;

use anyhow::Context as _;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::queue::grouping::Delivered;

/// The statement: each outcome's row is looked up by its id. The status
/// test is written so that no index can serve it (`IS TRUE`, like SQLite's
/// `+status`): statistics from a quiet moment say almost no row is
/// `sending`, and PostgreSQL then reads every `sending` entry of a status
/// index (live ones and the dead ones that earlier outcomes left, which a
/// bitmap scan never marks) and joins the outcomes to them, so each group's
/// outcome grew with the messages in flight (2,300 index entries read for 6
/// outcomes under load: 3 ms instead of 0.5).
#[doc(hidden)]
pub const RECORD_SENT: &str = "WITH done AS ( \
       UPDATE messages AS m SET status = 'sent', provider_message_id = o.answer, sent_at = o.at, \
           updated_at = o.at, lease_until = NULL, next_attempt_at = NULL \
       FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::timestamptz[]) AS o (id, claim, answer, at) \
       WHERE m.id = o.id AND m.claims = o.claim AND (m.status = 'sending') IS TRUE \
       RETURNING m.id, m.attempts, m.transport, o.answer, o.at), \
     history AS ( \
       INSERT INTO attempts (message_id, attempt, transport, outcome, answer, finished_at) \
       SELECT id, attempts, transport, 'sent', answer, at FROM done) \
     SELECT id FROM done";

/// Records `delivered`; for each, whether its lease still held.
pub(super) async fn record_all(
    conn: &mut PgConnection,
    delivered: &[Delivered<'_>],
) -> anyhow::Result<Vec<bool>> {
    if delivered.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = delivered.iter().map(|d| d.lease.id).collect();
    let claims = delivered
        .iter()
        .map(|d| i32::try_from(d.lease.claim))
        .collect::<Result<Vec<i32>, _>>()
        .context("claim number out of range")?;
    let answers: Vec<Option<&str>> = delivered.iter().map(|d| d.provider_message_id).collect();
    let times: Vec<OffsetDateTime> = delivered.iter().map(|d| d.now).collect();
    // Prepared once per connection. Its plan is made again whenever the
    // table's statistics change, and this replica takes them as the table
    // grows (`growth`), so a plan from the table's first rows (a hash join
    // over all of it) does not outlive them; generic and custom plans both
    // look rows up by id (checked by the store's tests). Planned at every
    // use instead, planning cost the server about a fifth of the statement.
    let applied: Vec<Uuid> = sqlx::query_scalar(RECORD_SENT)
        .bind(ids)
        .bind(claims)
        .bind(answers)
        .bind(times)
        .fetch_all(&mut *conn)
        .await?;
    let applied: HashSet<Uuid> = applied.into_iter().collect();
    Ok(delivered
        .iter()
        .map(|d| applied.contains(&d.lease.id))
        .collect())
}
