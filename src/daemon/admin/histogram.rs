//! `GET /v1/executions/histogram`: how many executions the list would show, per status,
//! in buckets over the range it covers. Bucket widths are round (1 s … 7 days), at most
//! [`MAX_BUCKETS`] of them, aligned in the daemon's time zone (an hour starts at :00 local
//! time, a day at local midnight, a week on Monday), and the answer says the range and
//! width applied. Nothing is counted twice and nothing the list hides is counted.

use super::params::{EXECUTION_FILTERS, Params};
use super::presets::day_start;
use super::{Answer, ApiError, ok};
use crate::daemon::Shared;
use crate::engine::ExecutionStatus;
use chrono::{Datelike, Days};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};
use std::time::{Duration, SystemTime};

/// The most buckets an answer has.
pub const MAX_BUCKETS: u64 = 60;

const DAY: u64 = 86_400;
/// The widths a bucket may have, in seconds.
const WIDTHS: &[u64] = &[
    1,
    5,
    10,
    30,
    60,
    5 * 60,
    10 * 60,
    15 * 60,
    30 * 60,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    DAY,
    7 * DAY,
];

/// The narrowest width that covers `span` in at most [`MAX_BUCKETS`] buckets once aligned
/// (which may add one), or weeks for anything longer than 59 weeks.
pub fn width_for(span: Duration) -> u64 {
    let secs = span.as_secs().max(1);
    WIDTHS
        .iter()
        .copied()
        .find(|w| secs.div_ceil(*w) < MAX_BUCKETS)
        .unwrap_or(7 * DAY)
}

fn local_date(t: SystemTime, tz: Tz) -> chrono::NaiveDate {
    chrono::DateTime::<chrono::Utc>::from(t).with_timezone(&tz).date_naive()
}

/// Bucket boundaries `b0 <= from < … < bn`, `bn > to`, each `width` apart and aligned in
/// `tz`: days and weeks step by local calendar days (a daylight-saving day is 23 or 25
/// hours long), shorter widths count from the local midnight before `from`.
pub fn edges(from: SystemTime, to: SystemTime, width: u64, tz: Tz) -> Vec<SystemTime> {
    let date = local_date(from, tz);
    let mut out = Vec::new();
    if width >= DAY {
        let days = width / DAY;
        let first = if days == 7 {
            date - Days::new(u64::from(date.weekday().num_days_from_monday()))
        } else {
            date
        };
        let mut d = first;
        loop {
            let b = day_start(tz, d);
            out.push(b);
            if b > to {
                return out;
            }
            d = d + Days::new(days);
        }
    }
    let midnight = day_start(tz, date);
    let into = from.duration_since(midnight).unwrap_or_default().as_secs();
    let mut b = midnight + Duration::from_secs(into / width * width);
    let step = Duration::from_secs(width);
    loop {
        out.push(b);
        if b > to {
            return out;
        }
        b += step;
    }
}

fn status_index(s: ExecutionStatus) -> usize {
    ExecutionStatus::ALL
        .iter()
        .position(|x| *x == s)
        .expect("every status is listed")
}

pub async fn answer(shared: &Shared, query: Option<&str>) -> Answer {
    let p = Params::parse(query, EXECUTION_FILTERS)?;
    let tz = shared.config.server.timezone;
    let q = p.execution_filter(tz)?;
    let (from, to) = (q.from, q.to);
    let now = SystemTime::now();
    // A preset's end is exclusive; the list (and `time_range`) take it as one ns before.
    let preset = p.string("preset")?.is_some();
    let store = shared.store.as_ref();
    let from = match from {
        Some(f) => f,
        None => store
            .oldest()
            .await
            .map_err(ApiError::store)?
            .map_or(now, |e| e.created_at.min(now)),
    };
    let to = to.unwrap_or(now).max(from);
    let width = width_for(to.duration_since(from).unwrap_or_default());
    let edges = edges(from, to, width, tz);
    let counts = match p.job_id("job_id")? {
        // One execution: the list shows it or not.
        Some(id) => {
            let mut counts = vec![[0u64; 8]; edges.len() - 1];
            let inside = |e: &crate::store::Execution| {
                q.keeps(e) && e.created_at >= from && e.created_at <= to && e.created_at < edges[edges.len() - 1]
            };
            if let Some(e) = store.execution(id).await.map_err(ApiError::store)?.filter(inside) {
                let i = edges.partition_point(|b| *b <= e.created_at).saturating_sub(1);
                counts[i][status_index(e.status)] += 1;
            }
            counts
        }
        None => store.histogram(&q, &edges).await.map_err(ApiError::store)?,
    };
    let buckets: Vec<Value> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let by_status: Map<String, Value> = ExecutionStatus::ALL
                .iter()
                .zip(c)
                .map(|(s, n)| (s.as_str().to_string(), json!(n)))
                .collect();
            json!({
                "start": crate::time_format::rfc3339(edges[i]),
                "end": crate::time_format::rfc3339(edges[i + 1]),
                "counts": by_status,
            })
        })
        .collect();
    let total: u64 = counts.iter().flatten().sum();
    let shown_to = if preset { to + Duration::from_nanos(1) } else { to };
    ok(&json!({
        "from": crate::time_format::rfc3339(from),
        "to": crate::time_format::rfc3339(shown_to),
        "timezone": tz.name(),
        "width_seconds": width,
        "total": total,
        "buckets": buckets,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().into()
    }

    #[test]
    fn widths_are_round_and_buckets_few() {
        assert_eq!(width_for(Duration::from_secs(5 * 60)), 10);
        assert_eq!(width_for(Duration::from_secs(3600)), 5 * 60);
        assert_eq!(width_for(Duration::from_secs(DAY)), 30 * 60);
        assert_eq!(width_for(Duration::from_secs(7 * DAY)), 3 * 3600);
        assert_eq!(width_for(Duration::from_secs(30 * DAY)), DAY);
        assert_eq!(width_for(Duration::from_secs(365 * DAY)), 7 * DAY);
        assert_eq!(width_for(Duration::ZERO), 1);
    }

    #[test]
    fn hours_and_days_start_at_local_boundaries() {
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        // 10:40 UTC is 16:10 in Kolkata: its hour began at 10:30 UTC.
        let e = edges(at("2026-12-05T10:40:00Z"), at("2026-12-05T12:00:00Z"), 3600, kolkata);
        assert_eq!(e[0], at("2026-12-05T10:30:00Z"));
        assert_eq!(e.last().copied(), Some(at("2026-12-05T12:30:00Z")));
        assert_eq!(e.len(), 3);
        // Days begin at 18:30 UTC, Kolkata's midnight; 00:00 UTC on the 7th is in the third.
        let e = edges(at("2026-12-05T10:40:00Z"), at("2026-12-07T00:00:00Z"), DAY, kolkata);
        assert_eq!(
            e,
            vec![
                at("2026-12-04T18:30:00Z"),
                at("2026-12-05T18:30:00Z"),
                at("2026-12-06T18:30:00Z"),
                at("2026-12-07T18:30:00Z")
            ]
        );
    }

    #[test]
    fn days_follow_daylight_saving_and_weeks_start_on_monday() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let e = edges(at("2026-03-28T12:00:00Z"), at("2026-03-30T12:00:00Z"), DAY, berlin);
        // 2026-03-29 had 23 hours in Berlin.
        assert_eq!(
            e,
            vec![
                at("2026-03-27T23:00:00Z"),
                at("2026-03-28T23:00:00Z"),
                at("2026-03-29T22:00:00Z"),
                at("2026-03-30T22:00:00Z")
            ]
        );
        // Wednesday 2026-12-02 falls in the week that began on Monday 2026-11-30.
        let e = edges(at("2026-12-02T12:00:00Z"), at("2026-12-03T00:00:00Z"), 7 * DAY, berlin);
        assert_eq!(e[0], at("2026-11-29T23:00:00Z"));
    }
}
