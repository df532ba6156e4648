//! Durations (`"500ms"`, `"10s"`, `"5m"`) and byte sizes (`"64MiB"`, or a plain integer
//! of bytes) as they are written in config files.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A duration written as text with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a duration such as "500ms", "10s" or "5m""#)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                parse_duration(s).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!(r#"invalid duration "{s}" ({e}): expected a number and a unit, such as "500ms", "10s" or "5m""#)
    })
}

/// Formats a duration the way config files write them.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Formats a bound of a range in its largest whole unit (`10ms`, `24h`, `365d`).
pub fn format_bound(d: Duration) -> String {
    const UNITS: [(u128, &str); 5] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
        (1, "ms"),
    ];
    let ms = d.as_millis();
    if ms == 0 || !d.subsec_nanos().is_multiple_of(1_000_000) {
        return format_duration(d);
    }
    let (unit, name) = UNITS
        .iter()
        .find(|(u, _)| ms.is_multiple_of(*u))
        .copied()
        .unwrap_or((1, "ms"));
    format!("{}{name}", ms / unit)
}

/// A size in bytes: an integer, or text with a unit (`"64MiB"`, `"1 MB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Bytes(pub u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a size such as "64MiB" or a number of bytes"#)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Bytes, E> {
                u64::try_from(n)
                    .map(Bytes)
                    .map_err(|_| E::custom(format!("invalid size {n}: a size cannot be negative")))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Bytes, E> {
                Ok(Bytes(n))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Bytes, E> {
                s.trim()
                    .parse::<bytesize::ByteSize>()
                    .map(|b| Bytes(b.as_u64()))
                    .map_err(|e| {
                        E::custom(format!(
                            r#"invalid size "{s}" ({e}): expected a number and a unit, such as "64MiB" or "512KiB""#
                        ))
                    })
            }
        }
        d.deserialize_any(V)
    }
}

/// Formats a byte count in binary units (`64 MiB`).
pub fn format_bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        d: Dur,
        b: Bytes,
    }

    #[test]
    fn parses_units() {
        let t: T = toml::from_str("d = \"1m 30s\"\nb = \"64MiB\"").unwrap();
        assert_eq!(t.d.0, Duration::from_secs(90));
        assert_eq!(t.b.0, 64 << 20);
        let t: T = toml::from_str("d = \"250ms\"\nb = 4096").unwrap();
        assert_eq!(t.d.0, Duration::from_millis(250));
        assert_eq!(t.b.0, 4096);
        assert_eq!(format_bytes(64 << 20), "64.0 MiB");
    }

    #[test]
    fn rejects_bad_units() {
        assert!(toml::from_str::<T>("d = \"10 parsecs\"\nb = 1").is_err());
        assert!(toml::from_str::<T>("d = \"1s\"\nb = -1").is_err());
        assert!(toml::from_str::<T>("d = 5\nb = 1").is_err());
    }
}
