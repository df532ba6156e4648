//! How a payload's bytes lie on disk: its JSON text, or above [`COMPRESS_ABOVE`] bytes
//! that text zstd-compressed when that is smaller. Reads tell the two apart by the zstd
//! frame's magic number, which no JSON text starts with, so payloads stored before
//! compression read as they are.
//!
//! The payloads one write makes for one execution (its trigger and step outputs, which
//! repeat each other: a `keep = true` transform's output holds its input) are stored
//! together as a bundle, compressed as one, under the kind byte [`BUNDLE`] and the first
//! of their keys: small payloads compress poorly alone and well together.

use crate::store::ReadError;

/// Payloads longer than this are compressed (shorter ones gain little and cost a call).
pub(super) const COMPRESS_ABOVE: usize = 512;

/// zstd's fast level -1: on the peer shape's ~1.1 KB bundle 1.4 µs against level 3's 3.4
/// for 362 bytes against 291, and ~4.6% more executions/s at 10 connections in paired
/// runs; the bytes per execution stay within their 1.5 KB target.
const LEVEL: i32 = -1;

/// The first bytes of every zstd frame (RFC 8878 §3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The kind byte of a bundle's key (payload kinds use 0, 1 and 3).
pub(super) const BUNDLE: u8 = 4;

/// A payload's place within its execution: (attempt, step, kind byte).
pub(super) type Place = (u32, u32, u8);

/// The first byte of a bundle: its entries as they are, or zstd-compressed.
const BUNDLE_PLAIN: u8 = 1;
const BUNDLE_ZSTD: u8 = 2;

/// The bytes of a bundle of `entries` (JSON texts, each at its place).
pub(super) fn pack_bundle(entries: &[(Place, Vec<u8>)]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(entries.iter().map(|(_, j)| j.len() + 12).sum());
    varint(&mut raw, entries.len() as u64);
    for ((attempt, step, kind), json) in entries {
        varint(&mut raw, u64::from(*attempt));
        varint(&mut raw, u64::from(*step));
        raw.push(*kind);
        varint(&mut raw, json.len() as u64);
        raw.extend_from_slice(json);
    }
    match compress(&raw) {
        Ok(z) if z.len() < raw.len() => [&[BUNDLE_ZSTD][..], &z].concat(),
        _ => [&[BUNDLE_PLAIN][..], &raw].concat(),
    }
}

/// Every entry of a stored bundle.
pub(super) fn unpack_bundle(stored: &[u8]) -> Result<Vec<(Place, Vec<u8>)>, ReadError> {
    let corrupt = |detail: String| ReadError::Corrupt {
        table: "payloads",
        detail: format!("a payload bundle {detail}"),
    };
    let raw = match stored.split_first() {
        Some((&BUNDLE_PLAIN, rest)) => std::borrow::Cow::Borrowed(rest),
        Some((&BUNDLE_ZSTD, rest)) => {
            std::borrow::Cow::Owned(zstd::decode_all(rest).map_err(|e| corrupt(format!("does not decompress: {e}")))?)
        }
        Some((b, _)) => return Err(corrupt(format!("has an unknown form {b:#04x}"))),
        None => return Err(corrupt("is empty".into())),
    };
    let mut r = &raw[..];
    let short = || corrupt("is cut short".into());
    let next = |r: &mut &[u8]| -> Result<u64, ReadError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = r.split_first().ok_or_else(short)?;
            *r = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("holds a varint longer than 64 bits".into()))
    };
    let n = next(&mut r)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let attempt = u32::try_from(next(&mut r)?).map_err(|_| corrupt("holds an attempt past 32 bits".into()))?;
        let step = u32::try_from(next(&mut r)?).map_err(|_| corrupt("holds a step past 32 bits".into()))?;
        let (&kind, rest) = r.split_first().ok_or_else(short)?;
        r = rest;
        let len = usize::try_from(next(&mut r)?).map_err(|_| short())?;
        if r.len() < len {
            return Err(short());
        }
        let (json, rest) = r.split_at(len);
        r = rest;
        out.push(((attempt, step, kind), json.to_vec()));
    }
    if !r.is_empty() {
        return Err(corrupt(format!("has {} bytes past its entries", r.len())));
    }
    Ok(out)
}

/// `data` compressed at [`LEVEL`] with this thread's compression context: making a
/// context costs more than compressing a small bundle with it.
fn compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with_borrow_mut(|c| {
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(LEVEL)?);
        }
        c.as_mut().expect("made above").compress(data)
    })
}

/// The bundle unpacked last, kept for the next read of the same stored bytes: an
/// execution's detail reads each of its payloads in turn, and they share one bundle.
#[derive(Default)]
pub(super) struct LastBundle(std::sync::Mutex<Option<(u64, usize, Entries)>>);

/// A bundle's entries, unpacked.
pub(super) type Entries = std::sync::Arc<Vec<(Place, Vec<u8>)>>;

impl LastBundle {
    /// The entries of the stored bundle `stored`, unpacked again only when it is not the
    /// one unpacked last (compared by length and hash of its stored bytes).
    pub(super) fn entries(&self, stored: &[u8]) -> Result<Entries, ReadError> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(stored);
        if let Some((h, len, entries)) = &*crate::sync::Lock::locked(&self.0)
            && *h == hash
            && *len == stored.len()
        {
            return Ok(entries.clone());
        }
        let entries = std::sync::Arc::new(unpack_bundle(stored)?);
        *crate::sync::Lock::locked(&self.0) = Some((hash, stored.len(), entries.clone()));
        Ok(entries)
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The bytes to store for the JSON text `json`.
pub(super) fn pack(json: Vec<u8>) -> Vec<u8> {
    if json.len() <= COMPRESS_ABOVE {
        return json;
    }
    match compress(&json) {
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

    #[test]
    fn a_bundle_reads_back_its_entries_and_a_damaged_one_is_a_named_error() {
        let body = br#"{"id":"ord-1","items":[{"sku":"tea","price":4}]}"#.to_vec();
        let entries: Vec<(Place, Vec<u8>)> = vec![
            ((0, 0, 0), body.clone()),
            ((1, 0, 3), [&body[..body.len() - 1], br#","n":1}"#].concat()),
            ((u32::MAX, 300, 1), b"{}".to_vec()),
        ];
        let packed = pack_bundle(&entries);
        assert_eq!(packed[0], BUNDLE_ZSTD, "repeated text compresses");
        assert!(packed.len() < entries.iter().map(|(_, j)| j.len()).sum::<usize>());
        assert_eq!(unpack_bundle(&packed).unwrap(), entries);
        let one = vec![((0, 0, 0), b"1".to_vec())];
        let plain = pack_bundle(&one);
        assert_eq!(plain[0], BUNDLE_PLAIN, "too small to gain");
        assert_eq!(unpack_bundle(&plain).unwrap(), one);
        for cut in 0..plain.len() {
            assert!(unpack_bundle(&plain[..cut]).is_err(), "{cut}");
        }
        for bad in [&[9u8, 0][..], &[BUNDLE_ZSTD, 1, 2, 3][..], &[BUNDLE_PLAIN, 0, 0][..]] {
            let err = unpack_bundle(bad).unwrap_err();
            assert!(
                matches!(err, ReadError::Corrupt { table: "payloads", .. }),
                "{bad:?}: {err:?}"
            );
        }
    }
}
