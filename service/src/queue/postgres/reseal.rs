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
            "SELECT message_id AS id, \
                    coalesce(packed, convert_to(coalesce(body, message::text), 'UTF8')) AS message \
             FROM bodies \
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
            let stored: Vec<u8> = row.try_get("message").context("message")?;
            last = Some(id);
            let Some(value) = rotation::stored_value(&stored) else {
                tally.unreadable += 1;
                continue;
            };
            // Written back only if the body did not change meanwhile; one
            // stored as JSONB (before bodies were text) or packed goes back
            // as text.
            if let Some(sealed) = rotation::reseal(keyring, &(id, value), tally) {
                let done = sqlx::query(
                    "UPDATE bodies SET body = $1, message = NULL, packed = NULL \
                     WHERE message_id = $2 \
                     AND coalesce(packed, convert_to(coalesce(body, message::text), 'UTF8')) = $3",
                )
                .bind(sealed.to_string())
                .bind(id)
                .bind(&stored)
                .execute(&self.pool)
                .await
                .context("re-sealing a message")?;
                tally.resealed += done.rows_affected();
            }
        }
        Ok(last)
    }
}
