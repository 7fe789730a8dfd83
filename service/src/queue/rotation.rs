//! `mailbridge keys rotate`: every stored message sealed again with the
//! first key of `MAILBRIDGE_ENCRYPTION_KEYS` (rows stored in plain text are
//! sealed too), in batches, while the service runs. Each row is replaced
//! only if it did not change meanwhile (compare and swap on its stored
//! value), so a row the service is writing is simply left for the next run.

use uuid::Uuid;

use super::sealing::{self, Keyring};
use super::{StoreError, postgres::PgStore, sqlite::SqliteStore};

/// Rows read and re-sealed per batch.
pub const BATCH: u32 = 200;

/// What a rotation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    /// Rows sealed again with the first key.
    pub resealed: u64,
    /// Rows already sealed with it.
    pub current: u64,
    /// Rows that could not be opened (left as they are).
    pub unreadable: u64,
}

/// One stored row: its id and stored value.
pub(crate) type StoredRow = (Uuid, serde_json::Value);

/// A row's stored value as JSON (packed JSON unpacked); `None` when it is neither.
pub(crate) fn stored_value(stored: &[u8]) -> Option<serde_json::Value> {
    let json = super::packing::unpack(stored).ok()?;
    serde_json::from_slice(&json).ok()
}

/// The new stored value of a row, or `None` when it is already current.
pub(crate) fn reseal(
    keyring: &Keyring,
    (id, stored): &StoredRow,
    tally: &mut Rotated,
) -> Option<serde_json::Value> {
    if Keyring::sealed_with(stored).as_deref() == Some(keyring.primary()) {
        tally.current += 1;
        return None;
    }
    let opened = sealing::open(Some(keyring), *id, stored.clone());
    match opened
        .map_err(|e| e.to_string())
        .and_then(|m| keyring.seal(&m).map_err(|e| e.0))
    {
        Ok(sealed) => Some(sealed),
        Err(e) => {
            tracing::warn!(message_id = %id, error = %e, "a stored message cannot be re-sealed; left as it is");
            tally.unreadable += 1;
            None
        }
    }
}

/// Re-seals every stored message of the store at `url`; a SQLite file
/// that does not exist is an error (it would be a new, empty queue).
pub async fn rotate(url: &str, keyring: &Keyring) -> Result<Rotated, StoreError> {
    let mut tally = Rotated::default();
    let mut after = None;
    if url.starts_with("sqlite:") {
        let store = SqliteStore::open_existing(url).await?;
        while let Some(last) = store.reseal_batch(keyring, after, &mut tally).await? {
            after = Some(last);
        }
    } else {
        let store = PgStore::open(url).await?;
        while let Some(last) = store.reseal_batch(keyring, after, &mut tally).await? {
            after = Some(last);
        }
    }
    Ok(tally)
}
