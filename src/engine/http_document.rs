//! The document an HTTP request becomes: `{"kind": "http", "method", "path", "query",
//! "headers", "body"}`, the payload of a webhook flow without a trigger connector and
//! the document the bundled `reshape` connector starts from (it includes this file), so
//! both read a request the same way and keep all of it:
//! - a header sent on several lines is one value, its lines joined with `, ` (RFC 9110
//!   §5.3; `cookie` with `; `, RFC 6265);
//! - a query key given once is a string, given more than once an array of its values in
//!   order;
//! - the body is `null` when empty, JSON when it parses, else text when it is UTF-8, else
//!   base64 (RFC 4648, padded) with `"body_encoding": "base64"` beside it.
//!
//! This file uses nothing but `serde_json` and `form_urlencoded`, which both sides have.

use serde_json::{Map, Value};

/// The key that says how `body` is encoded; present only for a base64 body.
pub const BODY_ENCODING: &str = "body_encoding";

/// The document of one request. `headers` are (lower-case name, value) in arrival order.
pub fn document(method: &str, path: &str, query: &str, headers: &[(String, String)], body: &[u8]) -> Value {
    let mut doc = Map::new();
    doc.insert("kind".into(), "http".into());
    doc.insert("method".into(), method.into());
    doc.insert("path".into(), path.into());
    doc.insert("query".into(), Value::Object(query_map(query)));
    doc.insert("headers".into(), Value::Object(header_map(headers)));
    let (body, base64) = body_value(body);
    doc.insert("body".into(), body);
    if base64 {
        doc.insert(BODY_ENCODING.into(), "base64".into());
    }
    Value::Object(doc)
}

/// Each query key with its value, or its values in order when it is repeated.
pub fn query_map(query: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let v = Value::String(v.into_owned());
        match out.get_mut(k.as_ref()) {
            None => {
                out.insert(k.into_owned(), v);
            }
            Some(Value::Array(values)) => values.push(v),
            Some(first) => {
                let first = first.take();
                out.insert(k.into_owned(), Value::Array(vec![first, v]));
            }
        }
    }
    out
}

/// Each header with its value, a repeated one's lines joined as RFC 9110 allows.
pub fn header_map(headers: &[(String, String)]) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for (k, v) in headers {
        match out.get_mut(k) {
            Some(Value::String(joined)) => {
                joined.push_str(if k == "cookie" { "; " } else { ", " });
                joined.push_str(v);
            }
            _ => {
                out.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    out
}

/// The body as JSON, text or base64; true when it is base64.
pub fn body_value(body: &[u8]) -> (Value, bool) {
    if body.is_empty() {
        return (Value::Null, false);
    }
    match std::str::from_utf8(body) {
        Ok(text) => (
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
            false,
        ),
        Err(_) => (Value::String(base64(body)), true),
    }
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let at = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (at(0) << 16) | (at(1) << 8) | at(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_pads_as_rfc_4648_says() {
        for (bytes, text) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
            (&[0xff, 0xfe, 0x00], "//4A"),
        ] {
            assert_eq!(base64(bytes), text);
        }
    }

    #[test]
    fn repeated_keys_and_headers_keep_every_value() {
        let q = query_map("a=1&b=2&a=3&a=4");
        assert_eq!(Value::Object(q), json!({ "a": ["1", "3", "4"], "b": "2" }));
        let h: Vec<(String, String)> = [("x-tag", "one"), ("cookie", "a=1"), ("x-tag", "two"), ("cookie", "b=2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            Value::Object(header_map(&h)),
            json!({ "x-tag": "one, two", "cookie": "a=1; b=2" })
        );
    }

    #[test]
    fn a_body_is_json_text_or_marked_base64() {
        assert_eq!(body_value(b""), (Value::Null, false));
        assert_eq!(body_value(br#"{"a":1}"#), (json!({ "a": 1 }), false));
        assert_eq!(body_value(b"plain"), (json!("plain"), false));
        let doc = document("POST", "/p", "", &[], &[0x00, 0xff, 0x10]);
        assert_eq!(doc["body"], "AP8Q");
        assert_eq!(doc[BODY_ENCODING], "base64");
        assert!(document("POST", "/p", "", &[], b"x").get(BODY_ENCODING).is_none());
    }
}
