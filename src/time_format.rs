//! Times as RFC 3339 in UTC with millisecond precision, for JSON output and records.

use chrono::{DateTime, SecondsFormat, Utc};
use std::time::SystemTime;

pub fn rfc3339(t: SystemTime) -> String {
    datetime(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `t` as a UTC date and time; a time past what dates hold (years beyond 262,143, or
/// before -262,144) is the nearest one they do, so formatting a time never panics.
pub fn datetime(t: SystemTime) -> DateTime<Utc> {
    let parts = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok().map(|s| (s, d.subsec_nanos())),
        Err(e) => {
            let d = e.duration();
            // Before the epoch: whole seconds down, then the nanoseconds back up.
            let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
            let secs = i64::try_from(secs).ok().map(|s| if nanos > 0 { -s - 1 } else { -s });
            secs.map(|s| (s, if nanos > 0 { 1_000_000_000 - nanos } else { 0 }))
        }
    };
    let late = t > SystemTime::UNIX_EPOCH;
    parts
        .and_then(|(s, n)| DateTime::<Utc>::from_timestamp(s, n))
        .unwrap_or(if late {
            DateTime::<Utc>::MAX_UTC
        } else {
            DateTime::<Utc>::MIN_UTC
        })
}

/// `t + d`, saturating at the last time [`rfc3339`] writes: a stored or configured
/// duration never panics a clock.
pub fn after(t: SystemTime, d: std::time::Duration) -> SystemTime {
    let last = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(DateTime::<Utc>::MAX_UTC.timestamp() as u64);
    t.checked_add(d).map_or(last, |later| later.min(last))
}

/// `Instant::now() + d`, or as far ahead as an `Instant` goes (a century) when that
/// overflows.
pub fn deadline_in(d: std::time::Duration) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

pub fn parse(text: &str) -> Result<SystemTime, String> {
    DateTime::parse_from_rfc3339(text)
        .map(SystemTime::from)
        .map_err(|e| format!("invalid time {text:?} ({e}): expected RFC 3339, such as 2026-01-31T12:00:00Z"))
}

pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
    let text: String = serde::Deserialize::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// For `Option<SystemTime>` fields.
pub mod option {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let text: Option<String> = serde::Deserialize::deserialize(d)?;
        text.map(|t| super::parse(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_with_milliseconds() {
        let t = super::parse("2026-11-23T04:05:06.789Z").unwrap();
        assert_eq!(super::rfc3339(t), "2026-11-23T04:05:06.789Z");
        assert!(super::parse("yesterday").is_err());
    }

    #[test]
    fn times_past_the_calendar_are_clamped_not_a_panic() {
        use std::time::{Duration, SystemTime};
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(99_999_999 * 86_400 * 30);
        assert!(
            super::rfc3339(far).starts_with("+262142-12-31T23:59:59"),
            "{}",
            super::rfc3339(far)
        );
        let before = SystemTime::UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(super::rfc3339(before), "1969-12-31T23:59:58.500Z");
    }
}
