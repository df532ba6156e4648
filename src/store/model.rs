//! What the store keeps, independent of any backend: executions, the steps of each
//! attempt, payloads, and log records, plus the queries the CLI and API ask.

use crate::plugin::{Failure, Level};
use crate::status::{ConnectorUse, ExecutionStatus, StepStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

/// A job id: a UUIDv7, so ids sort by creation time and "newest first" is a reverse scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub u128);

impl JobId {
    pub fn new() -> JobId {
        JobId(uuid::Uuid::now_v7().as_u128())
    }

    /// A new id for an execution created at `t` (random low bits, like [`JobId::new`]):
    /// what an import or a benchmark uses to record executions of the past.
    pub fn at(t: SystemTime) -> JobId {
        let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, d.as_secs(), d.subsec_nanos());
        JobId(uuid::Uuid::new_v7(ts).as_u128())
    }

    /// The smallest id created at or after `t` (UUIDv7 holds Unix milliseconds on top).
    pub fn lower_bound(t: SystemTime) -> JobId {
        let ms = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        JobId(ms.min((1 << 48) - 1) << 80)
    }
}

impl Default for JobId {
    fn default() -> Self {
        JobId::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&uuid::Uuid::from_u128(self.0).hyphenated(), f)
    }
}

impl FromStr for JobId {
    type Err = String;
    fn from_str(s: &str) -> Result<JobId, String> {
        uuid::Uuid::parse_str(s)
            .map(|u| JobId(u.as_u128()))
            .map_err(|e| format!("invalid job id {s:?}: {e}"))
    }
}

impl Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JobId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One execution (a job): the row of the execution list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub job_id: JobId,
    pub project: String,
    pub flow: String,
    pub flow_version: String,
    pub trigger_kind: String,
    /// A stored trigger payload fits the flow while this is unchanged.
    pub trigger_fingerprint: String,
    pub environment: String,
    pub status: ExecutionStatus,
    /// 1 for the first run, 2 and 3 for manual retries.
    pub attempt: u32,
    #[serde(with = "crate::time_format")]
    pub created_at: SystemTime,
    #[serde(with = "crate::time_format::option", default)]
    pub started_at: Option<SystemTime>,
    #[serde(with = "crate::time_format::option", default)]
    pub finished_at: Option<SystemTime>,
    pub steps_total: u32,
    pub steps_executed: u32,
    /// When a paused execution resumes on its own (`None` while paused: until resumed).
    #[serde(with = "crate::time_format::option", default)]
    pub resume_at: Option<SystemTime>,
}

/// One run of an execution: attempt 1, then 2 and 3 for manual retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub attempt: u32,
    pub status: ExecutionStatus,
    #[serde(with = "crate::time_format::option", default)]
    pub started_at: Option<SystemTime>,
    #[serde(with = "crate::time_format::option", default)]
    pub finished_at: Option<SystemTime>,
    /// The index of the first step it ran (earlier outputs were reused).
    pub from_step: u32,
}

/// One step of one attempt, as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    pub attempt: u32,
    pub index: u32,
    pub name: String,
    pub kind: String,
    pub status: StepStatus,
    #[serde(default)]
    pub connector: Option<ConnectorUse>,
    #[serde(with = "crate::time_format::option", default)]
    pub started_at: Option<SystemTime>,
    #[serde(with = "crate::time_format::option", default)]
    pub finished_at: Option<SystemTime>,
    /// Seconds.
    pub duration: f64,
    pub fuel_used: u64,
    #[serde(default)]
    pub error: Option<Failure>,
    #[serde(default)]
    pub note: Option<String>,
    /// Each automatic try: its error, if it failed.
    #[serde(default)]
    pub tries: Vec<TryRow>,
    /// A manual retry reused this step's output from that attempt instead of running it.
    #[serde(default)]
    pub reused_from: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TryRow {
    #[serde(with = "crate::time_format")]
    pub started_at: SystemTime,
    pub duration: f64,
    pub fuel_used: u64,
    #[serde(default)]
    pub error: Option<Failure>,
    pub dropped_logs: u64,
}

/// Which payload of a step (or the trigger's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    Trigger,
    /// The step's config with placeholders resolved.
    Config,
    Output,
}

impl PayloadKind {
    /// The kind's byte in a stored payload key. These bytes are on disk: never renumber.
    /// 2 sits between config and output for a step's input, which is not stored (it is
    /// the trigger payload and earlier outputs, stored already), so it stays unused.
    pub(crate) fn code(self) -> u8 {
        match self {
            PayloadKind::Trigger => 0,
            PayloadKind::Config => 1,
            PayloadKind::Output => 3,
        }
    }

    /// The kind as errors name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            PayloadKind::Trigger => "trigger",
            PayloadKind::Config => "config",
            PayloadKind::Output => "output",
        }
    }
}

/// Where a payload belongs. The trigger's payload is attempt 0, step 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadKey {
    pub job_id: JobId,
    pub attempt: u32,
    pub step: u32,
    pub kind: PayloadKind,
}

impl PayloadKey {
    pub fn trigger(job_id: JobId) -> PayloadKey {
        PayloadKey {
            job_id,
            attempt: 0,
            step: 0,
            kind: PayloadKind::Trigger,
        }
    }

    /// Where step `step`'s config is kept once for every execution of a flow version,
    /// when it holds no placeholders (and so is the same in each): in place of a job id,
    /// a name-based UUIDv8 of the project, flow and version (never equal to a job id, a
    /// UUIDv7), and attempt [`SHARED_ATTEMPT`]. It belongs to no execution, so pruning
    /// executions leaves it; there is one per step of each flow version.
    pub fn shared_config(project: &str, flow: &str, version: &str, step: u32) -> PayloadKey {
        use sha2::Digest as _;
        let digest = sha2::Sha256::new()
            .chain_update(project)
            .chain_update([0])
            .chain_update(flow)
            .chain_update([0])
            .chain_update(version)
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
        PayloadKey {
            job_id: JobId(u128::from_be_bytes(bytes)),
            attempt: SHARED_ATTEMPT,
            step,
            kind: PayloadKind::Config,
        }
    }
}

/// The attempt of a [`PayloadKey::shared_config`] key: written once, never replaced.
pub const SHARED_ATTEMPT: u32 = u32::MAX;

/// One record of the running logs, with every field the API filters on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    #[serde(with = "crate::time_format")]
    pub time: SystemTime,
    pub level: Level,
    pub job_id: JobId,
    pub project: String,
    pub flow: String,
    pub flow_version: String,
    pub attempt: u32,
    #[serde(default)]
    pub step: Option<String>,
    #[serde(default)]
    pub connector: Option<String>,
    /// What was running: `run` (a step), `accept` (the trigger), or a host event name.
    pub action: String,
    pub category: String,
    pub environment: String,
    pub message: String,
}

/// One change, applied with others in one durable transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// Inserts or replaces the execution row (its indexes follow).
    Execution(Execution),
    /// Inserts or replaces the row of one attempt.
    Attempt {
        job_id: JobId,
        row: Attempt,
    },
    Step {
        job_id: JobId,
        row: StepRow,
    },
    Payload {
        key: PayloadKey,
        /// Shared with the report it came from: a payload is written as it is, not copied.
        value: Arc<Value>,
        /// The value's JSON text when known (as the connector gave it): stored as it is
        /// rather than written out again.
        text: Option<Arc<str>>,
    },
    Logs(Vec<LogRow>),
    /// A flow is (de)activated: inactive flows take no webhooks and fire no schedule.
    FlowActive {
        flow: String,
        active: bool,
    },
    /// A schedule fired at `at` (its scheduled time): catch-up starts after it.
    LastFire {
        flow: String,
        at: SystemTime,
    },
    /// Fire time `at` of `flow`'s schedule is taken: recorded as its last fire, unless a
    /// fire time at or after it already is, which refuses the whole transaction
    /// ([`super::WriteError::AlreadyFired`]). Daemons sharing a store all fire a
    /// schedule; the one whose transaction commits first starts the execution.
    Fire {
        flow: String,
        at: SystemTime,
    },
    /// Claims the new execution `job` for `owner` for `ttl` (fence 1), with its acceptance.
    Claim {
        job: JobId,
        owner: String,
        ttl: std::time::Duration,
    },
    /// The transaction applies only while `owner` holds `job`'s claim with this fence;
    /// otherwise it is refused whole ([`super::WriteError::Fenced`]).
    Fence {
        job: JobId,
        owner: String,
        fence: u64,
    },
}

impl Write {
    /// Whether `self` replaces the whole of `other` (the same row), so a transaction
    /// holding both need only apply `self`.
    pub fn supersedes(&self, other: &Write) -> bool {
        match (self, other) {
            (Write::Execution(a), Write::Execution(b)) => a.job_id == b.job_id,
            (Write::Attempt { job_id: a, row: ra }, Write::Attempt { job_id: b, row: rb }) => {
                a == b && ra.attempt == rb.attempt
            }
            (Write::Step { job_id: a, row: ra }, Write::Step { job_id: b, row: rb }) => {
                a == b && ra.attempt == rb.attempt && ra.index == rb.index
            }
            (Write::Payload { key: a, .. }, Write::Payload { key: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// How many rows each part of a store holds (what a copy between backends verifies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub executions: u64,
    pub attempts: u64,
    pub steps: u64,
    pub payloads: u64,
    pub log_records: u64,
    pub inactive_flows: u64,
    /// Schedules with a last fire time.
    pub schedules: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.executions
            + self.attempts
            + self.steps
            + self.payloads
            + self.log_records
            + self.inactive_flows
            + self.schedules
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} executions, {} attempts, {} steps, {} payloads, {} log records, {} inactive flows, {} schedule fire times",
            self.executions,
            self.attempts,
            self.steps,
            self.payloads,
            self.log_records,
            self.inactive_flows,
            self.schedules
        )
    }
}

/// A filter over the execution list, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub flow: Option<String>,
    pub project: Option<String>,
    /// Any of these statuses; empty: every status.
    pub statuses: Vec<ExecutionStatus>,
    pub trigger_kind: Option<String>,
    /// Created at or after `from` and at or before `to`, both to the millisecond (the
    /// precision of a job id's time).
    pub from: Option<SystemTime>,
    pub to: Option<SystemTime>,
    /// Only executions older than this one (the previous page's last job id).
    pub before: Option<JobId>,
    pub limit: usize,
}

impl ListQuery {
    /// Whether `e` passes every filter but the time range and the cursor.
    pub fn keeps(&self, e: &Execution) -> bool {
        self.flow.as_ref().is_none_or(|f| &e.flow == f)
            && self.project.as_ref().is_none_or(|p| &e.project == p)
            && (self.statuses.is_empty() || self.statuses.contains(&e.status))
            && self.trigger_kind.as_ref().is_none_or(|k| &e.trigger_kind == k)
    }
}

/// A filter over log records, oldest first (or newest first).
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub job_id: Option<JobId>,
    pub project: Option<String>,
    pub flow: Option<String>,
    pub flow_version: Option<String>,
    pub environment: Option<String>,
    pub step: Option<String>,
    pub connector: Option<String>,
    /// `run`, `accept` or a host event name (see [`LogRow::action`]).
    pub action: Option<String>,
    /// The lowest level kept.
    pub level: Option<Level>,
    /// Exactly these levels; empty: any (within `level`).
    pub levels: Vec<Level>,
    pub category: Option<String>,
    pub contains: Option<String>,
    /// Written at or after `from` and at or before `to` (both inclusive).
    pub from: Option<SystemTime>,
    pub to: Option<SystemTime>,
    pub newest_first: bool,
    /// Only records past this one in the query's order (the previous page's last key).
    pub after: Option<LogKey>,
    pub limit: usize,
}

impl LogQuery {
    /// Whether `l` passes every filter but the time range and the cursor.
    pub fn keeps(&self, l: &LogRow) -> bool {
        let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let is_opt = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
        self.job_id.is_none_or(|j| l.job_id == j)
            && is(&self.project, &l.project)
            && is(&self.flow, &l.flow)
            && is(&self.flow_version, &l.flow_version)
            && is(&self.environment, &l.environment)
            && is_opt(&self.step, &l.step)
            && is_opt(&self.connector, &l.connector)
            && is(&self.action, &l.action)
            && self.level.is_none_or(|lv| l.level >= lv)
            && (self.levels.is_empty() || self.levels.contains(&l.level))
            && is(&self.category, &l.category)
            && self.contains.as_ref().is_none_or(|c| l.message.contains(c.as_str()))
    }
}

/// Where a log record sits in the store: its time in ns since the epoch, job id and
/// sequence number; also the cursor of a log search, written `time-jobid-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogKey {
    pub time: u64,
    pub job: u128,
    pub seq: u32,
}

impl fmt::Display for LogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:032x}-{}", self.time, self.job, self.seq)
    }
}

impl FromStr for LogKey {
    type Err = String;
    fn from_str(s: &str) -> Result<LogKey, String> {
        let bad = || format!("{s:?} is not a log cursor (as given in next_cursor)");
        let mut parts = s.split('-');
        let (Some(t), Some(j), Some(q), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        Ok(LogKey {
            time: t.parse().map_err(|_| bad())?,
            job: u128::from_str_radix(j, 16).map_err(|_| bad())?,
            seq: q.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_id_made_at_a_time_sorts_within_that_millisecond() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123) + Duration::from_micros(456);
        let id = JobId::at(t);
        assert!(id >= JobId::lower_bound(t));
        assert!(id < JobId::lower_bound(t + Duration::from_millis(1)));
        assert_eq!(uuid::Uuid::from_u128(id.0).get_version_num(), 7);
        assert_ne!(JobId::at(t), id, "the low bits are random");
    }
}
