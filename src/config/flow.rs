//! Flow files: one trigger and an ordered list of steps. Parsed with every key checked,
//! then resolved against the daemon config (connector names, limits) into a [`Flow`]
//! that the executor runs without looking at TOML again.

use super::Location;
use super::daemon::{DaemonConfig, NAME_RULE, StepLimits, check_name, valid_name};
use super::diag::{ConfigErrors, SourceFile, parse_toml};
use super::template::{PlaceholderError, Scope, Template};
use super::units::{Bytes, Dur, format_bytes, format_duration, parse_duration};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use toml::Spanned;

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
    #[serde(skip)]
    pub location: Option<Location>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub action: Action,
    pub on_error: OnError,
    pub retry: Option<RetryPolicy>,
    /// Earlier steps whose output this step's placeholders read.
    pub needs: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Connector {
        call: ConnectorCall,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlowFile {
    flow: Spanned<RawFlow>,
    trigger: Spanned<RawTrigger>,
    #[serde(default)]
    steps: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    name: Option<Spanned<String>>,
    project: Option<Spanned<String>>,
    description: Option<String>,
    timeout: Option<Spanned<Dur>>,
    throttle: Option<Spanned<RawThrottle>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThrottle {
    max_concurrency: Option<Spanned<u32>>,
    rate: Option<Spanned<f64>>,
    queue_capacity: Option<Spanned<u32>>,
    max_wait: Option<Spanned<Dur>>,
}

fn resolve_throttle(source: &SourceFile, raw: RawThrottle, errors: &mut ConfigErrors) -> Throttle {
    let mut t = Throttle {
        max_concurrency: 1,
        rate: None,
        queue_capacity: 1000,
        max_wait: Duration::from_secs(60),
    };
    if let Some(m) = raw.max_concurrency {
        t.max_concurrency = *m.get_ref();
        if t.max_concurrency == 0 {
            errors.push(source.error(m.span(), "flow.throttle.max_concurrency must be at least 1"));
        }
    }
    if let Some(r) = raw.rate {
        let rate = *r.get_ref();
        if !(rate > 0.0 && rate.is_finite()) {
            errors.push(source.error(
                r.span(),
                format!("flow.throttle.rate must be a positive number of executions per second, not {rate}"),
            ));
        }
        t.rate = Some(rate);
    }
    if let Some(q) = raw.queue_capacity {
        t.queue_capacity = *q.get_ref();
        if t.queue_capacity == 0 {
            errors.push(source.error(q.span(), "flow.throttle.queue_capacity must be at least 1"));
        }
    }
    if let Some(w) = raw.max_wait {
        t.max_wait = w.get_ref().0;
        if t.max_wait < Duration::from_millis(10) {
            errors.push(source.error(w.span(), "flow.throttle.max_wait must be at least 10ms"));
        }
    }
    t
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    http: Option<Spanned<RawHttp>>,
    schedule: Option<Spanned<RawSchedule>>,
    manual: Option<Spanned<RawManual>>,
    connector: Option<Spanned<String>>,
    config: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    path: Spanned<String>,
    method: Option<Spanned<String>>,
    signature: Option<Spanned<RawSignature>>,
    respond_timeout: Option<Spanned<Dur>>,
    body: Option<BodyKind>,
    drop_status: Option<Spanned<u16>>,
    redact_headers: Option<Vec<Spanned<String>>>,
    keep_headers: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    header: String,
    secret_env: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    cron: Spanned<String>,
    timezone: Option<Spanned<String>>,
    catch_up: Option<CatchUp>,
    overlap: Option<Overlap>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManual {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Spanned<String>,
    connector: Option<Spanned<String>>,
    config: Option<Spanned<toml::Value>>,
    pause: Option<Spanned<String>>,
    respond: Option<Spanned<RawRespond>>,
    fuel: Option<Spanned<u64>>,
    timeout: Option<Spanned<Dur>>,
    memory: Option<Spanned<Bytes>>,
    on_error: Option<OnError>,
    retry: Option<Spanned<RawRetry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRespond {
    status: Option<Spanned<u16>>,
    headers: Option<Spanned<BTreeMap<String, String>>>,
    body: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: Spanned<u32>,
    backoff: Option<Dur>,
    max_backoff: Option<Dur>,
}

/// The steps before the one being resolved, for placeholder checks.
struct Earlier<'a>(&'a [String]);

impl Scope for Earlier<'_> {
    fn is_earlier_step(&self, name: &str) -> bool {
        self.0.iter().any(|s| s == name)
    }
    fn describe_earlier(&self) -> String {
        if self.0.is_empty() {
            "this is the first step".into()
        } else {
            format!("earlier steps: {}", self.0.join(", "))
        }
    }
}

impl Flow {
    /// Reads and validates a flow file against `daemon`, reporting every problem found.
    pub fn load(path: &Path, daemon: &DaemonConfig) -> Result<Flow, ConfigErrors> {
        let source = SourceFile::read(path)?;
        Self::parse(&source, daemon)
    }

    pub fn parse(source: &SourceFile, daemon: &DaemonConfig) -> Result<Flow, ConfigErrors> {
        let raw: RawFlowFile = parse_toml(source)?;
        let mut errors = ConfigErrors::default();
        let limits = &daemon.limits;

        let header = raw.flow.into_inner();
        let name = match header.name {
            Some(n) => {
                check_name(source, &n, "flow name", &mut errors);
                n.into_inner()
            }
            None => {
                let stem = source
                    .path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !valid_name(&stem) {
                    errors.push(source.error(
                        0..0,
                        format!(
                            "the file name \"{stem}\" is not a valid flow name ({NAME_RULE}); set `name` in [flow]"
                        ),
                    ));
                }
                stem
            }
        };
        let project = match header.project {
            Some(p) => {
                check_name(source, &p, "project", &mut errors);
                p.into_inner()
            }
            None => "default".into(),
        };
        let timeout = match header.timeout {
            Some(t) => {
                let d = t.get_ref().0;
                if d > limits.max_flow_timeout {
                    errors.push(source.error(
                        t.span(),
                        format!(
                            "flow timeout {} is over the daemon's max_flow_timeout ({})",
                            format_duration(d),
                            format_duration(limits.max_flow_timeout)
                        ),
                    ));
                } else if d < Duration::from_millis(10) {
                    errors.push(source.error(t.span(), "flow timeout must be at least 10ms"));
                }
                d
            }
            None => limits.flow_timeout,
        };

        let throttle = header
            .throttle
            .map(|t| resolve_throttle(source, t.into_inner(), &mut errors));
        let trigger = resolve_trigger(source, daemon, raw.trigger, &mut errors);

        if raw.steps.is_empty() {
            errors.push(source.error(0..0, "a flow needs at least one step: add a [[steps]] table"));
        }
        let mut steps: Vec<Step> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut seen: BTreeMap<String, Range<usize>> = BTreeMap::new();
        for raw_step in raw.steps {
            let span = raw_step.span();
            let raw_step = raw_step.into_inner();
            let step_name = raw_step.name.get_ref().clone();
            check_name(source, &raw_step.name, "step name", &mut errors);
            if seen.contains_key(&step_name) {
                let first = source.at(seen[&step_name].clone());
                errors.push(source.error(
                    raw_step.name.span(),
                    format!(
                        "duplicate step name \"{step_name}\" (first used at line {})",
                        first.line
                    ),
                ));
            } else {
                seen.insert(step_name.clone(), raw_step.name.span());
            }
            if let Some(step) = resolve_step(source, daemon, raw_step, span, &names, &mut errors) {
                steps.push(step);
            }
            names.push(step_name);
        }

        let mut flow = Flow {
            name,
            project,
            description: header.description,
            timeout,
            throttle,
            trigger,
            steps,
            version: String::new(),
            trigger_fingerprint: String::new(),
            source: source.path.clone(),
        };
        flow.version = short_hash(&serde_json::to_vec(&flow).expect("a flow serializes"));
        flow.trigger_fingerprint = short_hash(&serde_json::to_vec(&flow.trigger).expect("a trigger serializes"));
        errors.into_result(flow)
    }

    /// Whether a step of this flow answers the HTTP trigger.
    pub fn has_respond_step(&self) -> bool {
        self.steps.iter().any(|s| matches!(s.action, Action::Respond { .. }))
    }
}

/// `redact_headers` and `keep_headers` (lower-cased, checked) and the headers a flow's
/// stored payloads redact: the defaults and the signature header, less those kept, and
/// those added.
fn resolve_redaction(
    source: &SourceFile,
    redact: Vec<Spanned<String>>,
    keep: Vec<Spanned<String>>,
    signature: Option<&str>,
    errors: &mut ConfigErrors,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut defaults: Vec<String> = DEFAULT_REDACTED_HEADERS.iter().map(|h| h.to_string()).collect();
    defaults.extend(signature.map(str::to_string));
    let mut names = |key: &str, list: Vec<Spanned<String>>| -> Vec<(String, Range<usize>)> {
        list.into_iter()
            .filter_map(|h| {
                let name = h.get_ref().to_ascii_lowercase();
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    errors.push(source.error(
                        h.span(),
                        format!("trigger.http.{key}: \"{}\" is not a header name", h.get_ref()),
                    ));
                    return None;
                }
                Some((name, h.span()))
            })
            .collect()
    };
    let redact = names("redact_headers", redact);
    let keep = names("keep_headers", keep);
    for (name, span) in &keep {
        if redact.iter().any(|(r, _)| r == name) {
            errors.push(source.error(
                span.clone(),
                format!("trigger.http.keep_headers: \"{name}\" is also in redact_headers"),
            ));
        } else if !defaults.contains(name) {
            errors.push(source.error(
                span.clone(),
                format!(
                    "trigger.http.keep_headers: \"{name}\" is not redacted by default, so there is nothing to keep (the defaults: {}{})",
                    DEFAULT_REDACTED_HEADERS.join(", "),
                    signature.map(|s| format!(" and the signature header {s}")).unwrap_or_default()
                ),
            ));
        }
    }
    let keep: Vec<String> = keep.into_iter().map(|(n, _)| n).collect();
    let redact: Vec<String> = redact.into_iter().map(|(n, _)| n).collect();
    let mut redacted: Vec<String> = defaults.into_iter().filter(|d| !keep.contains(d)).collect();
    for r in &redact {
        if !redacted.contains(r) {
            redacted.push(r.clone());
        }
    }
    (redact, keep, redacted)
}

fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn resolve_trigger(
    source: &SourceFile,
    daemon: &DaemonConfig,
    raw: Spanned<RawTrigger>,
    errors: &mut ConfigErrors,
) -> Trigger {
    let span = raw.span();
    let raw = raw.into_inner();
    let count = raw.http.is_some() as u8 + raw.schedule.is_some() as u8 + raw.manual.is_some() as u8;
    if count != 1 {
        errors.push(source.error(
            span.clone(),
            "[trigger] needs exactly one of `http`, `schedule` or `manual`",
        ));
    }
    let kind = if let Some(http) = raw.http {
        let http = http.into_inner();
        let path = http.path.get_ref();
        if !path.starts_with('/') || path.contains(char::is_whitespace) || path.contains('?') || path.contains('#') {
            errors.push(source.error(
                http.path.span(),
                format!("trigger.http.path \"{path}\" must start with `/` and hold no spaces, `?` or `#`"),
            ));
        }
        let method = match &http.method {
            Some(m) => {
                let upper = m.get_ref().to_ascii_uppercase();
                if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&upper.as_str()) {
                    errors.push(source.error(
                        m.span(),
                        format!(
                            "trigger.http.method \"{}\" is not one of GET, POST, PUT, PATCH, DELETE",
                            m.get_ref()
                        ),
                    ));
                }
                upper
            }
            None => "POST".into(),
        };
        let signature = http.signature.map(|sig| {
            let sig = sig.into_inner();
            let name = sig.secret_env.get_ref();
            let secret = match std::env::var(name) {
                Ok(v) if !v.is_empty() => v.into_bytes(),
                _ => {
                    errors.push(source.error(
                        sig.secret_env.span(),
                        format!("trigger.http.signature.secret_env names \"{name}\", which is not set (or empty) in the daemon's environment"),
                    ));
                    Vec::new()
                }
            };
            Signature { header: sig.header.to_ascii_lowercase(), secret_env: sig.secret_env.into_inner(), secret }
        });
        let respond_timeout = http.respond_timeout.map(|t| {
            if t.get_ref().0 < Duration::from_millis(10) {
                errors.push(source.error(t.span(), "trigger.http.respond_timeout must be at least 10ms"));
            }
            t.get_ref().0
        });
        let drop_status = match http.drop_status {
            Some(s) => {
                let status = *s.get_ref();
                if !(200..300).contains(&status) && !(400..500).contains(&status) {
                    errors.push(source.error(
                        s.span(),
                        format!("trigger.http.drop_status {status} must be a 2xx or 4xx status"),
                    ));
                }
                status
            }
            None => DEFAULT_DROP_STATUS,
        };
        let (redact_headers, keep_headers, redacted) = resolve_redaction(
            source,
            http.redact_headers.unwrap_or_default(),
            http.keep_headers.unwrap_or_default(),
            signature.as_ref().map(|s| s.header.as_str()),
            errors,
        );
        TriggerKind::Http {
            path: http.path.into_inner(),
            method,
            signature,
            respond_timeout,
            body: http.body.unwrap_or_default(),
            drop_status,
            redact_headers,
            keep_headers,
            redacted,
        }
    } else if let Some(s) = raw.schedule {
        let s = s.into_inner();
        if let Err(e) = cron::Schedule::from_str(s.cron.get_ref()) {
            errors.push(source.error(s.cron.span(), format!(
                "invalid cron expression \"{}\": {} (expected 6 or 7 fields: sec min hour day-of-month month day-of-week [year])",
                s.cron.get_ref(),
                // The cron crate's message repeats the input with a caret line; keep its reason.
                e.to_string().lines().last().unwrap_or_default().trim()
            )));
        }
        let timezone = match s.timezone {
            Some(tz) => {
                if tz.get_ref().parse::<chrono_tz::Tz>().is_err() {
                    errors.push(source.error(
                        tz.span(),
                        format!(
                            "unknown time zone \"{}\": expected an IANA name such as \"Europe/Berlin\" or \"UTC\"",
                            tz.get_ref()
                        ),
                    ));
                }
                tz.into_inner()
            }
            None => "UTC".into(),
        };
        TriggerKind::Schedule {
            cron: s.cron.into_inner(),
            timezone,
            catch_up: s.catch_up.unwrap_or(CatchUp::Skip),
            overlap: s.overlap.unwrap_or(Overlap::Allow),
        }
    } else {
        TriggerKind::Manual
    };

    let connector = match (raw.connector, raw.config) {
        (Some(c), config) => {
            check_connector(source, daemon, &c, errors);
            let (value, location) = match &config {
                Some(cfg) => (toml_to_json(cfg.get_ref()), Some(source.at(cfg.span()))),
                None => (Value::Object(Default::default()), None),
            };
            if let Some(cfg) = &config
                && value_has_placeholder(&value)
            {
                errors.push(source.error(
                    cfg.span(),
                    "trigger config cannot hold placeholders: nothing has run yet when the trigger is called",
                ));
            }
            Some(ConnectorCall {
                connector: c.into_inner(),
                template: Template::Literal(value.clone()),
                config: value,
                location: location.or_else(|| Some(source.at(span.clone()))),
            })
        }
        (None, Some(cfg)) => {
            errors.push(source.error(
                cfg.span(),
                "trigger.config is set but trigger.connector is not: the config is for a trigger connector",
            ));
            None
        }
        (None, None) => None,
    };
    Trigger { kind, connector }
}

fn check_connector(source: &SourceFile, daemon: &DaemonConfig, name: &Spanned<String>, errors: &mut ConfigErrors) {
    if !daemon.connectors.contains_key(name.get_ref()) {
        let known: Vec<&str> = daemon.connectors.keys().map(String::as_str).collect();
        errors.push(source.error(
            name.span(),
            format!(
                "unknown connector \"{}\"; {} names: {}",
                name.get_ref(),
                daemon.describe(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
}

fn resolve_step(
    source: &SourceFile,
    daemon: &DaemonConfig,
    raw: RawStep,
    span: Range<usize>,
    earlier: &[String],
    errors: &mut ConfigErrors,
) -> Option<Step> {
    let name = raw.name.get_ref().clone();
    let kinds = raw.connector.is_some() as u8 + raw.pause.is_some() as u8 + raw.respond.is_some() as u8;
    if kinds != 1 {
        errors.push(source.error(
            span.clone(),
            format!("step \"{name}\" needs exactly one of `connector`, `pause` or `respond`"),
        ));
        return None;
    }
    let scope = Earlier(earlier);
    let mut needs = BTreeSet::new();
    let before = errors.len();

    let connector_only = |errors: &mut ConfigErrors, key: &str, s: Range<usize>| {
        errors.push(source.error(s, format!("step \"{name}\": `{key}` applies only to connector steps")));
    };
    if raw.connector.is_none() {
        if let Some(c) = &raw.config {
            connector_only(errors, "config", c.span());
        }
        if let Some(f) = &raw.fuel {
            connector_only(errors, "fuel", f.span());
        }
        if let Some(t) = &raw.timeout {
            connector_only(errors, "timeout", t.span());
        }
        if let Some(m) = &raw.memory {
            connector_only(errors, "memory", m.span());
        }
        if let Some(r) = &raw.retry {
            connector_only(errors, "retry", r.span());
        }
    }

    let action = if let Some(connector) = raw.connector {
        check_connector(source, daemon, &connector, errors);
        let (config, cfg_span) = match &raw.config {
            Some(c) => (toml_to_json(c.get_ref()), c.span()),
            None => (Value::Object(Default::default()), span.clone()),
        };
        let template = parse_template(source, &config, cfg_span.clone(), &scope, errors);
        template.dependencies(&mut needs);
        let limits = resolve_step_limits(source, daemon, &name, &raw.fuel, &raw.timeout, &raw.memory, errors);
        Action::Connector {
            call: ConnectorCall {
                connector: connector.into_inner(),
                config,
                template,
                location: Some(source.at(cfg_span)),
            },
            limits,
        }
    } else if let Some(pause) = raw.pause {
        let p = if pause.get_ref() == "until_resumed" {
            Pause::UntilResumed
        } else {
            match parse_duration(pause.get_ref()) {
                Ok(d) => Pause::For(d),
                Err(e) => {
                    errors.push(source.error(
                        pause.span(),
                        format!("step \"{name}\": pause: {e}, or \"until_resumed\""),
                    ));
                    Pause::For(Duration::ZERO)
                }
            }
        };
        Action::Pause(p)
    } else {
        let respond = raw.respond.expect("one of the three is set");
        let respond = respond.into_inner();
        let status = match respond.status {
            Some(s) if !(100..=599).contains(s.get_ref()) => {
                errors.push(source.error(
                    s.span(),
                    format!(
                        "step \"{name}\": respond.status {} is not an HTTP status (100–599)",
                        s.get_ref()
                    ),
                ));
                500
            }
            Some(s) => s.into_inner(),
            None => 200,
        };
        let body = match respond.body {
            Some(b) => {
                let t = parse_template(source, &toml_to_json(b.get_ref()), b.span(), &scope, errors);
                t.dependencies(&mut needs);
                t
            }
            None => Template::Literal(Value::Null),
        };
        let headers = match respond.headers {
            Some(h) => {
                let value = Value::Object(
                    h.get_ref()
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                );
                let t = parse_template(source, &value, h.span(), &scope, errors);
                t.dependencies(&mut needs);
                t
            }
            None => Template::Literal(Value::Object(Default::default())),
        };
        Action::Respond { status, headers, body }
    };

    let retry = raw.retry.map(|r| {
        let rs = r.span();
        let r = r.into_inner();
        let attempts = *r.attempts.get_ref();
        if attempts == 0 || attempts > 10 {
            errors.push(source.error(
                r.attempts.span(),
                format!("step \"{name}\": retry.attempts must be between 1 and 10, not {attempts}"),
            ));
        }
        let backoff = r.backoff.map_or(Duration::from_secs(1), |d| d.0);
        let max_backoff = r.max_backoff.map_or(Duration::from_secs(60), |d| d.0);
        if backoff > max_backoff {
            errors.push(source.error(
                rs,
                format!(
                    "step \"{name}\": retry.backoff ({}) is over retry.max_backoff ({})",
                    format_duration(backoff),
                    format_duration(max_backoff)
                ),
            ));
        }
        RetryPolicy {
            attempts,
            backoff,
            max_backoff,
        }
    });

    if errors.len() > before {
        return None;
    }
    Some(Step {
        name,
        action,
        on_error: raw.on_error.unwrap_or_default(),
        retry,
        needs,
    })
}

fn resolve_step_limits(
    source: &SourceFile,
    daemon: &DaemonConfig,
    step: &str,
    fuel: &Option<Spanned<u64>>,
    timeout: &Option<Spanned<Dur>>,
    memory: &Option<Spanned<Bytes>>,
    errors: &mut ConfigErrors,
) -> StepLimits {
    let l = &daemon.limits;
    let mut out = l.step;
    if let Some(f) = fuel {
        let v = *f.get_ref();
        if v == 0 {
            errors.push(source.error(f.span(), format!("step \"{step}\": fuel must be more than 0")));
        } else if v > l.max_step.fuel {
            errors.push(source.error(
                f.span(),
                format!(
                    "step \"{step}\": fuel {v} is over the daemon's max_fuel ({})",
                    l.max_step.fuel
                ),
            ));
        }
        out.fuel = v;
    }
    if let Some(t) = timeout {
        let v = t.get_ref().0;
        if v < Duration::from_millis(10) {
            errors.push(source.error(t.span(), format!("step \"{step}\": timeout must be at least 10ms")));
        } else if v > l.max_step.timeout {
            errors.push(source.error(
                t.span(),
                format!(
                    "step \"{step}\": timeout {} is over the daemon's max_timeout ({})",
                    format_duration(v),
                    format_duration(l.max_step.timeout)
                ),
            ));
        }
        out.timeout = v;
    }
    if let Some(m) = memory {
        let v = m.get_ref().0;
        if v < 64 << 10 {
            errors.push(source.error(
                m.span(),
                format!("step \"{step}\": memory must be at least 64 KiB (one WebAssembly page)"),
            ));
        } else if v > l.max_step.memory {
            errors.push(source.error(
                m.span(),
                format!(
                    "step \"{step}\": memory {} is over the daemon's max_memory ({})",
                    format_bytes(v),
                    format_bytes(l.max_step.memory)
                ),
            ));
        }
        out.memory = v;
    }
    out
}

/// Parses placeholders in `value`, locating each bad one inside `span` of the file.
fn parse_template(
    source: &SourceFile,
    value: &Value,
    span: Range<usize>,
    scope: &dyn Scope,
    errors: &mut ConfigErrors,
) -> Template {
    let mut problems: Vec<PlaceholderError> = Vec::new();
    let t = Template::parse(value, scope, &mut problems);
    for p in problems {
        let region = source.text.get(span.clone()).unwrap_or("");
        let at = region.find(p.text.as_str()).map_or(span.start, |i| span.start + i);
        errors.push(source.error(at..at, p.message));
    }
    t
}

fn value_has_placeholder(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("{{"),
        Value::Array(a) => a.iter().any(value_has_placeholder),
        Value::Object(m) => m.values().any(value_has_placeholder),
        _ => false,
    }
}

/// TOML to JSON; dates and times become RFC 3339 strings.
pub fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
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
