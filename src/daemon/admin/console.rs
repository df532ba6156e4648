//! The web console on the admin listener: the files `console/` builds to, embedded at
//! compile time (see `console/build_console.rs`). `index.html` is never cached and answers
//! every client-side route; hashed files under `/assets/` are cached for a year. Every
//! answer carries a Content-Security-Policy that allows only the console's own scripts
//! and styles and only same-origin requests: payloads it shows are untrusted. Each file is
//! gzipped once, when the console is first asked for, and sent so to browsers that take it.

use super::{AdminBody, boxed, compress};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, VARY, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Response, StatusCode};
use std::sync::LazyLock;

include!(concat!(env!("OUT_DIR"), "/console.rs"));

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Whether a `GET` of `path` is the console's rather than the API's.
pub fn owns(path: &str) -> bool {
    !(path == "/healthz" || path == "/metrics" || path == "/v1" || path.starts_with("/v1/"))
}

/// Why this binary has no console, when it has none.
pub fn missing() -> Option<&'static str> {
    MISSING
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Each of [`FILES`] gzipped, where it is [`compress::MIN_SIZE`] or more and that makes it
/// smaller.
static GZIPPED: LazyLock<Vec<Option<Bytes>>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(_, bytes)| {
            (bytes.len() >= compress::MIN_SIZE)
                .then(|| compress::gzip(bytes))
                .flatten()
        })
        .collect()
});

/// A built file's bytes as the client takes them, and whether they are gzipped.
fn file(path: &str, gzip_ok: bool) -> Option<(Bytes, bool)> {
    let i = FILES.iter().position(|(p, _)| *p == path)?;
    Some(match &GZIPPED[i] {
        Some(packed) if gzip_ok => (packed.clone(), true),
        _ => (Bytes::from_static(FILES[i].1), false),
    })
}

fn answer(status: StatusCode, content_type: &'static str, cache: &'static str, body: Bytes) -> Response<AdminBody> {
    encoded_answer(status, content_type, cache, (body, false))
}

fn encoded_answer(
    status: StatusCode,
    content_type: &'static str,
    cache: &'static str,
    (body, gzipped): (Bytes, bool),
) -> Response<AdminBody> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    if gzipped {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    // Every built file may be sent either way, so caches keep the two apart.
    if status == StatusCode::OK {
        h.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    boxed(r)
}

/// The answer to `GET path` for a path [`owns`] gives the console, gzipped for a client
/// that takes it (`gzip_ok`).
pub fn serve(path: &str, gzip_ok: bool) -> Response<AdminBody> {
    if let Some(reason) = MISSING {
        let page = format!(
            "<!doctype html><meta charset=\"utf-8\"><title>flowd: no console</title><h1>This flowd has no web console</h1><p>{}</p><p>The admin API answers as usual under <code>/v1</code>.</p>\n",
            escape(reason)
        );
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/html; charset=utf-8",
            "no-store",
            page.into(),
        );
    }
    if path.starts_with("/assets/") {
        return match file(path, gzip_ok) {
            Some(body) => encoded_answer(
                StatusCode::OK,
                content_type(path),
                "public, max-age=31536000, immutable",
                body,
            ),
            None => answer(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "no-store",
                Bytes::from_static(b"no such console asset\n"),
            ),
        };
    }
    let index = file("/index.html", gzip_ok).expect("the console build has an index.html");
    encoded_answer(StatusCode::OK, "text/html; charset=utf-8", "no-cache", index)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_api_keeps_its_paths() {
        for api in ["/healthz", "/metrics", "/v1", "/v1/executions", "/v1/session"] {
            assert!(!super::owns(api), "{api}");
        }
        for page in [
            "/",
            "/executions",
            "/executions/0193",
            "/logs",
            "/assets/index-abc.js",
            "/v1x",
        ] {
            assert!(super::owns(page), "{page}");
        }
    }
}
