//! `GET /v1/logs`: log records newest first, filtered by any of their fields, a time
//! range or preset (the last 30 minutes when none is given, unless a job is named) and
//! a message substring, cursor-paginated.

use super::params::Params;
use super::{Answer, ApiError, ok};
use crate::daemon::Shared;
use crate::store::LogQuery;
use serde_json::json;
use std::time::{Duration, SystemTime};

pub const PARAMS: &[&str] = &[
    "project",
    "flow",
    "flow_version",
    "environment",
    "level",
    "levels",
    "job_id",
    "step",
    "connector",
    "action",
    "category",
    "contains",
    "from",
    "to",
    "preset",
    "limit",
    "cursor",
];

/// How far back a search without a time filter looks.
const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 60);

/// The query that `params` describe (their filters; `limit` and `cursor` for a page),
/// newest first.
pub fn query(shared: &Shared, p: &Params, limit: usize) -> Result<LogQuery, ApiError> {
    let job_id = p.job_id("job_id")?;
    let (mut from, to) = p.time_range(shared.config.server.timezone)?;
    if from.is_none() && to.is_none() && job_id.is_none() {
        from = Some(SystemTime::now() - DEFAULT_WINDOW);
    }
    Ok(LogQuery {
        job_id,
        project: p.string("project")?,
        flow: p.string("flow")?,
        flow_version: p.string("flow_version")?,
        environment: p.string("environment")?,
        step: p.string("step")?,
        connector: p.string("connector")?,
        action: p.string("action")?,
        level: p.level("level")?,
        levels: p.levels("levels")?,
        category: p.string("category")?,
        contains: p.string("contains")?,
        from,
        to,
        newest_first: true,
        after: p.log_cursor("cursor")?,
        limit,
    })
}

pub async fn search(shared: &Shared, q: Option<&str>) -> Answer {
    let p = Params::parse(q, PARAMS)?;
    let limit = p.limit("limit", 100, 1000)?;
    let q = query(shared, &p, limit)?;
    let rows = shared.store.logs(&q).await.map_err(ApiError::store)?;
    let next = (rows.len() == limit).then(|| rows.last().map(|(k, _)| k.to_string()));
    ok(&json!({
        "logs": rows.iter().map(|(_, r)| r).collect::<Vec<_>>(),
        "next_cursor": next.flatten(),
    }))
}
