//! JSON answers shared by both listeners: a value with its status, the error shape
//! `{"error": {"code", "message"}}` every failure is answered with, and a JSON document
//! served as a download.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

pub type Body = Full<Bytes>;

/// `text`, already JSON, with `status`.
pub fn json_text(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(text.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `value` serialized, with `status`.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    json_text(status, serde_json::to_vec(value).expect("answers serialize"))
}

/// The error shape's text.
pub fn error_text(code: &str, message: &str) -> String {
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}

/// An error answer: `{"error": {"code", "message"}}` with `status`.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Body> {
    json_text(status, error_text(code, &message.into()))
}

/// `value` pretty-printed as a JSON attachment named `name`.json.
pub fn attachment(value: &impl Serialize, name: &str) -> Response<Body> {
    let text = serde_json::to_string_pretty(value).expect("answers serialize");
    let mut r = json_text(StatusCode::OK, text);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.json\"")) {
        r.headers_mut().insert(CONTENT_DISPOSITION, v);
    }
    r
}
