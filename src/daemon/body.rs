//! Reading a request body under both listeners' bounds: at most a number of bytes, and
//! all of it within `server.body_read_timeout`, so a client that stops sending mid-body
//! is answered `408` instead of holding its connection forever; the content codings a
//! body may arrive in (`gzip`, `deflate`), undone under the same byte limit; and whether
//! a body is JSON the flow's payload will hold as JSON.

use crate::config::units::{format_bytes, format_duration};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_ENCODING;
use hyper::{HeaderMap, StatusCode};
use std::io::Read;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is over the {} limit", format_bytes(*.0))]
    TooLarge(u64),
    #[error("the request body did not arrive within {} (server.body_read_timeout)", format_duration(*.0))]
    TimedOut(Duration),
    #[error("reading the request body failed: {0}")]
    Broken(String),
    #[error("the request body's Content-Encoding {0:?} is not one flowd decodes (it decodes {ACCEPTED})")]
    Unsupported(String),
    #[error("the request body has {0} content codings; flowd undoes at most {MAX_CODINGS}")]
    TooManyCodings(usize),
    #[error("the request body is not valid {}: {}", .0.name(), .1)]
    Corrupt(Coding, String),
    #[error("the request body, decoded from {}, is over the {} limit", .0.name(), format_bytes(*.1))]
    DecodedTooLarge(Coding, u64),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken(_) | BodyError::TooManyCodings(_) | BodyError::Corrupt(..) => StatusCode::BAD_REQUEST,
            BodyError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyError::DecodedTooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge(_) | BodyError::DecodedTooLarge(..) => "body_too_large",
            BodyError::TimedOut(_) => "body_timeout",
            BodyError::Broken(_) => "bad_request",
            BodyError::Unsupported(_) => "unsupported_encoding",
            BodyError::TooManyCodings(_) | BodyError::Corrupt(..) => "bad_encoding",
        }
    }
}

/// The whole body, at most `max` bytes, read within `timeout`.
pub async fn read(body: Incoming, max: u64, timeout: Duration) -> Result<Bytes, BodyError> {
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::TimedOut(timeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(BodyError::TooLarge(max)),
        Ok(Err(e)) => Err(BodyError::Broken(e.to_string())),
    }
}

/// A content coding flowd undoes (RFC 9110 §8.4.1). Both have a fixed 32 KiB window, so
/// decoding holds no more memory than its output; codings whose window the sender picks
/// (zstd, up to gigabytes) are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// Zlib-wrapped deflate, as RFC 9110 defines it, or raw deflate, as some senders send.
    Deflate,
}

impl Coding {
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }
}

/// The codings a `415` names, in the form of an `Accept-Encoding` header.
pub const ACCEPTED: &str = "gzip, deflate";

/// The most codings one body may carry; each layer is bounded by the byte limit on its
/// own, so this bounds the work one request can ask for.
const MAX_CODINGS: usize = 2;

/// The codings a request's `Content-Encoding` headers name, in the order they were
/// applied (`identity` is none).
pub fn codings(headers: &HeaderMap) -> Result<Vec<Coding>, BodyError> {
    let mut found = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let coding = if token.eq_ignore_ascii_case("identity") {
                continue;
            } else if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
                Coding::Gzip
            } else if token.eq_ignore_ascii_case("deflate") {
                Coding::Deflate
            } else {
                return Err(BodyError::Unsupported(token.chars().take(40).collect()));
            };
            found.push(coding);
        }
    }
    if found.len() > MAX_CODINGS {
        return Err(BodyError::TooManyCodings(found.len()));
    }
    Ok(found)
}

/// `body` with `codings` undone, the last applied first; every layer's output at most
/// `max` bytes. Runs off the async workers: inflating up to `max` takes milliseconds.
pub async fn decode(codings: Vec<Coding>, body: Bytes, max: u64) -> Result<Bytes, BodyError> {
    if codings.is_empty() {
        return Ok(body);
    }
    let work = move || {
        codings
            .iter()
            .rev()
            .try_fold(body, |body, &coding| decode_one(coding, &body, max))
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BodyError::Broken(format!("decoding failed: {e}")))?
}

fn decode_one(coding: Coding, body: &[u8], max: u64) -> Result<Bytes, BodyError> {
    use flate2::bufread::{DeflateDecoder, GzDecoder, ZlibDecoder};
    let corrupt = |why: String| BodyError::Corrupt(coding, why);
    let mut out = Vec::new();
    let mut rest = body;
    // Nothing encodes to nothing, whatever the coding.
    while !rest.is_empty() {
        // One byte past `max` is read, so that a body over it is told from one at it.
        let budget = (max + 1).saturating_sub(out.len() as u64);
        rest = match coding {
            Coding::Gzip => fill(GzDecoder::new(rest), budget, &mut out).map(GzDecoder::into_inner),
            Coding::Deflate if zlib_header(rest) => {
                fill(ZlibDecoder::new(rest), budget, &mut out).map(ZlibDecoder::into_inner)
            }
            Coding::Deflate => fill(DeflateDecoder::new(rest), budget, &mut out).map(DeflateDecoder::into_inner),
        }
        .map_err(|e| corrupt(e.to_string()))?;
        if out.len() as u64 > max {
            return Err(BodyError::DecodedTooLarge(coding, max));
        }
        // A gzip body may hold members one after another (RFC 1952 §2.2); anything else
        // after the end of the compressed data would be dropped unseen.
        if coding != Coding::Gzip || !rest.starts_with(&[0x1f, 0x8b]) {
            break;
        }
    }
    if !rest.is_empty() {
        let what = match rest.len() {
            1 => "1 byte follows".to_string(),
            n => format!("{n} bytes follow"),
        };
        return Err(corrupt(format!("{what} the end of the compressed data")));
    }
    Ok(out.into())
}

/// Reads at most `budget` bytes of `decoder` onto `out`, and gives the decoder back.
fn fill<R: Read>(mut decoder: R, budget: u64, out: &mut Vec<u8>) -> std::io::Result<R> {
    (&mut decoder).take(budget).read_to_end(out)?;
    Ok(decoder)
}

/// Whether `body` starts with a zlib header (RFC 1950 §2.2: deflate, and a check value
/// that makes the first two bytes a multiple of 31).
fn zlib_header(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

/// The deepest a body's arrays and objects may nest: deeper than any sender's JSON, and
/// well within the 127 levels serde_json reads (the store's reader, connectors written in
/// Rust, flowd's own clients) however far in it ends up. The payload holds the body one
/// level in, a step's input three, the admin API's execution detail six, and a step's
/// output may wrap what it is given further still.
pub const MAX_DEPTH: usize = 64;

/// Whether `body` is JSON that the payload will hold as JSON (see
/// `engine::http_document::body_value`), and can be read back once stored: every value
/// read by the same parser (numbers a double can hold, strings of UTF-8 with valid
/// escapes), nesting at most [`MAX_DEPTH`] levels, nothing built. A body that skipping
/// alone would pass but the payload could not parse would otherwise be kept as text, no
/// longer the JSON the flow was sent.
pub fn check_json(body: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let Checked = serde::de::DeserializeSeed::deserialize(Checked, &mut de)?;
    de.end()
}

/// `body` without a leading UTF-8 byte order mark: RFC 8259 §8.1 lets a JSON parser
/// ignore one, and some senders (.NET, PowerShell) write it.
pub fn without_bom(body: Bytes) -> Bytes {
    if body.starts_with(b"\xEF\xBB\xBF") {
        body.slice(3..)
    } else {
        body
    }
}

/// What a message about too deep a body starts with.
pub const TOO_DEEP: &str = "nested deeper than";

/// A JSON value read and dropped, its nesting counted down from [`MAX_DEPTH`].
struct Checked;

/// A value inside `.0` more levels may still open.
struct Within(usize);

impl<'de> serde::de::DeserializeSeed<'de> for Checked {
    type Value = Checked;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Checked, D::Error> {
        d.deserialize_any(Within(MAX_DEPTH))
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Within {
    type Value = Checked;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Checked, D::Error> {
        d.deserialize_any(self)
    }
}

impl Within {
    /// One level further in, or an error past the deepest.
    fn deeper<E: serde::de::Error>(&self) -> Result<Within, E> {
        match self.0.checked_sub(1) {
            Some(left) => Ok(Within(left)),
            None => Err(E::custom(format!("{TOO_DEEP} {MAX_DEPTH} levels"))),
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Within {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        let inner = self.deeper()?;
        while seq.next_element_seed(Within(inner.0))?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let inner = self.deeper()?;
        while map.next_key_seed(Within(inner.0))?.is_some() {
            map.next_value_seed(Within(inner.0))?;
        }
        Ok(Checked)
    }
}
