//! One batch of `mailbridge keys rotate` on SQLite (see [`crate::queue::rotation`]).

use anyhow::Context as _;
use sqlx::Row;
use uuid::Uuid;

use super::SqliteStore;
use crate::queue::StoreError;
use crate::queue::rotation::{self, BATCH, Rotated};
use crate::queue::sealing::Keyring;

impl SqliteStore {
    /// Re-seals the next batch of rows after `after`; answers the last id
    /// read, or `None` when no rows are left.
    pub async fn reseal_batch(
        &self,
        keyring: &Keyring,
        after: Option<Uuid>,
        tally: &mut Rotated,
    ) -> Result<Option<Uuid>, StoreError> {
        let rows = sqlx::query(
            "SELECT message_id AS id, message FROM bodies WHERE (?1 IS NULL OR message_id > ?1) \
             ORDER BY message_id LIMIT ?2",
        )
        .bind(after.map(|id| id.to_string()))
        .bind(i64::from(BATCH))
        .fetch_all(&self.write)
        .await
        .context("reading stored messages")?;
        let mut last = None;
        for row in &rows {
            let id: String = row.try_get("id").context("id")?;
            let stored: Vec<u8> = row.try_get("message").context("message")?;
            let id = Uuid::parse_str(&id).context("id")?;
            last = Some(id);
            let Some(value) = rotation::stored_value(&stored) else {
                tally.unreadable += 1;
                continue;
            };
            if let Some(sealed) = rotation::reseal(keyring, &(id, value), tally) {
                // Compared as bytes: the row holds JSON text or packed JSON.
                let done = sqlx::query(
                    "UPDATE bodies SET message = ? WHERE message_id = ? AND CAST(message AS BLOB) = ?",
                )
                .bind(sealed.to_string())
                .bind(id.to_string())
                .bind(&stored)
                .execute(&self.write)
                .await
                .context("re-sealing a message")?;
                tally.resealed += done.rows_affected();
            }
        }
        Ok(last)
    }
}
