//! The daemon config (`flowd.toml`): environment, where flows live, the limits every step
//! gets by default and may not exceed, how long executions and log records are kept, and
//! the connectors flows may use (bundled ones by name, others by path) with what each is
//! granted beyond the sandbox's default.

use super::Location;
use super::diag::{ConfigErrors, SourceFile, parse_toml};
use super::http_grant::{self, HostRule, HttpGrant};
use super::units::{Bytes, Dur, format_bytes, format_duration};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The bundled connectors, available by these names.
pub const BUNDLED: &[&str] = &["log", "transform", "reshape", "http"];

/// Bundled connectors that cannot run without a grant, so the built-in config leaves
/// them out.
const NEEDS_GRANT: &[&str] = &["http"];

/// Wasm32 linear memory cannot exceed 4 GiB.
const WASM32_MAX_MEMORY: u64 = 4 << 30;

/// How long executions and log records are kept when the config says nothing.
const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
const MIN_RETENTION: Duration = Duration::from_secs(60);

/// A validated daemon config.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The file it came from; `None` for the built-in default.
    pub source: Option<PathBuf>,
    pub environment: String,
    /// The directory of flow files (`*.toml`).
    pub flows_dir: Option<PathBuf>,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    pub limits: Limits,
    /// Executions and log records older than this are pruned in the background.
    pub retention: Duration,
    pub server: Server,
    pub connectors: BTreeMap<String, ConnectorConfig>,
}

/// What `flowd serve` listens on and how it holds up under load and at shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The trigger listener (webhooks).
    pub listen: SocketAddr,
    /// The admin API listener.
    pub admin: SocketAddr,
    /// Where executions are recorded.
    pub data_dir: PathBuf,
    /// The largest webhook request body accepted.
    pub max_body: u64,
    /// How long a webhook waits for its flow's `respond` step by default.
    pub respond_timeout: Duration,
    /// How long running steps may finish after SIGTERM before the daemon exits.
    pub shutdown_grace: Duration,
    /// Executions that run at once, over all flows.
    pub workers: u32,
    /// Daemon log lines as JSON instead of text.
    pub log_json: bool,
    /// The time zone of calendar presets (`today`, `this_week`, …) in the admin API.
    pub timezone: chrono_tz::Tz,
    /// Bearer tokens of the admin API; without any, it answers only `/healthz`.
    pub tokens: Vec<super::tokens::AdminToken>,
    /// How long a client may take to send a request's head, from its first byte.
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive, once its head has.
    pub body_read_timeout: Duration,
    /// How long a connection may wait, between requests, for the next one.
    pub idle_timeout: Duration,
    /// Open connections per listener; more wait in the kernel's backlog.
    pub max_connections: u32,
}

impl Server {
    fn defaults(base: &Path) -> Server {
        Server {
            listen: "127.0.0.1:8080".parse().expect("a socket address"),
            admin: "127.0.0.1:8081".parse().expect("a socket address"),
            data_dir: base.join("data"),
            max_body: 1 << 20,
            respond_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            workers: 64,
            log_json: false,
            timezone: chrono_tz::UTC,
            tokens: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// Limits for one invocation of a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StepLimits {
    /// Wasmtime fuel: roughly one unit per WebAssembly instruction.
    pub fuel: u64,
    /// Wall time.
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    /// Bytes of linear memory.
    pub memory: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// What a step gets when it says nothing.
    pub step: StepLimits,
    /// What no step may exceed.
    pub max_step: StepLimits,
    pub flow_timeout: Duration,
    pub max_flow_timeout: Duration,
    /// The largest payload (trigger payload, step output) accepted, in bytes.
    pub max_payload: u64,
    /// Log records kept per invocation; the rest are counted and dropped.
    pub max_log_records: u32,
    /// Connector instances that may exist at once (sizes the instance pool).
    pub instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            step: StepLimits {
                fuel: 1_000_000_000,
                timeout: Duration::from_secs(10),
                memory: 64 << 20,
            },
            max_step: StepLimits {
                fuel: 100_000_000_000,
                timeout: Duration::from_secs(300),
                memory: 256 << 20,
            },
            flow_timeout: Duration::from_secs(300),
            max_flow_timeout: Duration::from_secs(3600),
            max_payload: 1 << 20,
            max_log_records: 1000,
            instances: 200,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub name: String,
    pub source: ConnectorSource,
    pub grants: Grants,
    pub location: Option<Location>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorSource {
    Bundled(String),
    File(PathBuf),
}

/// What a connector may reach beyond the default sandbox (clocks, random, stdio).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Environment variables the component sees.
    pub env: Vec<(String, String)>,
    /// Host directories preopened for the component.
    pub dirs: Vec<DirGrant>,
    /// Socket addresses the component may connect or bind to.
    pub sockets: Vec<SocketAddr>,
    /// Outbound HTTP (wasi:http); without it the component cannot import wasi:http.
    pub http: Option<std::sync::Arc<HttpGrant>>,
}

impl Grants {
    /// Whether a connector with these grants can change anything outside its sandbox:
    /// send a request, use a socket, write a file. One that cannot has no effect but its
    /// output and log records, so running it again after a crash is indistinguishable
    /// from running it once.
    pub fn reaches_out(&self) -> bool {
        self.http.is_some() || !self.sockets.is_empty() || self.dirs.iter().any(|d| d.writable)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    environment: Option<Spanned<String>>,
    flows: Option<Spanned<String>>,
    cache_dir: Option<Spanned<String>>,
    retention: Option<Spanned<Dur>>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    connectors: BTreeMap<String, Spanned<RawConnector>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    admin: Option<Spanned<String>>,
    data_dir: Option<String>,
    max_body: Option<Spanned<Bytes>>,
    respond_timeout: Option<Spanned<Dur>>,
    shutdown_grace: Option<Dur>,
    workers: Option<Spanned<u32>>,
    log_format: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    tokens: Vec<Spanned<super::tokens::RawToken>>,
    header_read_timeout: Option<Spanned<Dur>>,
    body_read_timeout: Option<Spanned<Dur>>,
    idle_timeout: Option<Spanned<Dur>>,
    max_connections: Option<Spanned<u32>>,
}

fn resolve_server(source: &SourceFile, base: &Path, raw: RawServer, errors: &mut ConfigErrors) -> Server {
    let mut s = Server::defaults(base);
    let mut addr = |v: &Option<Spanned<String>>, key: &str, into: &mut SocketAddr| {
        if let Some(a) = v {
            match a.get_ref().parse::<SocketAddr>() {
                Ok(parsed) => *into = parsed,
                Err(_) => errors.push(source.error(
                    a.span(),
                    format!(
                        "server.{key} \"{}\" is not an IP address with a port, such as \"127.0.0.1:8080\"",
                        a.get_ref()
                    ),
                )),
            }
        }
    };
    addr(&raw.listen, "listen", &mut s.listen);
    addr(&raw.admin, "admin", &mut s.admin);
    if let Some(d) = raw.data_dir {
        s.data_dir = base.join(d);
    }
    if let Some(b) = raw.max_body {
        s.max_body = b.get_ref().0;
        if s.max_body == 0 {
            errors.push(source.error(b.span(), "server.max_body must be more than 0"));
        }
    }
    if let Some(t) = raw.respond_timeout {
        s.respond_timeout = t.get_ref().0;
        if s.respond_timeout < Duration::from_millis(10) {
            errors.push(source.error(t.span(), "server.respond_timeout must be at least 10ms"));
        }
    }
    if let Some(g) = raw.shutdown_grace {
        s.shutdown_grace = g.0;
    }
    if let Some(w) = raw.workers {
        s.workers = *w.get_ref();
        if s.workers == 0 {
            errors.push(source.error(w.span(), "server.workers must be more than 0"));
        }
    }
    if let Some(f) = raw.log_format {
        match f.get_ref().as_str() {
            "text" => s.log_json = false,
            "json" => s.log_json = true,
            other => errors.push(source.error(
                f.span(),
                format!("server.log_format \"{other}\" is not \"text\" or \"json\""),
            )),
        }
    }
    if let Some(tz) = raw.timezone {
        match tz.get_ref().parse::<chrono_tz::Tz>() {
            Ok(parsed) => s.timezone = parsed,
            Err(_) => errors.push(source.error(
                tz.span(),
                format!(
                    "server.timezone \"{}\" is not an IANA time zone name, such as \"Europe/Berlin\" or \"UTC\"",
                    tz.get_ref()
                ),
            )),
        }
    }
    s.tokens = super::tokens::resolve(source, raw.tokens, errors);
    for (value, key, into) in [
        (
            raw.header_read_timeout,
            "header_read_timeout",
            &mut s.header_read_timeout,
        ),
        (raw.body_read_timeout, "body_read_timeout", &mut s.body_read_timeout),
        (raw.idle_timeout, "idle_timeout", &mut s.idle_timeout),
    ] {
        if let Some(t) = value {
            *into = t.get_ref().0;
            if !(CONNECTION_TIMEOUTS.0..=CONNECTION_TIMEOUTS.1).contains(into) {
                errors.push(source.error(
                    t.span(),
                    format!(
                        "server.{key} must be between {} and {}",
                        super::units::format_duration(CONNECTION_TIMEOUTS.0),
                        super::units::format_duration(CONNECTION_TIMEOUTS.1)
                    ),
                ));
            }
        }
    }
    if let Some(n) = raw.max_connections {
        s.max_connections = *n.get_ref();
        if !(1..=MAX_CONNECTIONS).contains(&s.max_connections) {
            errors.push(source.error(
                n.span(),
                format!("server.max_connections must be between 1 and {MAX_CONNECTIONS}"),
            ));
        }
    }
    s
}

/// The range of the listeners' header, body and idle timeouts.
const CONNECTION_TIMEOUTS: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(3600));

/// The most connections a listener may hold open.
const MAX_CONNECTIONS: u32 = 1_000_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    fuel: Option<Spanned<u64>>,
    timeout: Option<Spanned<Dur>>,
    memory: Option<Spanned<Bytes>>,
    max_fuel: Option<Spanned<u64>>,
    max_timeout: Option<Spanned<Dur>>,
    max_memory: Option<Spanned<Bytes>>,
    flow_timeout: Option<Spanned<Dur>>,
    max_flow_timeout: Option<Spanned<Dur>>,
    max_payload: Option<Spanned<Bytes>>,
    max_log_records: Option<Spanned<u32>>,
    instances: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnector {
    bundled: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    #[serde(default)]
    grants: RawGrants,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrants {
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    inherit_env: Vec<Spanned<String>>,
    #[serde(default)]
    dirs: Vec<Spanned<RawDir>>,
    #[serde(default)]
    sockets: Vec<Spanned<String>>,
    http: Option<Spanned<RawHttp>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    allow: Vec<Spanned<String>>,
    timeout: Option<Spanned<Dur>>,
    max_response: Option<Spanned<Bytes>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDir {
    host: Spanned<String>,
    guest: String,
    #[serde(default)]
    writable: bool,
}

impl DaemonConfig {
    /// The config used when none is given: every bundled connector that needs no grant,
    /// default limits.
    pub fn builtin() -> DaemonConfig {
        DaemonConfig {
            source: None,
            environment: "local".into(),
            flows_dir: None,
            cache_dir: default_cache_dir(),
            limits: Limits::default(),
            retention: DEFAULT_RETENTION,
            server: Server::defaults(Path::new(".")),
            connectors: BUNDLED
                .iter()
                .filter(|n| !NEEDS_GRANT.contains(n))
                .map(|n| {
                    let c = ConnectorConfig {
                        name: n.to_string(),
                        source: ConnectorSource::Bundled(n.to_string()),
                        grants: Grants::default(),
                        location: None,
                    };
                    (n.to_string(), c)
                })
                .collect(),
        }
    }

    /// Reads and validates a daemon config file, reporting every problem found.
    pub fn load(path: &Path) -> Result<DaemonConfig, ConfigErrors> {
        let source = SourceFile::read(path)?;
        Self::parse(&source)
    }

    pub fn parse(source: &SourceFile) -> Result<DaemonConfig, ConfigErrors> {
        let raw: RawDaemon = parse_toml(source)?;
        let mut errors = ConfigErrors::default();
        let base = source.path.parent().map(Path::to_path_buf).unwrap_or_default();

        let environment = match raw.environment {
            Some(env) => {
                check_name(source, &env, "environment", &mut errors);
                env.into_inner()
            }
            None => "default".into(),
        };
        let limits = resolve_limits(source, &raw.limits, &mut errors);
        let server = resolve_server(source, &base, raw.server, &mut errors);
        let retention = match raw.retention {
            Some(r) => {
                if r.get_ref().0 < MIN_RETENTION {
                    errors.push(source.error(r.span(), "retention must be at least 1m"));
                }
                r.into_inner().0
            }
            None => DEFAULT_RETENTION,
        };
        let mut connectors = BTreeMap::new();
        for (name, raw) in raw.connectors {
            let span = raw.span();
            let raw = raw.into_inner();
            if !valid_name(&name) {
                errors.push(source.error(span.clone(), format!("invalid connector name \"{name}\": {NAME_RULE}")));
            }
            let src = match (raw.bundled, raw.path) {
                (Some(b), None) => {
                    if !BUNDLED.contains(&b.get_ref().as_str()) {
                        errors.push(source.error(
                            b.span(),
                            format!(
                                "unknown bundled connector \"{}\"; bundled connectors are: {}",
                                b.get_ref(),
                                BUNDLED.join(", ")
                            ),
                        ));
                    }
                    ConnectorSource::Bundled(b.into_inner())
                }
                (None, Some(p)) => ConnectorSource::File(base.join(p.get_ref())),
                (Some(b), Some(_)) => {
                    errors.push(source.error(
                        b.span(),
                        format!("connector \"{name}\" sets both `bundled` and `path`; set one"),
                    ));
                    continue;
                }
                (None, None) => {
                    errors.push(source.error(
                        span,
                        format!("connector \"{name}\" needs `bundled = \"<name>\"` or `path = \"<file.wasm>\"`"),
                    ));
                    continue;
                }
            };
            let grants = resolve_grants(source, &base, raw.grants, &mut errors);
            let location = Some(source.at(span));
            connectors.insert(
                name.clone(),
                ConnectorConfig {
                    name,
                    source: src,
                    grants,
                    location,
                },
            );
        }
        let flows_dir = raw.flows.map(|f| base.join(f.get_ref()));
        let cache_dir = match raw.cache_dir {
            Some(c) => Some(base.join(c.get_ref())),
            None => default_cache_dir(),
        };
        errors.into_result(DaemonConfig {
            source: Some(source.path.clone()),
            environment,
            flows_dir,
            cache_dir,
            limits,
            retention,
            server,
            connectors,
        })
    }

    /// How error messages name this config.
    pub fn describe(&self) -> String {
        match &self.source {
            Some(p) => p.display().to_string(),
            None => "the built-in daemon config".into(),
        }
    }
}

/// `$XDG_CACHE_HOME/flowd`, else `~/.cache/flowd`.
fn default_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("flowd"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".cache/flowd"))
}

pub(crate) const NAME_RULE: &str = "use letters, digits, `_` and `-`, starting with a letter";

pub(crate) fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && s.len() <= 64
}

pub(crate) fn check_name(source: &SourceFile, name: &Spanned<String>, what: &str, errors: &mut ConfigErrors) {
    if !valid_name(name.get_ref()) {
        errors.push(source.error(
            name.span(),
            format!("invalid {what} \"{}\": {NAME_RULE} (at most 64)", name.get_ref()),
        ));
    }
}

fn resolve_limits(source: &SourceFile, raw: &RawLimits, errors: &mut ConfigErrors) -> Limits {
    let d = Limits::default();
    let get = |v: &Option<Spanned<u64>>, default: u64| v.as_ref().map_or(default, |s| *s.get_ref());
    let get_d = |v: &Option<Spanned<Dur>>, default: Duration| v.as_ref().map_or(default, |s| s.get_ref().0);
    let get_b = |v: &Option<Spanned<Bytes>>, default: u64| v.as_ref().map_or(default, |s| s.get_ref().0);
    let max_memory_given = raw.max_memory.is_some();
    let l = Limits {
        step: StepLimits {
            fuel: get(&raw.fuel, d.step.fuel),
            timeout: get_d(&raw.timeout, d.step.timeout),
            memory: get_b(
                &raw.memory,
                if max_memory_given {
                    d.step.memory.min(get_b(&raw.max_memory, 0))
                } else {
                    d.step.memory
                },
            ),
        },
        max_step: StepLimits {
            fuel: get(&raw.max_fuel, d.max_step.fuel.max(get(&raw.fuel, 0))),
            timeout: get_d(
                &raw.max_timeout,
                d.max_step.timeout.max(get_d(&raw.timeout, Duration::ZERO)),
            ),
            memory: get_b(&raw.max_memory, d.max_step.memory.max(get_b(&raw.memory, 0))),
        },
        flow_timeout: get_d(&raw.flow_timeout, d.flow_timeout),
        max_flow_timeout: get_d(
            &raw.max_flow_timeout,
            d.max_flow_timeout.max(get_d(&raw.flow_timeout, Duration::ZERO)),
        ),
        max_payload: get_b(&raw.max_payload, d.max_payload),
        max_log_records: raw.max_log_records.as_ref().map_or(d.max_log_records, |s| *s.get_ref()),
        instances: raw.instances.as_ref().map_or(d.instances, |s| *s.get_ref()),
    };
    let mut err = |span: Option<std::ops::Range<usize>>, msg: String| {
        let span = span.unwrap_or(0..0);
        errors.push(source.error(span, msg));
    };
    let span_u = |v: &Option<Spanned<u64>>| v.as_ref().map(|s| s.span());
    let span_d = |v: &Option<Spanned<Dur>>| v.as_ref().map(|s| s.span());
    let span_b = |v: &Option<Spanned<Bytes>>| v.as_ref().map(|s| s.span());
    if l.step.fuel == 0 {
        err(span_u(&raw.fuel), "limits.fuel must be more than 0".into());
    }
    if l.step.fuel > l.max_step.fuel {
        err(
            span_u(&raw.fuel).or(span_u(&raw.max_fuel)),
            format!(
                "limits.fuel ({}) is over limits.max_fuel ({})",
                l.step.fuel, l.max_step.fuel
            ),
        );
    }
    for (v, name) in [
        (&raw.timeout, "timeout"),
        (&raw.max_timeout, "max_timeout"),
        (&raw.flow_timeout, "flow_timeout"),
        (&raw.max_flow_timeout, "max_flow_timeout"),
    ] {
        if let Some(s) = v
            && s.get_ref().0 < Duration::from_millis(10)
        {
            err(Some(s.span()), format!("limits.{name} must be at least 10ms"));
        }
    }
    if l.step.timeout > l.max_step.timeout {
        err(
            span_d(&raw.timeout).or(span_d(&raw.max_timeout)),
            format!(
                "limits.timeout ({}) is over limits.max_timeout ({})",
                format_duration(l.step.timeout),
                format_duration(l.max_step.timeout)
            ),
        );
    }
    if l.flow_timeout > l.max_flow_timeout {
        err(
            span_d(&raw.flow_timeout).or(span_d(&raw.max_flow_timeout)),
            format!(
                "limits.flow_timeout ({}) is over limits.max_flow_timeout ({})",
                format_duration(l.flow_timeout),
                format_duration(l.max_flow_timeout)
            ),
        );
    }
    if l.max_step.memory > WASM32_MAX_MEMORY {
        err(
            span_b(&raw.max_memory),
            format!(
                "limits.max_memory ({}) is over the 4 GiB a 32-bit WebAssembly memory can address",
                format_bytes(l.max_step.memory)
            ),
        );
    }
    if l.step.memory < 64 << 10 {
        err(
            span_b(&raw.memory),
            "limits.memory must be at least 64 KiB (one WebAssembly page)".into(),
        );
    }
    if l.step.memory > l.max_step.memory {
        err(
            span_b(&raw.memory).or(span_b(&raw.max_memory)),
            format!(
                "limits.memory ({}) is over limits.max_memory ({})",
                format_bytes(l.step.memory),
                format_bytes(l.max_step.memory)
            ),
        );
    }
    if l.max_payload < 1024 {
        err(
            span_b(&raw.max_payload),
            "limits.max_payload must be at least 1 KiB".into(),
        );
    }
    if l.instances == 0 || l.instances > 10_000 {
        err(
            raw.instances.as_ref().map(|s| s.span()),
            format!("limits.instances must be between 1 and 10000, not {}", l.instances),
        );
    }
    l
}

fn resolve_grants(source: &SourceFile, base: &Path, raw: RawGrants, errors: &mut ConfigErrors) -> Grants {
    let mut env: Vec<(String, String)> = raw.env.into_iter().collect();
    for name in raw.inherit_env {
        match std::env::var(name.get_ref()) {
            Ok(v) => env.push((name.into_inner(), v)),
            Err(_) => errors.push(source.error(
                name.span(),
                format!(
                    "grants.inherit_env names \"{}\", which is not set in the daemon's environment",
                    name.get_ref()
                ),
            )),
        }
    }
    let mut dirs = Vec::new();
    for d in raw.dirs {
        let span = d.span();
        let d = d.into_inner();
        let host = base.join(d.host.get_ref());
        if !host.is_dir() {
            errors.push(source.error(
                d.host.span(),
                format!("grants.dirs: {} is not a directory", host.display()),
            ));
        }
        if !d.guest.starts_with('/') {
            errors.push(source.error(
                span,
                format!(
                    "grants.dirs: guest path \"{}\" must be absolute (start with `/`)",
                    d.guest
                ),
            ));
        }
        dirs.push(DirGrant {
            host,
            guest: d.guest,
            writable: d.writable,
        });
    }
    let mut sockets = Vec::new();
    for s in raw.sockets {
        match s.get_ref().parse::<SocketAddr>() {
            Ok(a) => sockets.push(a),
            Err(_) => errors.push(source.error(
                s.span(),
                format!(
                    "grants.sockets: \"{}\" is not an IP address with a port, such as \"127.0.0.1:5432\"",
                    s.get_ref()
                ),
            )),
        }
    }
    let http = raw.http.map(|h| std::sync::Arc::new(resolve_http(source, h, errors)));
    Grants {
        env,
        dirs,
        sockets,
        http,
    }
}

fn resolve_http(source: &SourceFile, raw: Spanned<RawHttp>, errors: &mut ConfigErrors) -> HttpGrant {
    let span = raw.span();
    let raw = raw.into_inner();
    if raw.allow.is_empty() {
        errors.push(source.error(
            span,
            "grants.http.allow is empty: list the origins the connector may call, such as \"api.example.com\"",
        ));
    }
    let mut allow = Vec::new();
    for entry in raw.allow {
        match HostRule::parse(entry.get_ref()) {
            Ok(rule) => allow.push(rule),
            Err(why) => errors.push(source.error(
                entry.span(),
                format!("grants.http.allow: \"{}\": {why}", entry.get_ref()),
            )),
        }
    }
    let timeout = raw.timeout.map_or(http_grant::DEFAULT_TIMEOUT, |t| {
        if t.get_ref().0 < Duration::from_millis(1) {
            errors.push(source.error(t.span(), "grants.http.timeout must be at least 1ms"));
        }
        t.into_inner().0
    });
    let max_response = raw.max_response.map_or(http_grant::DEFAULT_MAX_RESPONSE, |m| {
        if m.get_ref().0 == 0 {
            errors.push(source.error(m.span(), "grants.http.max_response must be more than 0"));
        }
        m.into_inner().0
    });
    HttpGrant {
        allow,
        timeout,
        max_response,
    }
}

mod duration_text {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }
}
