//! Raw payloads of an execution, as downloadable JSON documents:
//! `GET /v1/executions/{job_id}/trigger` (the trigger's payload, the flow's input) and
//! `GET /v1/executions/{job_id}/steps/{step}/{input|config|output}` (of the last attempt
//! that has the step, or `?attempt=N`).

use super::executions::parse_job;
use super::params::Params;
use super::{Answer, ApiError, boxed};
use crate::daemon::Shared;
use crate::store::PayloadKey;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::Value;

/// `value` as a pretty-printed JSON attachment named `name`.
fn attachment(value: &Value, name: &str) -> Answer {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    let mut r = Response::new(Full::new(Bytes::from(text)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let disposition = format!("attachment; filename=\"{name}.json\"");
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(CONTENT_DISPOSITION, v);
    }
    Ok(boxed(r))
}

pub fn trigger(shared: &Shared, id: &str, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    let job_id = parse_job(id)?;
    if shared.store.execution(job_id).map_err(ApiError::internal)?.is_none() {
        return Err(ApiError::not_found(format!("no execution {job_id}")));
    }
    match shared
        .store
        .payload(PayloadKey::trigger(job_id))
        .map_err(ApiError::internal)?
    {
        Some(v) => attachment(&v, &format!("{job_id}-trigger")),
        None => Err(ApiError::not_found(format!(
            "execution {job_id} has no stored trigger payload"
        ))),
    }
}

const KINDS: &[&str] = &["input", "config", "output"];

pub fn step(shared: &Shared, id: &str, step: &str, kind: &str, query: Option<&str>) -> Answer {
    let p = Params::parse(query, &["attempt"])?;
    let attempt = p.limit("attempt", 0, 3)?;
    let job_id = parse_job(id)?;
    if !KINDS.contains(&kind) {
        return Err(ApiError::not_found(format!(
            "a step has no payload {kind:?}; it has {}",
            KINDS.join(", ")
        )));
    }
    // The detail view rebuilds inputs (they are not stored twice); take the step from it.
    let detail = crate::views::execution_detail(shared.store.as_ref(), job_id, |_| Value::Null)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no execution {job_id}")))?;
    let rows = detail["steps"].as_array().cloned().unwrap_or_default();
    let row = rows
        .iter()
        .rev()
        .filter(|s| s["name"] == step)
        .find(|s| attempt == 0 || s["attempt"].as_u64() == Some(attempt as u64));
    let Some(row) = row else {
        let which = if attempt == 0 {
            String::new()
        } else {
            format!(" in attempt {attempt}")
        };
        return Err(ApiError::not_found(format!(
            "execution {job_id} has no step \"{step}\"{which}"
        )));
    };
    let value = &row[kind];
    if value.is_null() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "step \"{step}\" of execution {job_id} (attempt {}) has no {kind}: it is {}",
                row["attempt"],
                row["status"].as_str().unwrap_or("not run")
            ),
        ));
    }
    attachment(value, &format!("{job_id}-{step}-{kind}"))
}
