//! Time-range presets of the admin API: relative ones (`5m` … `30d`, ending now) and
//! calendar ones (`today`, `yesterday`, `two_days_ago`, `this_week`, `last_week`), whose
//! days start at local midnight in the daemon's time zone, daylight saving included.

use chrono::{Datelike, Days, NaiveDate, TimeZone};
use chrono_tz::Tz;
use std::time::{Duration, SystemTime};

pub const NAMES: &[&str] = &[
    "5m",
    "15m",
    "1h",
    "6h",
    "1d",
    "3d",
    "7d",
    "30d",
    "today",
    "yesterday",
    "two_days_ago",
    "this_week",
    "last_week",
];

/// The first instant of `date` in `tz`: local midnight, or the first instant after a
/// daylight-saving gap that swallowed it.
pub(super) fn day_start(tz: Tz, date: NaiveDate) -> SystemTime {
    let mut t = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    for _ in 0..48 {
        if let Some(local) = tz.from_local_datetime(&t).earliest() {
            return local.into();
        }
        t += chrono::Duration::minutes(30);
    }
    unreachable!("no time zone skips a whole day")
}

/// `[from, to)` of the preset `name` at `now`, or `None` for an unknown name.
pub fn range(name: &str, now: SystemTime, tz: Tz) -> Option<(SystemTime, SystemTime)> {
    let ago = |secs: u64| Some((now - Duration::from_secs(secs), now));
    let today = chrono::DateTime::<chrono::Utc>::from(now)
        .with_timezone(&tz)
        .date_naive();
    let days_back = |n: u64| today.checked_sub_days(Days::new(n)).expect("a date in range");
    let monday = days_back(u64::from(today.weekday().num_days_from_monday()));
    match name {
        "5m" => ago(5 * 60),
        "15m" => ago(15 * 60),
        "1h" => ago(3600),
        "6h" => ago(6 * 3600),
        "1d" => ago(86_400),
        "3d" => ago(3 * 86_400),
        "7d" => ago(7 * 86_400),
        "30d" => ago(30 * 86_400),
        "today" => Some((day_start(tz, today), now)),
        "yesterday" => Some((day_start(tz, days_back(1)), day_start(tz, today))),
        "two_days_ago" => Some((day_start(tz, days_back(2)), day_start(tz, days_back(1)))),
        "this_week" => Some((day_start(tz, monday), now)),
        "last_week" => {
            let last_monday = monday.checked_sub_days(Days::new(7)).expect("a date in range");
            Some((day_start(tz, last_monday), day_start(tz, monday)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().into()
    }

    #[test]
    fn calendar_presets_start_at_local_midnight_across_daylight_saving() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Monday 2026-03-30 10:00 in Berlin (CEST, +02:00); the clocks went forward on
        // Sunday 2026-03-29 at 02:00, so that Sunday had 23 hours.
        let now = at("2026-03-30T08:00:00Z");
        assert_eq!(range("today", now, berlin), Some((at("2026-03-29T22:00:00Z"), now)));
        assert_eq!(
            range("yesterday", now, berlin),
            Some((at("2026-03-28T23:00:00Z"), at("2026-03-29T22:00:00Z")))
        );
        assert_eq!(
            range("two_days_ago", now, berlin),
            Some((at("2026-03-27T23:00:00Z"), at("2026-03-28T23:00:00Z")))
        );
        assert_eq!(range("this_week", now, berlin), Some((at("2026-03-29T22:00:00Z"), now)));
        assert_eq!(
            range("last_week", now, berlin),
            Some((at("2026-03-22T23:00:00Z"), at("2026-03-29T22:00:00Z")))
        );
        assert_eq!(range("1h", now, berlin), Some((at("2026-03-30T07:00:00Z"), now)));
        assert_eq!(range("fortnight", now, berlin), None);
    }

    #[test]
    fn a_midnight_lost_to_daylight_saving_starts_the_day_at_the_first_instant_after() {
        // Santiago moved its clocks from 24:00 to 01:00 on 2026-09-06.
        let santiago: Tz = "America/Santiago".parse().unwrap();
        let now = at("2026-09-06T15:00:00Z");
        let (from, _) = range("today", now, santiago).unwrap();
        assert_eq!(from, at("2026-09-06T04:00:00Z"), "01:00 -03:00");
    }
}
