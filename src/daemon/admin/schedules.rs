//! Scheduled tasks: `GET /v1/schedules` (each schedule flow with its next fire times),
//! `GET /v1/schedules/executions` (executions started by schedules, with their trigger
//! times; the last 30 minutes unless a range is given), and per flow `enable`, `disable`
//! and `run` (fire now).

use super::params::Params;
use super::{Answer, ApiError, ok};
use crate::config::TriggerKind;
use crate::daemon::Shared;
use crate::store::{ListQuery, PayloadKey};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

/// How far back the scheduled-tasks view looks without a time filter.
const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 60);

pub async fn list(shared: &Shared, query: Option<&str>) -> Answer {
    let p = Params::parse(query, &["next"])?;
    let next = p.limit("next", 5, 100)?;
    let flows = shared.flows();
    let mut names: Vec<_> = flows
        .by_name
        .values()
        .filter(|f| matches!(f.trigger.kind, TriggerKind::Schedule { .. }))
        .map(|f| f.name.clone())
        .collect();
    names.sort();
    let mut rows = Vec::new();
    for name in names {
        let f = &flows.by_name[&name];
        let TriggerKind::Schedule { cron, timezone, .. } = &f.trigger.kind else {
            unreachable!("filtered above")
        };
        let last = shared.store.last_fire(&f.name).await.map_err(ApiError::store)?;
        let fires = shared.next_fires(&f.name, next).unwrap_or_default();
        rows.push(json!({
            "flow": f.name,
            "project": f.project,
            "environment": shared.config.environment,
            "cron": cron,
            "timezone": timezone,
            "active": shared.is_active(&f.name),
            "last_fire": last.map(crate::time_format::rfc3339),
            "next_fires": fires.into_iter().map(crate::time_format::rfc3339).collect::<Vec<_>>(),
        }));
    }
    ok(&json!({ "schedules": rows }))
}

const EXECUTION_PARAMS: &[&str] = &["flow", "status", "from", "to", "preset", "limit", "cursor"];

pub async fn executions(shared: &Shared, query: Option<&str>) -> Answer {
    let p = Params::parse(query, EXECUTION_PARAMS)?;
    let limit = p.limit("limit", 50, 1000)?;
    let (mut from, to) = p.time_range(shared.config.server.timezone)?;
    if from.is_none() && to.is_none() {
        from = Some(SystemTime::now() - DEFAULT_WINDOW);
    }
    let q = ListQuery {
        flow: p.string("flow")?,
        statuses: p.statuses("status")?,
        trigger_kind: Some("schedule".into()),
        from,
        to,
        before: p.job_id("cursor")?,
        limit,
        ..ListQuery::default()
    };
    let rows = shared.store.list(&q).await.map_err(ApiError::store)?;
    let mut out = Vec::with_capacity(rows.len());
    for e in &rows {
        let trigger = shared
            .store
            .payload(PayloadKey::trigger(e.job_id))
            .await
            .map_err(ApiError::store)?
            .unwrap_or(Value::Null);
        out.push(json!({
            "job_id": e.job_id.to_string(),
            "flow": e.flow,
            "project": e.project,
            "environment": e.environment,
            "status": e.status,
            "scheduled_at": trigger["scheduled_at"],
            "fired_at": trigger["fired_at"],
            "finished_at": e.finished_at.map(crate::time_format::rfc3339),
            "duration": crate::detail::duration(e),
        }));
    }
    let next = (rows.len() == limit).then(|| rows.last().map(|e| e.job_id.to_string()));
    ok(&json!({ "executions": out, "next_cursor": next.flatten() }))
}

/// The schedule flow `name`, or a 404 saying there is none.
fn schedule_flow(shared: &Shared, name: &str) -> Result<(), ApiError> {
    match shared.flows().by_name.get(name) {
        Some(f) if matches!(f.trigger.kind, TriggerKind::Schedule { .. }) => Ok(()),
        Some(_) => Err(ApiError::new(
            hyper::StatusCode::NOT_FOUND,
            "not_found",
            format!("flow \"{name}\" has no schedule trigger"),
        )),
        None => Err(ApiError::new(
            hyper::StatusCode::NOT_FOUND,
            "not_found",
            format!("no flow named \"{name}\""),
        )),
    }
}

pub async fn set_enabled(shared: &Shared, name: &str, enabled: bool, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    schedule_flow(shared, name)?;
    shared
        .set_active(name, enabled)
        .await
        .map_err(super::flows::run_error)?;
    ok(&json!({ "flow": name, "active": enabled }))
}

pub async fn run(shared: &Shared, name: &str, query: Option<&str>) -> Answer {
    Params::parse(query, &[])?;
    schedule_flow(shared, name)?;
    super::flows::started(shared.fire_now(name).await)
}
