//! `GET /v1/executions` (newest first, filtered, cursor-paginated),
//! `GET /v1/executions/{job_id}` (the execution in full), and its manual retry and
//! resume (`POST …/retry`, `POST …/resume`).

use super::params::{EXECUTION_FILTERS, Params};
use super::{Answer, ApiError, ok};
use crate::daemon::{ContinueRequestError, Shared};
use crate::engine::RetryFrom;
use crate::store::{JobId, ListQuery};
use hyper::StatusCode;
use serde_json::{Value, json};

/// The list's parameters: the filters and its page.
fn list_params() -> Vec<&'static str> {
    [EXECUTION_FILTERS, &["limit", "cursor"]].concat()
}

pub async fn list(shared: &Shared, query: Option<&str>) -> Answer {
    let p = Params::parse(query, &list_params())?;
    let limit = p.limit("limit", 50, 1000)?;
    let q = ListQuery {
        // The cursor is the last job id of the previous page: job ids grow with time, so
        // executions created meanwhile never shift a later page.
        before: p.job_id("cursor")?,
        limit,
        ..p.execution_filter(shared.config.server.timezone)?
    };
    let rows = match p.job_id("job_id")? {
        Some(id) => one(shared, id, &q).await?,
        None => shared.store.list(&q).await.map_err(ApiError::store)?,
    };
    ok(&crate::detail::execution_page(&rows, limit))
}

/// The execution `id` if it passes the other filters of `q`.
async fn one(shared: &Shared, id: JobId, q: &ListQuery) -> Result<Vec<crate::store::Execution>, ApiError> {
    let Some(e) = shared.store.execution(id).await.map_err(ApiError::store)? else {
        return Ok(Vec::new());
    };
    let keep = q.keeps(&e)
        && q.from.is_none_or(|t| e.created_at >= t)
        && q.to.is_none_or(|t| e.created_at <= t)
        && q.before.is_none_or(|b| e.job_id < b);
    Ok(if keep { vec![e] } else { Vec::new() })
}

pub async fn detail(shared: &Shared, id: &str, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    let job_id = parse_job(id)?;
    let flows = shared.flows();
    let detail = crate::detail::execution_detail(shared.store.as_ref(), job_id, |e| {
        let flow = flows
            .by_name
            .get(&e.flow)
            .map(|f| f.as_ref())
            .ok_or_else(|| format!("flow \"{}\" is no longer loaded by the daemon", e.flow));
        let loaded = flow.is_ok();
        let mut retry = crate::detail::retry(flow, e);
        // A retry request checks this before the rest (see `Shared::claim`).
        if loaded && !shared.is_active(&e.flow) {
            retry.refuse(
                "flow_inactive",
                ContinueRequestError::Inactive(e.flow.clone()).to_string(),
            );
        }
        Some(retry)
    })
    .await
    .map_err(ApiError::store)?;
    match detail {
        Some(d) => ok(&d),
        None => Err(ApiError::not_found(format!("no execution {job_id}"))),
    }
}

/// A retry or resume that was not accepted, as the API answers it: 409s say what to do.
fn continue_error(e: ContinueRequestError) -> ApiError {
    use crate::engine::ContinueError as C;
    match e {
        ContinueRequestError::NotFound(_) => ApiError::not_found(e.to_string()),
        ContinueRequestError::FlowGone { .. } => ApiError::conflict("flow_not_found", e.to_string()),
        ContinueRequestError::Inactive(_) => ApiError::conflict("flow_inactive", e.to_string()),
        ContinueRequestError::Busy(_) => ApiError::conflict("busy", e.to_string()),
        ContinueRequestError::Continue(C::Refused(r)) => ApiError::conflict(r.code(), r.to_string()),
        ContinueRequestError::Continue(C::NotPaused(..)) => ApiError::conflict(
            "not_paused",
            format!("{e}; only an execution paused until resumed can be resumed"),
        ),
        ContinueRequestError::Continue(C::NotWaiting(..)) => ApiError::conflict("busy", e.to_string()),
        ContinueRequestError::Continue(C::NotFound(_)) => ApiError::not_found(e.to_string()),
        ContinueRequestError::Continue(e) => ApiError::internal(e),
        ContinueRequestError::Store(e) => ApiError::store(e),
        ContinueRequestError::Claim { .. } => ApiError::internal(e),
    }
}

fn accepted(body: Value) -> Answer {
    Ok(super::boxed(super::json_response(StatusCode::ACCEPTED, &body)))
}

/// `POST /v1/executions/{job_id}/retry?from=failed_step|start`: a new attempt, stored
/// before the answer and run through the flow's queue.
pub async fn retry(shared: &Shared, id: &str, query: Option<&str>) -> Answer {
    let p = Params::parse(query, &["from"])?;
    let from = match p.string("from")?.as_deref() {
        None | Some("failed_step") => RetryFrom::FailedStep,
        Some("start") => RetryFrom::Start,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_parameter",
                format!(
                    "query parameter `from`: {other:?} is not a place to retry from; expected failed_step or start"
                ),
            ));
        }
    };
    let job_id = parse_job(id)?;
    let attempt = shared.retry(job_id, from).await.map_err(continue_error)?;
    accepted(json!({ "job_id": job_id.to_string(), "attempt": attempt }))
}

/// `POST /v1/executions/{job_id}/resume`: ends a pause that waits until resumed.
pub async fn resume(shared: &Shared, id: &str, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    let job_id = parse_job(id)?;
    shared.resume(job_id).await.map_err(continue_error)?;
    accepted(json!({ "job_id": job_id.to_string() }))
}

/// A `{job_id}` of a path; not a UUID: no such execution (404).
pub(super) fn parse_job(id: &str) -> Result<JobId, ApiError> {
    id.parse::<JobId>()
        .map_err(|_| ApiError::not_found(format!("{id:?} is not a job id (a UUID)")))
}
