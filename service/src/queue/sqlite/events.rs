//! Delivery events in SQLite.

use anyhow::Context as _;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::{from_ms, ms};
use time::OffsetDateTime;

use crate::events::signature::SignatureToken;
use crate::events::{Bounce, DeliveryEvent, EventType, MAX_AGE};
use crate::queue::{MAX_EVENTS_PER_MESSAGE, StoreError};

/// Inserts `event`; false when its provider event id was stored before.
/// The message keeps at most [`MAX_EVENTS_PER_MESSAGE`] events.
pub async fn add(pool: &SqlitePool, event: &DeliveryEvent) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.context("storing a delivery event")?;
    let done = sqlx::query(
        "INSERT INTO delivery_events (message_id, transport, type, bounce, recipient, detail, \
         provider_event_id, occurred_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT DO NOTHING",
    )
    .bind(event.message_id.to_string())
    .bind(&event.transport)
    .bind(event.kind.as_str())
    .bind(event.bounce.map(Bounce::as_str))
    .bind(event.recipient.as_deref())
    .bind(event.detail.as_deref())
    .bind(event.provider_event_id.as_deref())
    .bind(ms(event.occurred_at))
    .bind(ms(event.received_at))
    .execute(&mut *tx)
    .await
    .context("storing a delivery event")?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    // The event just stored first, then the final ones, each latest first:
    // what comes after the bound goes.
    sqlx::query(
        "DELETE FROM delivery_events WHERE id IN (SELECT id FROM delivery_events \
         WHERE message_id = ? ORDER BY id = ? DESC, CASE WHEN type IN ('delivered', 'complained') \
         OR (type = 'bounced' AND bounce = 'hard') THEN 1 ELSE 0 END DESC, occurred_at DESC, \
         id DESC LIMIT -1 OFFSET ?)",
    )
    .bind(event.message_id.to_string())
    .bind(done.last_insert_rowid())
    .bind(MAX_EVENTS_PER_MESSAGE)
    .execute(&mut *tx)
    .await
    .context("letting go of a message's oldest delivery events")?;
    tx.commit().await.context("storing a delivery event")?;
    Ok(true)
}

/// Takes a webhook signature's token (see [`crate::queue::JobStore::take_signature`]).
pub async fn take_signature(
    pool: &SqlitePool,
    token: &SignatureToken,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    sqlx::query("DELETE FROM event_signatures WHERE signed_at < ?")
        .bind(ms(now - MAX_AGE))
        .execute(pool)
        .await
        .context("letting go of old webhook signatures")?;
    // On a token taken before, the row is left as it was and answers the
    // body it was first taken with.
    let first: Vec<u8> = sqlx::query_scalar(
        "INSERT INTO event_signatures (token, digest, signed_at) VALUES (?, ?, ?) \
         ON CONFLICT (token) DO UPDATE SET digest = digest RETURNING digest",
    )
    .bind(&token.token)
    .bind(&token.body)
    .bind(ms(token.signed_at))
    .fetch_one(pool)
    .await
    .context("taking a webhook signature")?;
    Ok(first == token.body)
}

/// The events of message `id`, oldest first.
pub async fn list(pool: &SqlitePool, id: Uuid) -> Result<Vec<DeliveryEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT message_id, transport, type, bounce, recipient, detail, provider_event_id, \
         occurred_at, received_at FROM delivery_events WHERE message_id = ? \
         ORDER BY occurred_at, id",
    )
    .bind(id.to_string())
    .fetch_all(pool)
    .await
    .context("reading delivery events")?;
    rows.iter().map(|row| read(row, id)).collect()
}

/// The recipient addresses recorded for message `id`.
pub async fn recipients(pool: &SqlitePool, id: Uuid) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT address FROM recipients WHERE message_id = ?")
            .bind(id.to_string())
            .fetch_all(pool)
            .await
            .context("reading a message's recipients")?,
    )
}

/// The message whose provider id is `provider_message_id`.
pub async fn by_provider_id(
    pool: &SqlitePool,
    provider_message_id: &str,
) -> Result<Option<Uuid>, StoreError> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT id FROM messages WHERE provider_message_id = ? LIMIT 1")
            .bind(provider_message_id)
            .fetch_optional(pool)
            .await
            .context("finding a message by its provider id")?;
    Ok(id.and_then(|id| Uuid::parse_str(&id).ok()))
}

fn read(row: &SqliteRow, id: Uuid) -> Result<DeliveryEvent, StoreError> {
    let read = || -> anyhow::Result<DeliveryEvent> {
        let kind: String = row.try_get("type")?;
        let bounce: Option<String> = row.try_get("bounce")?;
        Ok(DeliveryEvent {
            message_id: id,
            kind: EventType::parse(&kind).with_context(|| format!("unknown event type {kind}"))?,
            bounce: bounce.as_deref().and_then(Bounce::parse),
            recipient: row.try_get("recipient")?,
            detail: row.try_get("detail")?,
            transport: row.try_get("transport")?,
            provider_event_id: row.try_get("provider_event_id")?,
            occurred_at: from_ms(row.try_get("occurred_at")?),
            received_at: from_ms(row.try_get("received_at")?),
        })
    };
    Ok(read().context("a stored delivery event cannot be read")?)
}
