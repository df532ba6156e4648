//! Reading a request body under both listeners' bounds: at most a number of bytes, and
//! all of it within `server.body_read_timeout`, so a client that stops sending mid-body
//! is answered `408` instead of holding its connection forever; and whether a body is
//! JSON the flow's payload will hold as JSON.

use crate::config::units::{format_bytes, format_duration};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Incoming;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is over the {} limit", format_bytes(*.0))]
    TooLarge(u64),
    #[error("the request body did not arrive within {} (server.body_read_timeout)", format_duration(*.0))]
    TimedOut(Duration),
    #[error("reading the request body failed: {0}")]
    Broken(String),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken(_) => StatusCode::BAD_REQUEST,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge(_) => "body_too_large",
            BodyError::TimedOut(_) => "body_timeout",
            BodyError::Broken(_) => "bad_request",
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
