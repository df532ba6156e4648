//! Query-string parameters of the admin API, each parsed into its type or refused with a
//! 400 that names the parameter and what it accepts. Unknown parameters are refused too,
//! so a misspelt filter cannot silently return everything.

use super::ApiError;
use crate::engine::ExecutionStatus;
use crate::store::{JobId, ListQuery};
use hyper::StatusCode;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The filters the execution list and its histogram share.
pub const EXECUTION_FILTERS: &[&str] = &[
    "status",
    "flow",
    "project",
    "trigger_kind",
    "job_id",
    "from",
    "to",
    "preset",
];

pub struct Params {
    values: BTreeMap<String, String>,
}

fn bad(name: &str, message: String) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_parameter",
        format!("query parameter `{name}`: {message}"),
    )
}

impl Params {
    /// Parses `query`, refusing repeated and unknown parameters (`known` lists the rest).
    pub fn parse(query: Option<&str>, known: &[&str]) -> Result<Params, ApiError> {
        let mut values = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if !known.contains(&k.as_ref()) {
                return Err(bad(
                    &k,
                    if known.is_empty() {
                        "unknown; this endpoint takes no query parameters".into()
                    } else {
                        format!("unknown; this endpoint accepts: {}", known.join(", "))
                    },
                ));
            }
            if values.insert(k.to_string(), v.to_string()).is_some() {
                return Err(bad(
                    &k,
                    "given more than once; separate several values with commas".into(),
                ));
            }
        }
        Ok(Params { values })
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.values.get(name) {
            Some(v) if v.is_empty() => Err(bad(name, "empty; leave the parameter out instead".into())),
            other => Ok(other.cloned()),
        }
    }

    /// One of `allowed`, exactly.
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        match self.string(name)? {
            Some(v) if !allowed.contains(&v.as_str()) => Err(bad(
                name,
                format!("{v:?} is not allowed; expected {}", allowed.join(", ")),
            )),
            other => Ok(other),
        }
    }

    pub fn job_id(&self, name: &str) -> Result<Option<JobId>, ApiError> {
        self.string(name)?
            .map(|v| {
                v.parse::<JobId>()
                    .map_err(|_| bad(name, format!("{v:?} is not a job id (a UUID)")))
            })
            .transpose()
    }

    /// An RFC 3339 time, such as `2026-11-23T10:00:00Z`.
    pub fn time(&self, name: &str) -> Result<Option<SystemTime>, ApiError> {
        self.string(name)?
            .map(|v| {
                v.parse::<chrono::DateTime<chrono::FixedOffset>>()
                    .map(SystemTime::from)
                    .map_err(|_| {
                        bad(
                            name,
                            format!("{v:?} is not an RFC 3339 time such as 2026-11-23T10:00:00Z"),
                        )
                    })
            })
            .transpose()
    }

    /// The [`EXECUTION_FILTERS`] but `job_id` as a query of every matching execution (no
    /// cursor, no limit: the caller sets those); `tz` places a preset's days.
    pub fn execution_filter(&self, tz: chrono_tz::Tz) -> Result<ListQuery, ApiError> {
        let (from, to) = self.time_range(tz)?;
        Ok(ListQuery {
            flow: self.string("flow")?,
            project: self.string("project")?,
            statuses: self.statuses("status")?,
            trigger_kind: self.one_of("trigger_kind", &["http", "schedule", "manual"])?,
            from,
            to,
            before: None,
            limit: 0,
        })
    }

    /// `from`/`to` (RFC 3339, `from` not after `to`) or `preset` (see
    /// [`super::presets`]), not both.
    pub fn time_range(&self, tz: chrono_tz::Tz) -> Result<(Option<SystemTime>, Option<SystemTime>), ApiError> {
        let (from, to) = (self.time("from")?, self.time("to")?);
        let Some(preset) = self.string("preset")? else {
            // A range that holds nothing is a mistake (the two swapped, or a year off),
            // not a question whose answer is "none".
            if let (Some(f), Some(t)) = (from, to)
                && f > t
            {
                let shown = |name| self.string(name).ok().flatten().unwrap_or_default();
                return Err(bad(
                    "from",
                    format!(
                        "{:?} is after `to` ({:?}); the range holds nothing",
                        shown("from"),
                        shown("to")
                    ),
                ));
            }
            return Ok((from, to));
        };
        if from.is_some() || to.is_some() {
            return Err(bad("preset", "cannot be combined with `from` or `to`".into()));
        }
        match super::presets::range(&preset, SystemTime::now(), tz) {
            // A preset's end is exclusive (`yesterday` ends where `today` begins); the
            // store's `to` is inclusive.
            Some((from, to)) => Ok((Some(from), Some(to - std::time::Duration::from_nanos(1)))),
            None => Err(bad(
                "preset",
                format!(
                    "{preset:?} is not a preset; expected one of: {}",
                    super::presets::NAMES.join(", ")
                ),
            )),
        }
    }

    /// Comma-separated values, each parsed as JSON string `what` (levels, statuses).
    fn list_of<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        what: &str,
        expected: &str,
    ) -> Result<Vec<T>, ApiError> {
        let Some(v) = self.string(name)? else {
            return Ok(Vec::new());
        };
        v.split(',')
            .map(|s| {
                serde_json::from_value(serde_json::Value::String(s.trim().to_string()))
                    .map_err(|_| bad(name, format!("{s:?} is not a {what}; expected {expected}")))
            })
            .collect()
    }

    pub fn levels(&self, name: &str) -> Result<Vec<crate::plugin::Level>, ApiError> {
        self.list_of(name, "level", "trace, debug, info, warn or error")
    }

    pub fn level(&self, name: &str) -> Result<Option<crate::plugin::Level>, ApiError> {
        let levels = self.levels(name)?;
        match levels[..] {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(bad(name, "one level (the lowest kept); use `levels` for a set".into())),
        }
    }

    pub fn log_cursor(&self, name: &str) -> Result<Option<crate::store::LogKey>, ApiError> {
        self.string(name)?
            .map(|v| v.parse().map_err(|e: String| bad(name, e)))
            .transpose()
    }

    /// A count from 1 to `max`, `default` when absent.
    pub fn limit(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.string(name)? {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(bad(name, format!("{v:?} is not a whole number from 1 to {max}"))),
            },
        }
    }

    /// Comma-separated statuses.
    pub fn statuses(&self, name: &str) -> Result<Vec<ExecutionStatus>, ApiError> {
        self.list_of(
            name,
            "status",
            "pending, queued, running, paused, success, partially_executed, failed or rejected",
        )
    }
}
