//! Times as RFC 3339 in UTC with millisecond precision, for JSON output and records.

use std::time::SystemTime;

pub fn rfc3339(t: SystemTime) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => "invalid-time".into(),
    }
}

pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
    let text: String = serde::Deserialize::deserialize(d)?;
    let ts: jiff::Timestamp = text.parse().map_err(serde::de::Error::custom)?;
    Ok(SystemTime::from(ts))
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
        match text {
            None => Ok(None),
            Some(text) => {
                let ts: jiff::Timestamp = text.parse().map_err(serde::de::Error::custom)?;
                Ok(Some(SystemTime::from(ts)))
            }
        }
    }
}
