//! `GET /v1/executions/histogram`: how many executions the list would show, per status,
//! in buckets over the range it covers. Bucket widths are round (1 s … 52 weeks, then
//! whole multiples of 52 weeks), at most [`MAX_BUCKETS`] of them whatever the range,
//! aligned in the daemon's time zone (an hour starts at :00 local time, a day at local
//! midnight, a week or several on Monday), and the answer says the range and width
//! applied. Nothing is counted twice and nothing the list hides is counted.

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
const WEEK: u64 = 7 * DAY;
/// 52 weeks: the widest round width, and the unit of any wider one.
const YEAR: u64 = 52 * WEEK;
/// The widths a bucket may have, in seconds, up to [`YEAR`].
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
    WEEK,
    2 * WEEK,
    4 * WEEK,
    13 * WEEK,
    26 * WEEK,
    YEAR,
];

/// The narrowest width that covers `span` in at most [`MAX_BUCKETS`] buckets once aligned
/// (which may add one): a round one up to [`YEAR`], past 59 of those whole years of them.
pub fn width_for(span: Duration) -> u64 {
    let secs = span.as_secs().max(1);
    WIDTHS
        .iter()
        .copied()
        .find(|w| secs.div_ceil(*w) < MAX_BUCKETS)
        .unwrap_or_else(|| YEAR * secs.div_ceil(YEAR).div_ceil(MAX_BUCKETS - 1))
}

fn local_date(t: SystemTime, tz: Tz) -> chrono::NaiveDate {
    chrono::DateTime::<chrono::Utc>::from(t).with_timezone(&tz).date_naive()
}

/// The first and the last instant RFC 3339 writes (years 0000 to 9999, to the
/// millisecond the answers give).
fn writable() -> (SystemTime, SystemTime) {
    let epoch = SystemTime::UNIX_EPOCH;
    (
        epoch - Duration::from_secs(62_167_219_200),
        epoch + Duration::from_millis(253_402_300_799_999),
    )
}

/// Bucket boundaries `b0 <= from < … < bn`, `bn > to`, each `width` apart and aligned in
/// `tz`: days and weeks step by local calendar days (a daylight-saving day is 23 or 25
/// hours long), whole weeks from the Monday before `from`; shorter widths count from the
/// local midnight before `from`. The first and last stay within the years RFC 3339 can
/// write ([`writable`]; only they can fall outside, as `from` and `to` are within).
pub fn edges(from: SystemTime, to: SystemTime, width: u64, tz: Tz) -> Vec<SystemTime> {
    let (first, last) = writable();
    let mut out = aligned(from, to, width, tz);
    for b in &mut out {
        *b = (*b).clamp(first, last);
    }
    out
}

fn aligned(from: SystemTime, to: SystemTime, width: u64, tz: Tz) -> Vec<SystemTime> {
    let date = local_date(from, tz);
    let mut out = Vec::new();
    if width >= DAY {
        let days = width / DAY;
        let first = if days.is_multiple_of(7) {
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
        assert_eq!(width_for(Duration::from_secs(365 * DAY)), WEEK);
        assert_eq!(width_for(Duration::from_secs(730 * DAY)), 2 * WEEK);
        assert_eq!(width_for(Duration::ZERO), 1);
        // However long the range, its buckets stay few: whole years of 52 weeks.
        let utc: Tz = "UTC".parse().unwrap();
        let from = at("1970-01-01T00:00:00Z");
        for years in [1, 2, 10, 59, 60, 100, 1000, 8030] {
            let to = from + Duration::from_secs(years * 365 * DAY);
            let width = width_for(to.duration_since(from).unwrap());
            assert_eq!(width % WEEK, 0, "{years} years");
            let e = edges(from, to, width, utc);
            assert!(
                e.len() - 1 <= MAX_BUCKETS as usize,
                "{years} years: {} buckets",
                e.len() - 1
            );
            assert!(e[0] <= from && *e.last().unwrap() > to, "{years} years");
        }
        // The widest range the API reads: its edges are still RFC 3339 times.
        let (from, to) = (at("0000-01-01T00:00:00Z"), at("9999-12-31T23:59:59.999Z"));
        let far = edges(from, to, width_for(to.duration_since(from).unwrap()), utc);
        assert!(far.len() - 1 <= MAX_BUCKETS as usize);
        assert_eq!((far[0], *far.last().unwrap()), (from, to));
        for b in far {
            let text = crate::time_format::rfc3339(b);
            assert_eq!(at(&text), b, "{text}");
        }
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
