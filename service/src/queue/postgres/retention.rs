//! Retention in PostgreSQL: the bodies of messages sent or suppressed before
//! the cut-off are deleted, a batch of bodies at a time in the order of
//! their key. Deleting never blocks PostgreSQL's writers, but one `DELETE`
//! of every such body was one transaction as long as the table (millions of
//! rows when `MAILBRIDGE_RETENTION` is shortened), holding back vacuum
//! meanwhile and lost as a whole if it failed. Failed messages keep their
//! bodies for an admin's retry; every status row stays.

use anyhow::Context as _;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::queue::{Pruned, StoreError};

/// One step (`$1`: the last body of the step before, `$2`: the batch, `$3`:
/// the cut-off): the next bodies in key order, read from the key's index,
/// and among them those whose message (looked up by its key) was sent, or
/// suppressed (never sent, and it cannot be retried), before the cut-off.
#[doc(hidden)]
pub const PURGE: &str = "WITH walked AS (SELECT message_id FROM bodies WHERE message_id > $1 \
        ORDER BY message_id LIMIT $2), \
    gone AS (DELETE FROM bodies USING messages \
        WHERE bodies.message_id IN (SELECT message_id FROM walked) \
        AND messages.id = bodies.message_id \
        AND (messages.status = 'sent' AND messages.sent_at < $3 \
            OR messages.status = 'suppressed' AND messages.updated_at < $3) \
        RETURNING 1) \
    SELECT (SELECT count(*) FROM walked) AS walked, \
        (SELECT message_id FROM walked ORDER BY message_id DESC LIMIT 1) AS last, \
        (SELECT count(*) FROM gone) AS deleted";

/// Deletes the bodies of messages that ended before `older_than` among the
/// `batch` bodies after `after` (a message id; `next` is one).
pub async fn purge(
    pool: &PgPool,
    older_than: OffsetDateTime,
    after: Option<&str>,
    batch: u32,
) -> Result<Pruned, StoreError> {
    let after = match after {
        Some(id) => Uuid::parse_str(id).context("a retention step's message id")?,
        None => Uuid::nil(),
    };
    let batch = batch.max(1);
    let (walked, last, deleted): (i64, Option<Uuid>, i64) = sqlx::query_as(PURGE)
        .bind(after)
        .bind(i64::from(batch))
        .bind(older_than)
        .fetch_one(pool)
        .await
        .context("removing the bodies of messages past their retention")?;
    Ok(Pruned {
        deleted: u64::try_from(deleted).unwrap_or_default(),
        next: last
            .filter(|_| walked >= i64::from(batch))
            .map(|id| id.to_string()),
    })
}
