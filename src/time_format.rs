//! Times as RFC 3339 in UTC with millisecond precision, for JSON output and records.

use chrono::{DateTime, SecondsFormat, Utc};
use std::time::SystemTime;

pub fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
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
}
