//! One batch of `mailbridge keys rotate` on PostgreSQL (see [`crate::queue::rotation`]).

use anyhow::Context as _;
use sqlx::Row;
use uuid::Uuid;

use super::PgStore;
use crate::queue::StoreError;
use crate::queue::rotation::{self, BATCH, Rotated};
use crate::queue::sealing::Keyring;

impl PgStore {
    /// Re-seals the next batch of rows after `after`; answers the last id
    /// read, or `None` when no rows are left.
    pub async fn reseal_batch(
        &self,
        keyring: &Keyring,
        after: Option<Uuid>,
        tally: &mut Rotated,
    ) -> Result<Option<Uuid>, StoreError> {
        let rows = sqlx::query(
            "SELECT message_id AS id, coalesce(body, message::text) AS message FROM bodies \
             WHERE ($1::uuid IS NULL OR message_id > $1) ORDER BY message_id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(BATCH))
        .fetch_all(&self.pool)
        .await
        .context("reading stored messages")?;
        let mut last = None;
        for row in &rows {
            let id: Uuid = row.try_get("id").context("id")?;
            let text: String = row.try_get("message").context("message")?;
            last = Some(id);
            let Ok(stored) = serde_json::from_str(&text) else {
                tally.unreadable += 1;
                continue;
            };
            // Written back only if the body did not change meanwhile; one
            // stored as JSONB (before bodies were text) goes back as text.
            if let Some(sealed) = rotation::reseal(keyring, &(id, stored), tally) {
                let done = sqlx::query(
                    "UPDATE bodies SET body = $1, message = NULL \
                     WHERE message_id = $2 AND coalesce(body, message::text) = $3",
                )
                .bind(sealed.to_string())
                .bind(id)
                .bind(&text)
                .execute(&self.pool)
                .await
                .context("re-sealing a message")?;
                tally.resealed += done.rows_affected();
            }
        }
        Ok(last)
    }
}
