//! Flag groups shared by the commands that read recorded executions and logs: where
//! they read (a data directory directly, or the daemon's admin API), time ranges, and
//! the parsers that turn flag values into typed arguments before anything runs.

use super::client::{Client, DEFAULT_URL};
use crate::engine::ExecutionStatus;
use crate::plugin::Level;
use clap::Args;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Offline mode with `--data-dir` or `--config`, client mode with neither.
#[derive(Args, Clone)]
pub struct Target {
    /// Read and write this data directory directly, with no daemon running (offline
    /// mode). Without it or --config, the command asks the daemon's admin API (client
    /// mode).
    #[arg(long, value_name = "DIR", env = "FLOWD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Read and write the store this daemon config's [store] names directly (offline
    /// mode): its data directory (no daemon may have it open), or its PostgreSQL database
    /// (the URL from the variable url_env names), which running daemons may share.
    /// resume, retry and show also take the flows and connectors from it; with
    /// --data-dir, they take only those (default: $FLOWD_CONFIG, else config/flowd.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub remote: Remote,
}

impl Target {
    /// Where an offline command reads and writes, or `None` in client mode; refuses
    /// (exit code 2) both flags for a command whose `--config` names nothing but the store.
    pub fn source(&self, flows_too: bool) -> Result<Option<super::source::Source>, u8> {
        use super::source::Source;
        match (&self.data_dir, &self.config) {
            (Some(_), Some(_)) if !flows_too => {
                eprintln!(
                    "error: --data-dir (or FLOWD_DATA_DIR) and --config both name a store: give one (--data-dir DIR reads a redb data directory, --config FILE the store its [store] names)"
                );
                Err(2)
            }
            (Some(dir), _) => Ok(Some(Source::DataDir(dir.clone()))),
            (None, Some(file)) => Ok(Some(Source::Config(file.clone()))),
            (None, None) => Ok(None),
        }
    }

    /// The daemon config whose flows an offline resume or retry runs with.
    pub fn flows_config(&self) -> PathBuf {
        self.config
            .clone()
            .or_else(|| {
                std::env::var_os("FLOWD_CONFIG")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from("config/flowd.toml"))
    }
}

/// The admin API to ask.
#[derive(Args, Clone)]
pub struct Remote {
    /// The daemon's admin API (client mode); the bearer token is read from the
    /// environment variable FLOWD_TOKEN.
    #[arg(long, value_name = "URL", env = "FLOWD_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// How long to wait for each answer of the daemon (1m; `flows reload`, which may
    /// compile connectors, 10m); client mode.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
}

impl Remote {
    /// The client of `--url` with the token of `FLOWD_TOKEN`; a message and exit code 2
    /// when either is unusable.
    pub fn client(&self) -> Result<Client, u8> {
        Client::from_env(&self.url)
            .map(|c| c.answering_within(self.timeout.unwrap_or(super::client::ANSWER_TIMEOUT)))
            .map_err(|m| {
                eprintln!("error: {m}");
                2
            })
    }
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = crate::config::units::parse_duration(s)?;
    let range = Duration::from_millis(100)..=Duration::from_secs(24 * 3600);
    if range.contains(&d) {
        Ok(d)
    } else {
        Err(format!("{s:?} is out of range: from 100ms to 1d"))
    }
}

/// The time presets of the admin API, which resolves them in its own time zone.
pub use crate::daemon::admin::PRESETS;

#[derive(Args, Clone, Default)]
pub struct TimeRange {
    /// Only what happened at or after this time (RFC 3339, such as 2026-11-23T10:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: Option<SystemTime>,
    /// Only what happened at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub to: Option<SystemTime>,
    /// A range ending now (5m 15m 1h 6h 1d 3d 7d 30d) or a calendar one (today yesterday
    /// two_days_ago this_week last_week) in the daemon's time zone; client mode only.
    #[arg(long, value_name = "PRESET", conflicts_with_all = ["from", "to"],
          value_parser = clap::builder::PossibleValuesParser::new(PRESETS))]
    pub preset: Option<String>,
}

impl TimeRange {
    /// Why the range is refused before anything is asked or read: `--from` after `--to`
    /// holds nothing, a mistake (the admin API refuses it too). A usage error.
    pub(super) fn check(&self) -> Result<(), String> {
        match (self.from, self.to) {
            (Some(from), Some(to)) if from > to => Err(format!(
                "--from {} is after --to {}; the range holds nothing",
                crate::time_format::rfc3339(from),
                crate::time_format::rfc3339(to)
            )),
            _ => Ok(()),
        }
    }

    /// The range as query parameters, once [`TimeRange::check`] passes.
    pub(super) fn append(&self, q: &mut Query) -> Result<(), String> {
        self.check()?;
        q.opt("from", self.from.map(crate::time_format::rfc3339));
        q.opt("to", self.to.map(crate::time_format::rfc3339));
        q.opt("preset", self.preset.as_deref());
        Ok(())
    }
}

/// A query string, percent-encoded.
pub struct Query(form_urlencoded::Serializer<'static, String>);

impl Query {
    pub fn new() -> Query {
        Query(form_urlencoded::Serializer::new(String::new()))
    }

    pub fn opt(&mut self, name: &str, value: Option<impl AsRef<str>>) -> &mut Query {
        if let Some(v) = value {
            self.0.append_pair(name, v.as_ref());
        }
        self
    }

    /// `name=a,b,c`, or nothing for an empty list.
    pub fn list(&mut self, name: &str, values: impl IntoIterator<Item = &'static str>) -> &mut Query {
        let joined = values.into_iter().collect::<Vec<_>>().join(",");
        self.opt(name, (!joined.is_empty()).then_some(joined))
    }

    /// `path` with the query string, if any.
    pub fn path(mut self, path: &str) -> String {
        let q = self.0.finish();
        if q.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{q}")
        }
    }
}

pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    crate::time_format::parse(s)
}

pub fn parse_status(s: &str) -> Result<ExecutionStatus, String> {
    serde_json::from_value(Value::String(s.trim().to_string())).map_err(|_| {
        format!("unknown status {s:?}; expected pending, queued, running, paused, success, partially_executed, failed or rejected")
    })
}

pub fn parse_level(s: &str) -> Result<Level, String> {
    serde_json::from_value(Value::String(s.trim().to_string()))
        .map_err(|_| format!("unknown level {s:?}; expected trace, debug, info, warn or error"))
}

/// A flow name as flow files allow them: such a name is one path segment of the API as
/// it is.
pub fn parse_flow_name(s: &str) -> Result<String, String> {
    if crate::config::valid_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a flow name ({}, at most 64)",
            crate::config::NAME_RULE
        ))
    }
}

/// Refuses, with exit code 2, a flag that needs the daemon in offline mode.
pub fn client_only(given: bool, flag: &str) -> Result<(), u8> {
    if given {
        eprintln!("error: {flag} needs the daemon: leave out --data-dir and --config to ask its admin API");
        return Err(2);
    }
    Ok(())
}
