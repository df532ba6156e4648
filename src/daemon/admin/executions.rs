//! `GET /v1/executions` (newest first, filtered, cursor-paginated) and
//! `GET /v1/executions/{job_id}` (the execution in full).

use super::params::Params;
use super::{Answer, ApiError, ok};
use crate::daemon::Shared;
use crate::store::{JobId, ListQuery};
use serde_json::{Value, json};

const LIST_PARAMS: &[&str] = &[
    "status",
    "flow",
    "project",
    "trigger_kind",
    "job_id",
    "from",
    "to",
    "preset",
    "limit",
    "cursor",
];

/// A row of the list: the stored execution with its duration in seconds.
fn row(e: &crate::store::Execution) -> Value {
    let mut v = serde_json::to_value(e).expect("serializes");
    v["duration"] = json!(crate::views::duration(e));
    v
}

pub fn list(shared: &Shared, query: Option<&str>) -> Answer {
    let p = Params::parse(query, LIST_PARAMS)?;
    let limit = p.limit("limit", 50, 1000)?;
    let (from, to) = p.time_range(shared.config.server.timezone)?;
    let q = ListQuery {
        flow: p.string("flow")?,
        project: p.string("project")?,
        statuses: p.statuses("status")?,
        trigger_kind: p.string("trigger_kind")?,
        from,
        to,
        // The cursor is the last job id of the previous page: job ids grow with time, so
        // executions created meanwhile never shift a later page.
        before: p.job_id("cursor")?,
        limit,
    };
    let rows = match p.job_id("job_id")? {
        Some(id) => one(shared, id, &q)?,
        None => shared.store.list(&q).map_err(ApiError::internal)?,
    };
    let next = (rows.len() == limit).then(|| rows.last().map(|e| e.job_id.to_string()));
    ok(&json!({
        "executions": rows.iter().map(row).collect::<Vec<_>>(),
        "next_cursor": next.flatten(),
    }))
}

/// The execution `id` if it passes the other filters of `q`.
fn one(shared: &Shared, id: JobId, q: &ListQuery) -> Result<Vec<crate::store::Execution>, ApiError> {
    let Some(e) = shared.store.execution(id).map_err(ApiError::internal)? else {
        return Ok(Vec::new());
    };
    let keep = q.keeps(&e)
        && q.from.is_none_or(|t| e.created_at >= t)
        && q.to.is_none_or(|t| e.created_at <= t)
        && q.before.is_none_or(|b| e.job_id < b);
    Ok(if keep { vec![e] } else { Vec::new() })
}

pub fn detail(shared: &Shared, id: &str, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    let Ok(job_id) = id.parse::<JobId>() else {
        return Err(ApiError::not_found(format!("{id:?} is not a job id (a UUID)")));
    };
    let flows = shared.flows();
    let detail = crate::views::execution_detail(shared.store.as_ref(), job_id, |e| {
        let flow = flows
            .by_name
            .get(&e.flow)
            .map(|f| f.as_ref())
            .ok_or_else(|| format!("flow \"{}\" is no longer loaded by the daemon", e.flow));
        crate::views::retry(flow, e)
    })
    .map_err(ApiError::internal)?;
    match detail {
        Some(d) => ok(&d),
        None => Err(ApiError::not_found(format!("no execution {job_id}"))),
    }
}
