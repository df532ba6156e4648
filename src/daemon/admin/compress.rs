//! gzip for the admin listener's answers: whole answers (JSON documents, console pages)
//! of [`MIN_SIZE`] or more go out compressed to a client whose `Accept-Encoding` takes
//! gzip (RFC 9110 §12.5.3), with `Vary: Accept-Encoding` either way. Streams (downloads,
//! the live tail) go out as they are: compressing them would hold back what they send.

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use hyper::HeaderMap;
use hyper::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, HeaderValue, VARY};
use std::io::Write as _;

/// Smaller answers fit a packet or two as they are: the gzip header and the work cost
/// more than they save.
pub const MIN_SIZE: usize = 1024;

/// Answers past this are compressed on the blocking pool rather than the request's task.
const INLINE_MAX: usize = 64 << 10;

/// Whether a request's `Accept-Encoding` headers take gzip: named (or as `x-gzip`) with a
/// nonzero weight, or through `*` when not named. Items that do not parse are ignored;
/// no header at all means the client did not ask for any coding.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut named = None;
    let mut any = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let Some(weight) = weight(parts) else { continue };
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                named = Some(named.map_or(weight, |w: f32| w.max(weight)));
            } else if coding == "*" {
                any = Some(weight);
            }
        }
    }
    named.or(any).is_some_and(|w| w > 0.0)
}

/// An item's weight (`q=`, 1 without one); `None` when its parameters do not parse.
fn weight<'a>(params: impl Iterator<Item = &'a str>) -> Option<f32> {
    let mut q = 1.0;
    for p in params {
        let (name, value) = p.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            let value = value.trim();
            // RFC 9110 §12.4.2: 0 to 1, at most three decimals.
            let ok = value.len() <= 5
                && value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                && value.bytes().filter(|b| *b == b'.').count() <= 1;
            q = value.parse::<f32>().ok().filter(|q| ok && (0.0..=1.0).contains(q))?;
        }
    }
    Some(q)
}

/// `data` gzipped, or `None` when that is not smaller.
pub fn gzip(data: &[u8]) -> Option<Bytes> {
    let mut e = GzEncoder::new(Vec::with_capacity(data.len() / 3), Compression::default());
    e.write_all(data).expect("writing to a Vec");
    let out = e.finish().expect("writing to a Vec");
    (out.len() < data.len()).then(|| out.into())
}

/// `body` as the answer's body for a client that takes gzip or not (`gzip_ok`):
/// compressed when it is large enough and that makes it smaller, the headers set to match.
/// An answer that already says how it is encoded (or that it varies by it) is left alone.
pub async fn encode(headers: &mut HeaderMap, body: Bytes, gzip_ok: bool) -> Bytes {
    let decided = headers.contains_key(CONTENT_ENCODING)
        || headers.get_all(VARY).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("accept-encoding"))
        });
    if body.len() < MIN_SIZE || decided {
        return body;
    }
    headers.append(VARY, HeaderValue::from_static("accept-encoding"));
    if !gzip_ok {
        return body;
    }
    let packed = if body.len() <= INLINE_MAX {
        gzip(&body)
    } else {
        let data = body.clone();
        tokio::task::spawn_blocking(move || gzip(&data)).await.ok().flatten()
    };
    match packed {
        Some(packed) => {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            headers.remove(CONTENT_LENGTH);
            packed
        }
        None => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn takes(values: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        accepts_gzip(&h)
    }

    #[test]
    fn accept_encoding_is_read_as_rfc_9110_says() {
        assert!(!takes(&[]));
        assert!(takes(&["gzip"]));
        assert!(takes(&["GZIP"]));
        assert!(takes(&["x-gzip"]));
        assert!(takes(&["gzip, deflate, br, zstd"]));
        assert!(takes(&["br;q=1.0, gzip;q=0.8, *;q=0.1"]));
        assert!(takes(&["*"]));
        assert!(takes(&["br", "gzip"]));
        assert!(takes(&["gzip ; q=0.5"]));
        assert!(!takes(&["gzip;q=0"]));
        assert!(!takes(&["gzip;q=0.000"]));
        assert!(!takes(&["*, gzip;q=0"]));
        assert!(!takes(&["*;q=0"]));
        assert!(!takes(&["br, deflate"]));
        assert!(!takes(&["identity"]));
        assert!(!takes(&[""]));
        // A weight out of range or malformed drops its item only.
        assert!(!takes(&["gzip;q=2"]));
        assert!(!takes(&["gzip;q=abc"]));
        assert!(!takes(&["gzip;q=0.12345"]));
        assert!(!takes(&["gzip;q"]));
        assert!(takes(&["gzip;q=abc, *"]));
        // Named, the best weight counts.
        assert!(takes(&["gzip;q=0, gzip;q=0.5"]));
    }

    #[test]
    fn only_what_shrinks_is_compressed() {
        let text = "{\"executions\":[]}".repeat(100);
        let packed = gzip(text.as_bytes()).unwrap();
        let mut back = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&packed[..]), &mut back).unwrap();
        assert_eq!(back, text);
        // xorshift64: bytes without a pattern for deflate to find.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert!(gzip(&noise).is_none());
    }
}
