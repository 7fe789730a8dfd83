//! One batch of `mailbridge keys rotate` on PostgreSQL (see [`crate::queue::rotation`]).

use anyhow::Context as _;
use sqlx::Row;
use sqlx::types::Json;
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
            "SELECT message_id AS id, message FROM bodies WHERE ($1::uuid IS NULL OR message_id > $1) \
             ORDER BY message_id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(BATCH))
        .fetch_all(&self.pool)
        .await
        .context("reading stored messages")?;
        let mut last = None;
        for row in &rows {
            let id: Uuid = row.try_get("id").context("id")?;
            let Json(stored): Json<serde_json::Value> =
                row.try_get("message").context("message")?;
            last = Some(id);
            if let Some(sealed) = rotation::reseal(keyring, &(id, stored.clone()), tally) {
                let done = sqlx::query(
                    "UPDATE bodies SET message = $1 WHERE message_id = $2 AND message = $3",
                )
                .bind(Json(&sealed))
                .bind(id)
                .bind(Json(&stored))
                .execute(&self.pool)
                .await
                .context("re-sealing a message")?;
                tally.resealed += done.rows_affected();
            }
        }
        Ok(last)
    }
}
