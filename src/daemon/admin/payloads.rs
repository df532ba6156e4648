//! Raw payloads of an execution, as downloadable JSON documents:
//! `GET /v1/executions/{job_id}/trigger` (the trigger's payload, the flow's input) and
//! `GET /v1/executions/{job_id}/steps/{step}/{input|config|output}` (of the last attempt
//! that has the step, or `?attempt=N`), each read by its key.

use super::executions::parse_job;
use super::params::Params;
use super::{Answer, ApiError, boxed};
use crate::daemon::Shared;
use crate::detail::{Found, StepPayload, step_payload};
use crate::store::PayloadKey;
use hyper::StatusCode;
use serde_json::Value;

fn attachment(value: &Value, name: &str) -> Answer {
    Ok(boxed(crate::daemon::respond::attachment(value, name)))
}

pub async fn trigger(shared: &Shared, id: &str, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    let job_id = parse_job(id)?;
    if shared.store.execution(job_id).await.map_err(ApiError::store)?.is_none() {
        return Err(ApiError::not_found(format!("no execution {job_id}")));
    }
    match shared
        .store
        .payload(PayloadKey::trigger(job_id))
        .await
        .map_err(ApiError::store)?
    {
        Some(v) => attachment(&v, &format!("{job_id}-trigger")),
        None => Err(ApiError::not_found(format!(
            "execution {job_id} has no stored trigger payload"
        ))),
    }
}

const KINDS: &[(&str, StepPayload)] = &[
    ("input", StepPayload::Input),
    ("config", StepPayload::Config),
    ("output", StepPayload::Output),
];

pub async fn step(shared: &Shared, id: &str, step: &str, kind: &str, query: Option<&str>) -> Answer {
    let p = Params::parse(query, &["attempt"])?;
    let attempt = p.limit("attempt", 0, 3)?;
    let job_id = parse_job(id)?;
    let Some((_, which)) = KINDS.iter().find(|(k, _)| *k == kind) else {
        let names: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
        return Err(ApiError::not_found(format!(
            "a step has no payload {kind:?}; it has {}",
            names.join(", ")
        )));
    };
    let found = step_payload(shared.store.as_ref(), job_id, step, attempt as u32, *which)
        .await
        .map_err(ApiError::store)?;
    match found {
        Found::Payload(value, _) => attachment(&value, &format!("{job_id}-{step}-{kind}")),
        Found::NoExecution => Err(ApiError::not_found(format!("no execution {job_id}"))),
        Found::NoStep => {
            let which = if attempt == 0 {
                String::new()
            } else {
                format!(" in attempt {attempt}")
            };
            Err(ApiError::not_found(format!(
                "execution {job_id} has no step \"{step}\"{which}"
            )))
        }
        Found::NoPayload(row) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "step \"{step}\" of execution {job_id} (attempt {}) has no {kind}: it is {}",
                row.attempt, row.status
            ),
        )),
    }
}
