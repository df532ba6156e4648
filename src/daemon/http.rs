//! The webhook listener: each `http` flow's path on the trigger listener. A request is
//! checked (path, method, body size, HMAC signature), handed to the flow's trigger,
//! stored durably and only then answered: `202 {"job_id"}`, or, for a flow with a
//! `respond` step, held open until that step answers (`504` with the job id after the
//! respond timeout; the execution goes on).

use super::Shared;
use crate::config::{Flow, Signature, TriggerKind};
use crate::engine::Admission;
use crate::plugin::TriggerEvent;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

pub type Body = Full<Bytes>;

pub fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Body> {
    json_response(status, &json!({ "error": { "code": code, "message": message.into() } }))
}

/// Answers one webhook request.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    let flows = shared.flows();
    let Some(flow) = flows.by_path.get(&path).cloned() else {
        return error(StatusCode::NOT_FOUND, "not_found", format!("no flow listens on {path}"));
    };
    if !shared.is_active(&flow.name) {
        return error(
            StatusCode::CONFLICT,
            "flow_inactive",
            format!("flow \"{}\" is inactive", flow.name),
        );
    }
    let TriggerKind::Http {
        method: wanted,
        signature,
        respond_timeout,
        ..
    } = &flow.trigger.kind
    else {
        unreachable!("only http flows are routed")
    };
    if &method != wanted {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} takes {wanted}, not {method}"),
        );
        r.headers_mut().insert(
            ALLOW,
            HeaderValue::from_str(wanted).expect("a method is a header value"),
        );
        return r;
    }
    if shared.stopping.is_cancelled() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "flowd is shutting down",
        );
    }
    let max = shared.config.server.max_body;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is over the {max}-byte limit"),
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
    let query = req.uri().query().unwrap_or("").to_string();
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
        Err(e) => return error(e.status(), e.code(), e.to_string()),
    };
    if let Some(sig) = signature
        && let Err(why) = verify(sig, &headers, &body)
    {
        return error(StatusCode::UNAUTHORIZED, "bad_signature", why);
    }
    let event = TriggerEvent::Http {
        method,
        path,
        query,
        headers,
        body: body.to_vec(),
    };
    let respond_timeout = respond_timeout.unwrap_or(shared.config.server.respond_timeout);
    accept(&shared, flow, event, respond_timeout).await
}

async fn accept(
    shared: &Shared,
    flow: Arc<Flow>,
    event: TriggerEvent,
    respond_timeout: std::time::Duration,
) -> Response<Body> {
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
            return r;
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
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store",
                format!("the request could not be stored: {e}"),
            );
        }
    };
    let accepted = match admission {
        Admission::Dropped(_) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            return r;
        }
        Admission::Failed(r) => {
            let why = r
                .steps
                .first()
                .and_then(|s| s.note.clone())
                .unwrap_or_else(|| "the trigger failed".into());
            return json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({ "error": { "code": "trigger_failed", "message": why }, "job_id": r.job_id }),
            );
        }
        Admission::Accepted(a) => a,
    };
    let job = accepted.job_id.to_string();
    if !flow.has_respond_step() {
        shared.dispatcher.submit(reservation, *accepted);
        return json_response(StatusCode::ACCEPTED, &json!({ "job_id": job }));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    accepted.respond_to(tx);
    shared.dispatcher.submit(reservation, *accepted);
    match tokio::time::timeout(respond_timeout, rx).await {
        Ok(Ok(out)) => respond(&out, &job),
        Ok(Err(_)) => json_response(
            StatusCode::BAD_GATEWAY,
            &json!({ "error": { "code": "no_response", "message": "the execution ended before its respond step ran" }, "job_id": job }),
        ),
        Err(_) => json_response(
            StatusCode::GATEWAY_TIMEOUT,
            &json!({ "error": { "code": "respond_timeout", "message": format!("no response within {}", crate::config::units::format_duration(respond_timeout)) }, "job_id": job }),
        ),
    }
}

/// The HTTP response a `respond` step's output describes.
fn respond(out: &Value, job: &str) -> Response<Body> {
    let status = out["status"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let (bytes, default_type) = match &out["body"] {
        Value::Null => (Bytes::new(), None),
        Value::String(s) => (Bytes::from(s.clone()), Some("text/plain; charset=utf-8")),
        other => (Bytes::from(other.to_string()), Some("application/json")),
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
