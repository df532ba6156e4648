//! The web console on the admin listener: the files `console/` builds to, embedded at
//! compile time (see `console/build_console.rs`). `index.html` is never cached and answers
//! every client-side route; hashed files under `/assets/` are cached for a year. Every
//! answer carries a Content-Security-Policy that allows only the console's own scripts
//! and styles and only same-origin requests: payloads it shows are untrusted.

use super::{AdminBody, boxed};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS};
use hyper::{Response, StatusCode};

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

fn file(path: &str) -> Option<&'static [u8]> {
    FILES.iter().find(|(p, _)| *p == path).map(|(_, bytes)| *bytes)
}

fn answer(status: StatusCode, content_type: &'static str, cache: &'static str, body: Bytes) -> Response<AdminBody> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    boxed(r)
}

/// The answer to `GET path` for a path [`owns`] gives the console.
pub fn serve(path: &str) -> Response<AdminBody> {
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
        return match file(path) {
            Some(bytes) => answer(
                StatusCode::OK,
                content_type(path),
                "public, max-age=31536000, immutable",
                Bytes::from_static(bytes),
            ),
            None => answer(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "no-store",
                Bytes::from_static(b"no such console asset\n"),
            ),
        };
    }
    let index = file("/index.html").expect("the console build has an index.html");
    answer(
        StatusCode::OK,
        "text/html; charset=utf-8",
        "no-cache",
        Bytes::from_static(index),
    )
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
