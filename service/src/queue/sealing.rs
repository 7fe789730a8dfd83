//! Messages at rest: with `MAILBRIDGE_ENCRYPTION_KEYS` the stored message
//! (subject, bodies, template data, headers, recipients) is sealed with
//! AES-256-GCM before it is handed to the store's writer. Each row holds its
//! key id and its own random nonce; the row's id is the associated data, so a
//! sealed body copied into another row does not open.
//!
//! Stored form, as JSON text in both stores:
//! `{"sealed": {"kid": "k1", "nonce": "<base64>", "ct": "<base64>"}}`;
//! a row stored without keys holds the message's JSON packed (see
//! `queue::packing`), or as text when written before packing.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::email::OutgoingMessage;

/// Why the keys setting cannot be used, or a row cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SealError(pub String);

/// Why a stored message did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Sealed with a key this process does not hold. Not damage: during a
    /// rolling key rotation another replica (or this one, restarted with
    /// the key) opens it.
    #[error("{}", key_not_held(kid, *keys_set))]
    KeyNotHeld {
        /// The row's key id.
        kid: String,
        /// Whether this process has MAILBRIDGE_ENCRYPTION_KEYS at all.
        keys_set: bool,
    },
    /// Damaged, altered or not a message: it will never open.
    #[error(transparent)]
    Damaged(#[from] SealError),
}

fn key_not_held(kid: &str, keys_set: bool) -> String {
    if keys_set {
        format!(
            "the message is encrypted with key `{kid}`, which MAILBRIDGE_ENCRYPTION_KEYS does not hold"
        )
    } else {
        format!(
            "the message is encrypted with key `{kid}` and no MAILBRIDGE_ENCRYPTION_KEYS are set"
        )
    }
}

/// The encryption keys: the first seals, every one opens.
pub struct Keyring {
    keys: Vec<(String, LessSafeKey)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "Keyring({ids:?})")
    }
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    kid: String,
    nonce: String,
    ct: String,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    sealed: Sealed,
}

impl Keyring {
    /// Parses `id:base64key,…` (each key 32 bytes, standard base64). Errors
    /// name the key id or position, never a key.
    pub fn parse(text: &str) -> Result<Keyring, SealError> {
        let mut keys: Vec<(String, LessSafeKey)> = Vec::new();
        for (n, item) in text.split(',').map(str::trim).enumerate() {
            let (id, encoded) = item
                .split_once(':')
                .ok_or_else(|| SealError(format!("key {} is not `id:base64key`", n + 1)))?;
            let id = id.trim();
            let valid_id = !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_id {
                return Err(SealError(format!(
                    "key {} has an empty or unusable id (letters, digits, - and _)",
                    n + 1
                )));
            }
            if keys.iter().any(|(known, _)| known == id) {
                return Err(SealError(format!("key id `{id}` appears twice")));
            }
            let bytes = STANDARD
                .decode(encoded.trim())
                .map_err(|_| SealError(format!("key `{id}` is not valid base64")))?;
            if bytes.len() != 32 {
                return Err(SealError(format!(
                    "key `{id}` is {} bytes long; AES-256 needs exactly 32 (e.g. `openssl rand -base64 32`)",
                    bytes.len()
                )));
            }
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| SealError(format!("key `{id}` is not usable")))?;
            keys.push((id.to_owned(), LessSafeKey::new(key)));
        }
        Ok(Keyring { keys })
    }

    /// The id of the key that seals.
    pub fn primary(&self) -> &str {
        self.keys.first().map(|(id, _)| id.as_str()).unwrap_or("")
    }

    /// The stored form of `message`, sealed for its row.
    pub fn seal(&self, message: &OutgoingMessage) -> Result<serde_json::Value, SealError> {
        let (kid, key) = self
            .keys
            .first()
            .ok_or_else(|| SealError("no encryption key".into()))?;
        let mut data = serde_json::to_vec(message)
            .map_err(|e| SealError(format!("encoding the message: {e}")))?;
        let nonce_bytes: [u8; 12] = rand::random();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(message.id.as_bytes()),
            &mut data,
        )
        .map_err(|_| SealError("sealing failed".into()))?;
        let envelope = Envelope {
            sealed: Sealed {
                kid: kid.clone(),
                nonce: STANDARD.encode(nonce_bytes),
                ct: STANDARD.encode(data),
            },
        };
        serde_json::to_value(envelope).map_err(|e| SealError(format!("encoding: {e}")))
    }

    /// The key id a stored value is sealed with (`None`: stored in plain text).
    pub fn sealed_with(stored: &serde_json::Value) -> Option<String> {
        stored
            .pointer("/sealed/kid")
            .and_then(|k| k.as_str())
            .map(str::to_owned)
    }
}

/// [`open`] from the column's value: JSON text, or packed JSON (see
/// `queue::packing`). A plain message is read straight into its type (no
/// intermediate JSON tree: claims read every body); only what is not one is
/// looked at as a sealed envelope.
pub fn open_stored(
    keyring: Option<&Keyring>,
    id: Uuid,
    stored: &[u8],
) -> Result<OutgoingMessage, OpenError> {
    let json = super::packing::unpack(stored)?;
    let plain = match serde_json::from_slice::<OutgoingMessage>(&json) {
        Ok(message) => return Ok(message),
        Err(e) => e,
    };
    match serde_json::from_slice::<serde_json::Value>(&json) {
        Ok(value) if value.get("sealed").is_some() => open(keyring, id, value),
        Ok(_) => Err(SealError(format!("the stored message is not valid: {plain}")).into()),
        Err(e) => Err(SealError(format!("the stored message is not JSON: {e}")).into()),
    }
}

/// The message in row `id`'s stored value, opening it if sealed.
pub fn open(
    keyring: Option<&Keyring>,
    id: Uuid,
    stored: serde_json::Value,
) -> Result<OutgoingMessage, OpenError> {
    if stored.get("sealed").is_none() {
        return serde_json::from_value(stored)
            .map_err(|e| SealError(format!("the stored message is not valid: {e}")).into());
    }
    let envelope: Envelope = serde_json::from_value(stored)
        .map_err(|e| SealError(format!("the sealed message is malformed: {e}")))?;
    let sealed = envelope.sealed;
    let key = keyring.and_then(|k| k.keys.iter().find(|(kid, _)| *kid == sealed.kid));
    let Some((_, key)) = key else {
        return Err(OpenError::KeyNotHeld {
            kid: sealed.kid,
            keys_set: keyring.is_some(),
        });
    };
    let nonce: [u8; 12] = STANDARD
        .decode(&sealed.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| SealError("the sealed message's nonce is malformed".into()))?;
    let mut data = STANDARD
        .decode(&sealed.ct)
        .map_err(|_| SealError("the sealed message is not valid base64".into()))?;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(id.as_bytes()),
            &mut data,
        )
        .map_err(|_| {
            SealError(format!(
                "the message does not decrypt with key `{}` for this row (altered, or copied from another row)",
                sealed.kid
            ))
        })?;
    let message: OutgoingMessage = serde_json::from_slice(plain)
        .map_err(|e| SealError(format!("the decrypted message is not valid: {e}")))?;
    if message.id != id {
        return Err(SealError("the message belongs to another row".into()).into());
    }
    Ok(message)
}

#[cfg(test)]
mod tests;
