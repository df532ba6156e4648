//! `GET /v1/flows` with each flow's active state, `POST /v1/flows/{name}/activate` and
//! `/deactivate` (stored, survive restarts), `POST /v1/flows/{name}/run` (a manual run),
//! and `POST /v1/reload` (the config, all or nothing).

use super::params::Params;
use super::{Answer, ApiError, ok};
use crate::daemon::{RunError, Shared};
use hyper::StatusCode;
use hyper::header::{HeaderValue, RETRY_AFTER};
use serde_json::{Value, json};

pub fn list(shared: &Shared, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    let flows = shared.flows();
    let mut rows: Vec<_> = flows.by_name.values().collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|f| {
            json!({
                "name": f.name,
                "project": f.project,
                "version": f.version,
                "trigger_kind": f.trigger.kind.name(),
                "active": shared.is_active(&f.name),
                "steps": f.steps.len(),
            })
        })
        .collect();
    ok(&json!({ "flows": rows }))
}

pub fn run_error(e: RunError) -> ApiError {
    match e {
        RunError::UnknownFlow(_) => ApiError::not_found(e.to_string()),
        RunError::Inactive(ref f) => ApiError::new(
            StatusCode::CONFLICT,
            "flow_inactive",
            format!("flow \"{f}\" is inactive; activate it first (POST /v1/flows/{f}/activate)"),
        ),
        RunError::NotScheduled(_) => ApiError::new(StatusCode::CONFLICT, "not_scheduled", e.to_string()),
        RunError::NotManual { .. } => ApiError::new(StatusCode::CONFLICT, "not_manual", e.to_string()),
        RunError::QueueFull { .. } => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", e.to_string()),
        RunError::Dropped(_) => ApiError::new(StatusCode::CONFLICT, "dropped", e.to_string()),
        RunError::TooLarge(_) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", e.to_string()),
        RunError::TriggerFailed(_) => ApiError::new(StatusCode::CONFLICT, "trigger_failed", e.to_string()),
        RunError::Store(e) => ApiError::store(e),
    }
}

pub async fn set_active(shared: &Shared, name: &str, active: bool, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    shared.set_active(name, active).await.map_err(run_error)?;
    ok(&json!({ "name": name, "active": active }))
}

pub async fn run(shared: &Shared, name: &str, body: Value, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    started(shared.run_now(name, body).await)
}

/// `202 {"job_id"}`, or why the execution did not start (429 with `Retry-After` when the
/// flow's queue is full).
pub fn started(result: Result<crate::store::JobId, RunError>) -> Answer {
    match result {
        Ok(job) => Ok(super::boxed(super::json_response(
            StatusCode::ACCEPTED,
            &json!({ "job_id": job.to_string() }),
        ))),
        Err(RunError::QueueFull { flow, retry_after }) => {
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "queue_full",
                format!("flow \"{flow}\" has a full queue; try again in {retry_after}s"),
            )
            .into_response();
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after));
            Ok(r)
        }
        Err(e) => Err(run_error(e)),
    }
}

/// `POST /v1/reload`: re-reads the daemon config and every flow, all or nothing; a bad
/// config keeps the running one and answers 422 with every error. Once it succeeded,
/// every other daemon sharing the store reloads its own files too.
pub async fn reload(shared: &std::sync::Arc<Shared>, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    match shared.reload_everywhere().await {
        Ok(Ok(n)) => {
            tracing::info!(flows = n, "reloaded the config (admin API)");
            ok(&json!({ "flows": n }))
        }
        Ok(Err(errors)) => {
            for e in &errors.0 {
                tracing::error!("{e}");
            }
            let list: Vec<Value> = errors
                .0
                .iter()
                .map(|e| json!({ "location": e.location.as_ref().map(|l| l.to_string()), "message": e.message }))
                .collect();
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_config",
                format!(
                    "the config has {} error{}; the running config stays",
                    list.len(),
                    if list.len() == 1 { "" } else { "s" }
                ),
            )
            .with("errors", Value::Array(list)))
        }
        Err(e) => Err(ApiError::conflict("reload_failed", format!("{e:#}"))),
    }
}
