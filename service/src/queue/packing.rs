//! The stored form of a message kept in plain text (no
//! `MAILBRIDGE_ENCRYPTION_KEYS`): its JSON compressed with LZ4, by the
//! request's task before the store's writer sees it. A Keycloak email's
//! 7 KB of JSON (the text and HTML bodies carry the same links) become
//! about 2.7 KB. On SQLite that is one page of the table instead of a page
//! and an overflow page: bodies were close to half of the pages each commit
//! wrote to the WAL, and the checkpoint copies every one of them again. On
//! PostgreSQL it stays in its row (`bodies.packed`, migration 0013) instead
//! of being compressed by the server and moved to two TOAST chunks.
//!
//! Sealed messages are not compressed: compressing before encrypting lets
//! the stored length tell something about the content (the attack class of
//! CRIME and BREACH), and ciphertext does not compress afterwards.
//!
//! Packed form: one zero byte (JSON text never starts with one), the JSON's
//! length as four bytes little-endian, then the LZ4 block. Rows written
//! before, as JSON text, are read as they are.

use std::borrow::Cow;

use super::sealing::SealError;

/// The first byte of a packed value.
const PACKED: u8 = 0;
/// The largest JSON a packed value may unpack to: far above the largest
/// request the API accepts, so a damaged length cannot make a reader
/// allocate gigabytes.
const MAX_UNPACKED: usize = 64 << 20;

/// The stored body of a new row.
#[derive(Debug)]
pub(crate) enum Stored {
    /// JSON text: plain, or the sealed envelope.
    Text(String),
    /// Packed plain JSON.
    Packed(Vec<u8>),
}

impl Stored {
    /// The value when it is text.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Stored::Text(text) => Some(text),
            Stored::Packed(_) => None,
        }
    }

    /// The value when it is packed.
    pub(crate) fn packed(&self) -> Option<&[u8]> {
        match self {
            Stored::Text(_) => None,
            Stored::Packed(packed) => Some(packed),
        }
    }
}

/// `json` packed, written once into a buffer of the worst case's size; an
/// error for JSON larger than any reader would unpack.
pub(crate) fn pack(json: &[u8]) -> Result<Vec<u8>, SealError> {
    let too_large = || {
        SealError(format!(
            "the message is too large to store ({} bytes)",
            json.len()
        ))
    };
    if json.len() > MAX_UNPACKED {
        return Err(too_large());
    }
    let length = u32::try_from(json.len()).map_err(|_| too_large())?;
    let mut packed = vec![0; 5 + lz4_flex::block::get_maximum_output_size(json.len())];
    packed[0] = PACKED;
    packed[1..5].copy_from_slice(&length.to_le_bytes());
    let written = lz4_flex::block::compress_into(json, &mut packed[5..])
        .map_err(|e| SealError(format!("compressing the message: {e}")))?;
    packed.truncate(5 + written);
    Ok(packed)
}

/// The JSON text of a stored value: unpacked if packed, else as it is.
pub(crate) fn unpack(stored: &[u8]) -> Result<Cow<'_, [u8]>, SealError> {
    let Some((&PACKED, rest)) = stored.split_first() else {
        return Ok(Cow::Borrowed(stored));
    };
    let damaged = |why: &str| SealError(format!("the stored message is damaged: {why}"));
    let (length, block) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| damaged("too short"))?;
    let length = u32::from_le_bytes(*length) as usize;
    if length > MAX_UNPACKED {
        return Err(damaged("its length is out of range"));
    }
    let json = lz4_flex::block::decompress(block, length).map_err(|e| damaged(&e.to_string()))?;
    if json.len() != length {
        return Err(damaged("its length does not match"));
    }
    Ok(Cow::Owned(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_json_comes_back_and_text_is_read_as_it_is() {
        let json = br#"{"subject":"Reset","text":"https://sso.example.com/x?key=abc https://sso.example.com/x?key=abc"}"#;
        let packed = pack(json).unwrap();
        assert_eq!(packed[0], PACKED);
        assert_eq!(unpack(&packed).unwrap().as_ref(), json);
        assert!(matches!(unpack(json).unwrap(), Cow::Borrowed(text) if text == json));
        assert_eq!(unpack(b"").unwrap().as_ref(), b"");
    }

    #[test]
    fn a_damaged_value_is_an_error_not_a_panic_or_a_huge_allocation() {
        let packed =
            pack(&br#"{"a":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}"#.repeat(20)).unwrap();
        for cut in 0..packed.len() {
            let _ = unpack(&packed[..cut]);
        }
        let mut huge = packed.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unpack(&huge).unwrap_err().0.contains("out of range"));
        let mut short = packed.clone();
        let length = u32::from_le_bytes(short[1..5].try_into().unwrap());
        short[1..5].copy_from_slice(&(length + 1).to_le_bytes());
        assert!(unpack(&short).is_err());
        assert!(unpack(&[PACKED, 1]).unwrap_err().0.contains("too short"));
        // Random blocks behind a plausible length: errors or JSON of that
        // length, never a panic.
        for _ in 0..20_000 {
            let mut bytes: Vec<u8> = (0..rand::random_range(5..64))
                .map(|_| rand::random())
                .collect();
            bytes[0] = PACKED;
            bytes[1..5].copy_from_slice(&rand::random_range(0u32..4096).to_le_bytes());
            if let Ok(json) = unpack(&bytes) {
                assert_eq!(
                    json.len(),
                    u32::from_le_bytes(bytes[1..5].try_into().unwrap()) as usize
                );
            }
        }
    }
}
