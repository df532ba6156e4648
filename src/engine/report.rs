//! What one execution did: its trigger, each step with its tries, timing, fuel, payloads
//! and log records. The CLI prints it; the store (a later layer) records it.

use crate::plugin::{Failure, LogRecord};
use crate::status::{ConnectorUse, ExecutionStatus, StepStatus};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Serialize)]
pub struct ExecutionReport {
    pub job_id: String,
    pub project: String,
    pub flow: String,
    pub flow_version: String,
    pub trigger_kind: &'static str,
    pub environment: String,
    pub attempt: u32,
    pub status: ExecutionStatus,
    #[serde(with = "crate::time_format")]
    pub started_at: SystemTime,
    #[serde(with = "crate::time_format")]
    pub finished_at: SystemTime,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    pub trigger: TriggerReport,
    pub steps: Vec<StepReport>,
    /// When a paused execution resumes on its own.
    #[serde(with = "crate::time_format::option", skip_serializing_if = "Option::is_none")]
    pub resume_at: Option<SystemTime>,
    /// What a `respond` step answered, if one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Arc<Value>>,
}

impl ExecutionReport {
    /// Steps that ran (not skipped, not pending).
    pub fn steps_executed(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| !matches!(s.status, StepStatus::Skipped | StepStatus::Pending))
            .count()
    }
}

/// What a `respond` step answered: its output (`status`, `headers`, `body`), and the
/// body's JSON text when it is an earlier step's whole output whose connector gave it.
#[derive(Debug, Clone)]
pub struct Responded {
    pub output: Arc<Value>,
    pub body_text: Option<Arc<str>>,
}

/// What a held-open webhook hears from its execution.
pub enum Reply {
    /// The `respond` step's output, durable with everything before it.
    Responded(Responded),
    /// The store refused the execution's first write, which would have recorded its
    /// acceptance: nothing of it is stored, so there is no execution to look at.
    NotRecorded(crate::store::StoreError),
}

/// The JSON text a value was made from (a component's output as it gave it), kept beside
/// it so that it is passed on and stored without being written out again. It belongs to
/// one value: a report's value replaced since (a resumed pause, an output reused by a
/// retry) has no text, and is written out when needed.
#[derive(Debug, Clone)]
pub struct Text {
    of: Arc<Value>,
    text: Arc<str>,
}

impl Text {
    pub fn new(of: &Arc<Value>, text: Arc<str>) -> Text {
        Text { of: of.clone(), text }
    }

    /// The text, while `value` is the value it was made for.
    fn of<'a>(this: &'a Option<Text>, value: &Option<Arc<Value>>) -> Option<&'a Arc<str>> {
        match (this, value) {
            (Some(t), Some(v)) if Arc::ptr_eq(&t.of, v) => Some(&t.text),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TriggerReport {
    pub kind: &'static str,
    /// The payload the flow started with; `None` when the trigger connector dropped it
    /// or failed.
    pub payload: Option<Arc<Value>>,
    /// The payload's JSON text, when it was written already (see [`Text`]).
    #[serde(skip)]
    pub payload_text: Option<Text>,
    pub dropped: bool,
    /// Why the event was dropped (the trigger connector's last log record), refused or
    /// failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<ConnectorUse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<Call>,
    /// The host's records of the trigger (see [`super::events`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<LogRecord>,
}

/// One invocation of a component (a step's try, or the trigger connector).
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    #[serde(with = "crate::time_format")]
    pub started_at: SystemTime,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    pub fuel_used: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    pub logs: Vec<LogRecord>,
    pub dropped_logs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub name: String,
    /// `connector`, `pause` or `respond`.
    pub kind: &'static str,
    pub status: StepStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<ConnectorUse>,
    #[serde(with = "crate::time_format::option", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<SystemTime>,
    #[serde(with = "crate::time_format::option", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<SystemTime>,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// Fuel over all tries.
    pub fuel_used: u64,
    /// The step's config with placeholders resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Arc<Value>>,
    /// The config holds no placeholders: every execution of the flow version has the
    /// same, stored once (see `PayloadKey::shared_config`).
    #[serde(skip)]
    pub config_shared: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Arc<Value>>,
    /// The output's JSON text as the connector gave it (see [`Text`]).
    #[serde(skip)]
    pub output_text: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// Why it was skipped or paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Every try of a connector step, the automatic retries included.
    pub tries: Vec<Call>,
    /// For a manual retry from the failed step: the attempt whose output this step reuses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<u32>,
    /// The host's records of the step: its retried tries and its final failure (see
    /// [`super::events`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<LogRecord>,
}

impl TriggerReport {
    /// The payload's JSON text, when known and still the payload's.
    pub fn payload_text(&self) -> Option<&Arc<str>> {
        Text::of(&self.payload_text, &self.payload)
    }
}

impl StepReport {
    /// The output's JSON text, when known and still the output's.
    pub fn output_text(&self) -> Option<&Arc<str>> {
        Text::of(&self.output_text, &self.output)
    }

    pub fn new(name: &str, kind: &'static str) -> StepReport {
        StepReport {
            name: name.to_string(),
            kind,
            status: StepStatus::Pending,
            connector: None,
            started_at: None,
            finished_at: None,
            duration: Duration::ZERO,
            fuel_used: 0,
            config: None,
            config_shared: false,
            output: None,
            output_text: None,
            error: None,
            note: None,
            tries: Vec::new(),
            reused_from: None,
            events: Vec::new(),
        }
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
