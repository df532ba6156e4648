//! Cron schedules (as crontab reads them, see [`crate::config::CronExpr`]): when a
//! `schedule` flow fires next, and which fire times a stopped
//! daemon missed, in the flow's IANA time zone (daylight-saving changes included: a
//! local time that does not exist is skipped, one that happens twice fires once).

use crate::config::{CatchUp, CronExpr, TriggerKind};
use chrono::Utc;
use std::time::SystemTime;

/// A flow's parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: CronExpr,
    tz: chrono_tz::Tz,
    pub catch_up: CatchUp,
}

/// The most missed fire times `catch_up = "all"` replays after a long stop (the earliest).
pub const MAX_CATCH_UP: usize = 1000;

impl Schedule {
    /// The schedule of a `schedule` trigger (validated when the flow was loaded).
    pub fn of(kind: &TriggerKind) -> Option<Schedule> {
        let TriggerKind::Schedule {
            cron,
            timezone,
            catch_up,
            ..
        } = kind
        else {
            return None;
        };
        Some(Schedule {
            cron: cron.parse().ok()?,
            tz: timezone.parse().ok()?,
            catch_up: *catch_up,
        })
    }

    /// The next `n` fire times strictly after `after`.
    pub fn next(&self, after: SystemTime, n: usize) -> Vec<SystemTime> {
        let after = crate::time_format::datetime(after).with_timezone(&self.tz);
        let mut out: Vec<SystemTime> = Vec::with_capacity(n);
        let mut last_local = None;
        for t in self.cron.after(&after) {
            // A local time that happens twice (the autumn change) fires once, the first time.
            let local = t.naive_local();
            if last_local == Some(local) {
                continue;
            }
            last_local = Some(local);
            out.push(SystemTime::from(t.with_timezone(&Utc)));
            if out.len() == n {
                break;
            }
        }
        out
    }

    /// The fire times missed in `(last, now]` that the catch-up policy replays.
    pub fn missed(&self, last: SystemTime, now: SystemTime) -> Vec<SystemTime> {
        if self.catch_up == CatchUp::Skip {
            return Vec::new();
        }
        let mut missed = Vec::new();
        let mut from = last;
        loop {
            let batch = self.next(from, 256);
            let before_now: Vec<SystemTime> = batch.iter().copied().filter(|t| *t <= now).collect();
            let done = before_now.len() < batch.len() || batch.is_empty();
            if let Some(last) = before_now.last() {
                from = *last;
            }
            missed.extend(before_now);
            if done || missed.len() > MAX_CATCH_UP {
                break;
            }
        }
        match self.catch_up {
            CatchUp::Skip => Vec::new(),
            CatchUp::One => missed.last().copied().into_iter().collect(),
            CatchUp::All => {
                missed.truncate(MAX_CATCH_UP);
                missed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overlap;
    use chrono::DateTime;

    fn schedule(cron: &str, tz: &str, catch_up: CatchUp) -> Schedule {
        Schedule::of(&TriggerKind::Schedule {
            cron: cron.into(),
            timezone: tz.into(),
            catch_up,
            overlap: Overlap::Allow,
        })
        .unwrap()
    }

    fn at(s: &str) -> SystemTime {
        SystemTime::from(DateTime::parse_from_rfc3339(s).unwrap())
    }

    fn show(ts: &[SystemTime]) -> Vec<String> {
        ts.iter().map(|t| DateTime::<Utc>::from(*t).to_rfc3339()).collect()
    }

    #[test]
    fn fires_in_the_flows_time_zone_across_daylight_saving() {
        // 02:30 Berlin does not exist on 2026-03-29 (clocks go 02:00 → 03:00).
        let s = schedule("0 30 2 * * *", "Europe/Berlin", CatchUp::Skip);
        let next = s.next(at("2026-03-27T12:00:00Z"), 3);
        assert_eq!(
            show(&next),
            [
                "2026-03-28T01:30:00+00:00",
                "2026-03-30T00:30:00+00:00",
                "2026-03-31T00:30:00+00:00"
            ]
        );
        // 02:30 happens twice on 2026-10-25 (03:00 → 02:00): one fire.
        let next = s.next(at("2026-10-24T12:00:00Z"), 2);
        assert_eq!(show(&next), ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]);
    }

    #[test]
    fn catch_up_policies() {
        let last = at("2026-01-01T00:00:00Z");
        let now = at("2026-01-01T00:00:05.500Z");
        let every_second = |c| schedule("* * * * * *", "UTC", c);
        assert!(every_second(CatchUp::Skip).missed(last, now).is_empty());
        assert_eq!(
            show(&every_second(CatchUp::One).missed(last, now)),
            ["2026-01-01T00:00:05+00:00"]
        );
        assert_eq!(every_second(CatchUp::All).missed(last, now).len(), 5);
        let long = at("2026-01-02T00:00:00Z");
        assert_eq!(every_second(CatchUp::All).missed(last, long).len(), MAX_CATCH_UP);
    }
}
