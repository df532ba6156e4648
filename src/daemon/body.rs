//! Reading a request body under both listeners' bounds: at most a number of bytes, and
//! all of it within `server.body_read_timeout`, so a client that stops sending mid-body
//! is answered `408` instead of holding its connection forever.

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
