//! The webhook listener: each `http` flow's path on the trigger listener. A request is
//! checked (path, method, body size, HMAC signature over the body as sent, its content
//! coding undone, JSON when sent as or declared JSON), handed to the flow's trigger,
//! stored durably and only then answered: `202 {"job_id"}`, or, for a flow with a
//! `respond` step, held open until that step answers (`504` with the job id after the
//! respond timeout; the execution goes on). A dropped event is answered with the flow's
//! `drop_status`. Every answer to a flow's path is counted by outcome for `/metrics`.

use super::Shared;
use super::respond::{Body, error, json};
use crate::config::{BodyKind, Flow, Signature, TriggerKind};
use crate::engine::{Admission, Reply, Responded};
use crate::plugin::TriggerEvent;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT_ENCODING, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

/// Answers one webhook request, counting its outcome per flow (`/metrics`).
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    // Flows' paths are in this form; a path that cannot be brought to it matches none.
    let normal = crate::config::webhook_path::normalize(path).unwrap_or(std::borrow::Cow::Borrowed(path));
    let Some(flow) = shared.flows().by_path.get(normal.as_ref()).cloned() else {
        return error(StatusCode::NOT_FOUND, "not_found", format!("no flow listens on {path}"));
    };
    let (outcome, response) = handle_flow(&shared, flow.clone(), req).await;
    shared.metrics.webhook_request(&flow.name, outcome);
    response
}

/// The answer of one request to `flow`, and its outcome: `accepted`, `dropped`, or the
/// error code answered.
async fn handle_flow(shared: &Shared, flow: Arc<Flow>, req: Request<Incoming>) -> (&'static str, Response<Body>) {
    let fail = |status, code: &'static str, message: String| (code, error(status, code, message));
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    if !shared.is_active(&flow.name) {
        return fail(
            StatusCode::CONFLICT,
            "flow_inactive",
            format!("flow \"{}\" is inactive", flow.name),
        );
    }
    let TriggerKind::Http {
        method: wanted,
        signature,
        respond_timeout,
        body: body_kind,
        drop_status,
        ..
    } = &flow.trigger.kind
    else {
        unreachable!("only http flows are routed")
    };
    if &method != wanted {
        let (code, mut r) = fail(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} takes {wanted}, not {method}"),
        );
        r.headers_mut().insert(
            ALLOW,
            HeaderValue::from_str(wanted).expect("a method is a header value"),
        );
        return (code, r);
    }
    if shared.stopping.is_cancelled() {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "flowd is shutting down".into(),
        );
    }
    let max = shared.config.server.max_body;
    let too_large = || {
        fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is over the {max}-byte limit (server.max_body)"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large();
    }
    let codings = match super::body::codings(req.headers()) {
        Ok(c) => c,
        Err(e) => {
            let (code, mut r) = fail(e.status(), e.code(), e.to_string());
            // RFC 9110 §15.5.16: a 415 for a content coding says which ones are taken.
            r.headers_mut()
                .insert(ACCEPT_ENCODING, HeaderValue::from_static(super::body::ACCEPTED));
            return (code, r);
        }
    };
    let query = req.uri().query().unwrap_or("").to_string();
    let sent_as_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json_type);
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match super::body::read(req.into_body(), max, shared.config.server.body_read_timeout).await {
        Ok(b) => b,
        Err(super::body::BodyError::TooLarge(_)) => return too_large(),
        Err(e) => return fail(e.status(), e.code(), e.to_string()),
    };
    if let Some(sig) = signature
        && let Err(why) = verify(sig, &headers, &body)
    {
        let (code, mut r) = fail(StatusCode::UNAUTHORIZED, "bad_signature", why);
        // RFC 9110 §11.6.1: a 401 says how to authenticate.
        if let Ok(challenge) = HeaderValue::from_str(&format!("HMAC-SHA256 header=\"{}\"", sig.header)) {
            r.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        }
        return (code, r);
    }
    let body = match super::body::decode(codings, body, max).await {
        Ok(b) => b,
        Err(e @ super::body::BodyError::DecodedTooLarge(..)) => {
            return fail(e.status(), e.code(), format!("{e} (server.max_body)"));
        }
        Err(e) => return fail(e.status(), e.code(), e.to_string()),
    };
    // Sent as JSON, or to a flow that takes JSON: it must be JSON, or nothing is recorded.
    let must_be_json = *body_kind == BodyKind::Json || (sent_as_json && !body.is_empty());
    let body = if must_be_json {
        super::body::without_bom(body)
    } else {
        body
    };
    if must_be_json && let Err(e) = super::body::check_json(&body) {
        let why = if *body_kind == BodyKind::Json {
            format!("flow \"{}\" takes a JSON body", flow.name)
        } else {
            "the body is sent as JSON (its content-type says so)".to_string()
        };
        let message = if body.is_empty() {
            format!("{why}, and the body is empty")
        } else if e.to_string().starts_with(super::body::TOO_DEEP) {
            format!("{why}, and its arrays and objects are {e}")
        } else if e.to_string().starts_with("number out of range") {
            format!("{why}, and it holds a number too large for a double: {e}")
        } else {
            format!("{why}, and it is not valid JSON: {e}")
        };
        return (
            "invalid_json",
            json(
                StatusCode::BAD_REQUEST,
                &json!({ "error": { "code": "invalid_json", "message": message, "line": e.line(), "column": e.column() } }),
            ),
        );
    }
    let event = TriggerEvent::Http {
        method,
        path,
        query,
        headers,
        body: body.to_vec(),
    };
    let respond_timeout = respond_timeout.unwrap_or(shared.config.server.respond_timeout);
    accept(shared, flow.clone(), event, respond_timeout, *drop_status).await
}

/// Whether a `Content-Type` says JSON: `application/json` or `application/…+json`.
fn is_json_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let (kind, sub) = essence.split_once('/').unwrap_or((essence, ""));
    let sub = sub.as_bytes();
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case(b"json") || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

/// Seconds a sender is asked to wait when its request could not be stored.
const STORE_RETRY_AFTER: u32 = 5;

async fn accept(
    shared: &Shared,
    flow: Arc<Flow>,
    event: TriggerEvent,
    respond_timeout: std::time::Duration,
    drop_status: u16,
) -> (&'static str, Response<Body>) {
    // A full throttle queue turns the request away before anything is stored.
    let reservation = match shared.dispatcher.reserve(&flow) {
        Ok(r) => r,
        Err(retry_after) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "queue_full",
                format!("flow \"{}\" has a full queue; try again in {retry_after}s", flow.name),
            );
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after));
            return ("queue_full", r);
        }
    };
    let executor = shared.dispatcher.executor();
    let admitted = if flow.has_respond_step() && shared.dispatcher.would_start_now(&flow) {
        executor.admit_held(&flow, event).await
    } else {
        executor.admit(&flow, event).await
    };
    let admission = match admitted {
        Ok(a) => a,
        // Nothing was stored (the database is unreachable, or refused the write): the
        // sender keeps the event and sends it again later.
        Err(e) => return not_stored(&e),
    };
    let accepted = match admission {
        Admission::Dropped(r) => return ("dropped", dropped(drop_status, &r)),
        Admission::TooLarge(r) => {
            let why = r.trigger.note.unwrap_or_default();
            return (
                "payload_too_large",
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("{why} (it is this request as JSON: headers, query and body); nothing was recorded"),
                ),
            );
        }
        Admission::Failed(r) => {
            let why = r.trigger.note.unwrap_or_else(|| "the trigger failed".into());
            return (
                "trigger_failed",
                json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &json!({ "error": { "code": "trigger_failed", "message": why }, "job_id": r.job_id }),
                ),
            );
        }
        Admission::Accepted(a) => a,
    };
    let job = accepted.job_id.to_string();
    if !flow.has_respond_step() {
        shared.dispatcher.submit(reservation, *accepted);
        return ("accepted", json(StatusCode::ACCEPTED, &json!({ "job_id": job })));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    accepted.respond_to(tx);
    shared.dispatcher.submit(reservation, *accepted);
    let r = match tokio::time::timeout(respond_timeout, rx).await {
        Ok(Ok(Reply::Responded(out))) => respond(&out, &job),
        // Its acceptance was to be written with its first durable transition, which the
        // store refused: there is no execution to show, so no job id either.
        Ok(Ok(Reply::NotRecorded(e))) => return not_stored(&e),
        Ok(Err(_)) => json(
            StatusCode::BAD_GATEWAY,
            &json!({ "error": { "code": "no_response", "message": "the execution ended before its respond step answered (a step before it, or the respond step itself, did not succeed): see the execution" }, "job_id": job }),
        ),
        Err(_) => json(
            StatusCode::GATEWAY_TIMEOUT,
            &json!({ "error": { "code": "respond_timeout", "message": format!("no response within {}", crate::config::units::format_duration(respond_timeout)) }, "job_id": job }),
        ),
    };
    ("accepted", r)
}

/// The answer to a request of which nothing could be stored: 503, to be sent again.
fn not_stored(e: &dyn std::fmt::Display) -> (&'static str, Response<Body>) {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        format!("the request could not be stored, so nothing was recorded ({e}); try again in {STORE_RETRY_AFTER}s"),
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(STORE_RETRY_AFTER));
    ("store_unavailable", r)
}

/// The answer to a dropped event: the flow's `drop_status`, with the reason (the trigger
/// connector's) and the job id its log records carry; no body for a 204 or a 205, which
/// HTTP gives none (RFC 9110 §15.3.5, §15.3.6).
fn dropped(status: u16, r: &crate::engine::ExecutionReport) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let reason = r
        .trigger
        .note
        .as_deref()
        .unwrap_or("the trigger connector dropped the event");
    if status == StatusCode::NO_CONTENT || status == StatusCode::RESET_CONTENT {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = status;
        return resp;
    }
    if status.is_success() {
        json(
            status,
            &json!({ "dropped": true, "reason": reason, "job_id": r.job_id }),
        )
    } else {
        json(
            status,
            &json!({ "error": { "code": "event_dropped", "message": format!("the event was dropped: {reason}") }, "job_id": r.job_id }),
        )
    }
}

/// The HTTP response a `respond` step's output describes; a JSON body whose text its
/// connector gave is sent as that text.
fn respond(answered: &Responded, job: &str) -> Response<Body> {
    let out = &*answered.output;
    let status = out["status"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let (bytes, default_type) = match (&out["body"], &answered.body_text) {
        (Value::Null, _) => (Bytes::new(), None),
        (Value::String(s), _) => (Bytes::from(s.clone()), Some("text/plain; charset=utf-8")),
        (_, Some(text)) => (Bytes::copy_from_slice(text.as_bytes()), Some("application/json")),
        (other, None) => (
            Bytes::from(serde_json::to_vec(other).expect("JSON values serialize")),
            Some("application/json"),
        ),
    };
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = status;
    if let Some(t) = default_type {
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(t));
    }
    if let Some(headers) = out["headers"].as_object() {
        for (k, v) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                hyper::header::HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                r.headers_mut().insert(name, value);
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(job) {
        r.headers_mut().insert("x-flowd-job-id", v);
    }
    r
}

/// Checks the HMAC-SHA256 of `body` against the signature header (hex, `sha256=` optional).
fn verify(sig: &Signature, headers: &[(String, String)], body: &[u8]) -> Result<(), String> {
    use hmac::{Hmac, Mac};
    let Some((_, value)) = headers.iter().find(|(k, _)| *k == sig.header) else {
        return Err(format!("the {} header is missing", sig.header));
    };
    let hex_text = value.trim().strip_prefix("sha256=").unwrap_or(value.trim());
    let given = hex::decode(hex_text).map_err(|_| format!("the {} header is not hex", sig.header))?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&sig.secret).expect("HMAC takes a key of any size");
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&given)
        .map_err(|_| format!("the {} signature does not match the body", sig.header))
}

#[cfg(test)]
mod tests {
    use super::is_json_type;

    #[test]
    fn json_content_types() {
        for t in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.api+json",
            "application/merge-patch+JSON",
        ] {
            assert!(is_json_type(t), "{t}");
        }
        for t in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/+json",
            "text/json",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json_type(t), "{t}");
        }
    }
}
