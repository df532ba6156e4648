//! How a payload's bytes lie on disk: its JSON text, or above [`COMPRESS_ABOVE`] bytes
//! that text zstd-compressed when that is smaller. Reads tell the two apart by the zstd
//! frame's magic number, which no JSON text starts with, so payloads stored before
//! compression read as they are.

use crate::store::ReadError;

/// Payloads longer than this are compressed (shorter ones gain little and cost a call).
pub(super) const COMPRESS_ABOVE: usize = 512;

/// zstd's level 3 (its default): most of the gain at a fraction of the higher levels' cost.
const LEVEL: i32 = 3;

/// The first bytes of every zstd frame (RFC 8878 §3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The bytes to store for the JSON text `json`.
pub(super) fn pack(json: Vec<u8>) -> Vec<u8> {
    if json.len() <= COMPRESS_ABOVE {
        return json;
    }
    match zstd::bulk::compress(&json, LEVEL) {
        Ok(z) if z.len() < json.len() => z,
        _ => json,
    }
}

/// The JSON text of stored payload bytes, in either form.
pub(super) fn unpack(stored: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, ReadError> {
    if !stored.starts_with(&ZSTD_MAGIC) {
        return Ok(std::borrow::Cow::Borrowed(stored));
    }
    zstd::decode_all(stored)
        .map(std::borrow::Cow::Owned)
        .map_err(|e| ReadError::Corrupt {
            table: "payloads",
            detail: format!("a compressed payload does not decompress: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_payloads_stay_text_and_large_ones_shrink_and_read_back() {
        let small = br#"{"a":1}"#.to_vec();
        assert_eq!(pack(small.clone()), small);
        let large = serde_json::to_vec(&vec![serde_json::json!({"sku": "tea", "price": 4}); 100]).unwrap();
        let packed = pack(large.clone());
        assert!(packed.len() < large.len() / 4, "{} of {}", packed.len(), large.len());
        assert_eq!(unpack(&packed).unwrap().as_ref(), large.as_slice());
        // Text stored before compression existed reads as it is.
        assert_eq!(unpack(&large).unwrap().as_ref(), large.as_slice());
        assert!(unpack(&[0x28, 0xb5, 0x2f, 0xfd, 1, 2]).is_err());
    }
}
