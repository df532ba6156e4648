//! Flow files: one trigger and an ordered list of steps, resolved against the daemon
//! config (connector names, limits) into a [`Flow`] that the executor runs without
//! looking at TOML again. This module holds what a flow is; [`resolve`] reads a file
//! into it with every key checked and every problem reported.

mod resolve;

pub use resolve::{header_control, toml_to_json};

use super::Location;
use super::daemon::StepLimits;
use super::diag::Place;
use super::template::Template;
use super::units::format_duration;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A validated flow.
#[derive(Debug, Clone, Serialize)]
pub struct Flow {
    pub name: String,
    pub project: String,
    pub description: Option<String>,
    /// The execution's allocated time; exceeding it makes the execution `rejected`.
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    /// Limits on how many executions run and how fast; `None`: pending → running.
    pub throttle: Option<Throttle>,
    pub trigger: Trigger,
    pub steps: Vec<Step>,
    /// A short hash of everything above: changes whenever the flow's behaviour may.
    #[serde(skip)]
    pub version: String,
    /// A short hash of the trigger: a stored payload fits the flow while it is unchanged.
    #[serde(skip)]
    pub trigger_fingerprint: String,
    #[serde(skip)]
    pub source: PathBuf,
    /// Where the flow is named (its `name`, else its file), for errors about the flow.
    #[serde(skip)]
    pub place: Option<Place>,
}

/// A flow's throttle: executions wait `queued` in the flow's queue for their turn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throttle {
    /// Executions of the flow running at once.
    pub max_concurrency: u32,
    /// Executions started per second, at most.
    pub rate: Option<f64>,
    /// Executions that may wait; past it, a webhook gets 429 and nothing is recorded.
    pub queue_capacity: u32,
    /// How long an execution may wait; past it, it is `rejected`.
    #[serde(with = "duration_text")]
    pub max_wait: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub connector: Option<ConnectorCall>,
    /// An HTTP trigger's `path` (for errors about the path).
    #[serde(skip)]
    pub place: Option<Place>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    Http {
        path: String,
        method: String,
        /// An HMAC-SHA256 signature the request must carry.
        signature: Option<Signature>,
        /// How long a request waits for the `respond` step (default: the server's).
        #[serde(with = "option_duration_text")]
        respond_timeout: Option<Duration>,
        /// What the body must be; with `json`, anything else is answered 400.
        #[serde(skip_serializing_if = "BodyKind::is_any")]
        body: BodyKind,
        /// The status a sender gets when the trigger connector drops its event.
        #[serde(skip_serializing_if = "is_default_drop_status")]
        drop_status: u16,
        /// Headers redacted from the stored payload besides the defaults.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        redact_headers: Vec<String>,
        /// Default-redacted headers the flow keeps.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        keep_headers: Vec<String>,
        /// Every header redacted from the stored payload (lower-case): `authorization`,
        /// `cookie` and the signature header unless kept, and `redact_headers`.
        #[serde(skip)]
        redacted: Vec<String>,
    },
    Schedule {
        cron: String,
        timezone: String,
        catch_up: CatchUp,
        overlap: Overlap,
    },
    Manual,
}

impl TriggerKind {
    pub fn name(&self) -> &'static str {
        match self {
            TriggerKind::Http { .. } => "http",
            TriggerKind::Schedule { .. } => "schedule",
            TriggerKind::Manual => "manual",
        }
    }
}

/// What a webhook flow takes as its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    /// Anything; a body sent with a JSON content type must be JSON.
    #[default]
    Any,
    /// JSON only, whatever the content type says (an empty body is not JSON).
    Json,
}

impl BodyKind {
    fn is_any(&self) -> bool {
        *self == BodyKind::Any
    }
}

/// A dropped event is answered `200` unless the flow says otherwise: senders (GitHub,
/// Stripe and the like) count any 2xx as delivered and retry or disable an endpoint
/// that answers errors, which a deliberately filtered event must not cause.
pub const DEFAULT_DROP_STATUS: u16 = 200;

fn is_default_drop_status(s: &u16) -> bool {
    *s == DEFAULT_DROP_STATUS
}

/// Headers redacted from stored trigger payloads unless a flow keeps them (with the
/// flow's signature header): what a sender authenticates with.
pub const DEFAULT_REDACTED_HEADERS: &[&str] = &["authorization", "cookie"];

/// `header` carries the hex HMAC-SHA256 of the body (optionally `sha256=`-prefixed),
/// keyed with the value of the environment variable `secret_env`.
#[derive(Debug, Clone, Serialize)]
pub struct Signature {
    pub header: String,
    pub secret_env: String,
    /// Read from the environment when the flow is loaded; never serialized.
    #[serde(skip)]
    pub secret: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    Skip,
    One,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    Allow,
    Skip,
    Queue,
}

/// A call to a connector: which one, its config, and where the config was written.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorCall {
    pub connector: String,
    /// The config as JSON, placeholders still unresolved (what `validate` sees).
    pub config: Value,
    #[serde(skip)]
    pub template: Template,
    /// The config's JSON text when it holds no placeholders: written once at load for
    /// every call, rather than for each.
    #[serde(skip)]
    pub literal_text: Option<Arc<str>>,
    #[serde(skip)]
    pub location: Option<Location>,
    /// The config's place in the file.
    #[serde(skip)]
    pub place: Option<Place>,
    /// Each config key's span (dotted paths, array items by index): a problem the
    /// connector reports at a path is shown at that key.
    #[serde(skip)]
    pub keys: Arc<Vec<(String, Range<usize>)>>,
}

impl ConnectorCall {
    /// An error about the config at `path` (dotted keys, as a connector reports it):
    /// at that key when the file has it, else at the closest enclosing key, else at the
    /// config.
    pub fn error_at(&self, path: &str, message: impl Into<String>) -> super::ConfigError {
        let message = message.into();
        let Some(place) = &self.place else {
            return super::ConfigError {
                location: self.location.clone(),
                ..super::ConfigError::new(message)
            };
        };
        let normalized = path.replace('[', ".").replace(']', "");
        let mut p = normalized.trim_matches('.');
        loop {
            if p.is_empty() {
                return place.error(message);
            }
            if let Some((_, span)) = self.keys.iter().find(|(k, _)| k == p) {
                return place.source.error(span.clone(), message);
            }
            p = p.rsplit_once('.').map_or("", |(head, _)| head);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub action: Action,
    pub on_error: OnError,
    pub retry: Option<RetryPolicy>,
    /// Earlier steps whose output this step's placeholders read.
    pub needs: BTreeSet<String>,
    /// The step's `name` in its file.
    #[serde(skip)]
    pub place: Option<Place>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Connector {
        /// Boxed: the other variants are a fraction of its size.
        call: Box<ConnectorCall>,
        limits: StepLimits,
    },
    Pause(Pause),
    Respond {
        status: u16,
        /// An object of header name to text (placeholders allowed).
        headers: Template,
        body: Template,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pause {
    #[serde(with = "duration_text")]
    For(Duration),
    UntilResumed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Fail,
    Continue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    #[serde(with = "duration_text")]
    pub backoff: Duration,
    #[serde(with = "duration_text")]
    pub max_backoff: Duration,
}

/// The longest a flow may wait for anything (a pause, a place in its throttle queue): far
/// inside what `Instant`, `SystemTime` and chrono can add to now.
pub const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);
/// The longest a retry backoff may be.
const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);
/// Throttle rates, in executions per second: one a little more than a day apart, up to a
/// rate whose interval is still a whole number of nanoseconds.
const RATE: std::ops::RangeInclusive<f64> = 0.00001..=1_000_000.0;

impl Flow {
    /// Whether a step of this flow answers the HTTP trigger.
    pub fn has_respond_step(&self) -> bool {
        self.steps.iter().any(|s| matches!(s.action, Action::Respond { .. }))
    }
}

mod option_duration_text {
    pub fn serialize<S: serde::Serializer>(d: &Option<std::time::Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }
}

mod duration_text {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }
}
