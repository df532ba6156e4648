//! The daemon config (`flowd.toml`): environment, where flows live, the limits every step
//! gets by default and may not exceed, how long executions and log records are kept, and
//! the connectors flows may use (bundled ones by name, others by path) with what each is
//! granted beyond the sandbox's default.

use super::Location;
use super::diag::{ConfigErrors, Place, SourceFile, did_you_mean};
use super::document::{self, Table};
use super::http_grant::{self, HostRule, HttpGrant};
use super::units::{format_bytes, format_duration};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The bundled connectors, available by these names.
/// The longest a webhook may be held open for its `respond` step (the server default
/// and each flow's own).
pub const MAX_RESPOND_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The shortest timeout of anything (a step, a flow, a webhook's respond, a wait).
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_millis(10);

pub const BUNDLED: &[&str] = &["log", "transform", "reshape", "http"];

/// Bundled connectors that cannot run without a grant, so the built-in config leaves
/// them out.
const NEEDS_GRANT: &[&str] = &["http"];

/// Wasm32 linear memory cannot exceed 4 GiB.
const WASM32_MAX_MEMORY: u64 = 4 << 30;

/// How long executions and log records are kept when the config says nothing.
const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
const MIN_RETENTION: Duration = Duration::from_secs(60);
const MIN_STEP_TIMEOUT: Duration = Duration::from_millis(10);

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
    /// The most the cache may hold; the least recently used files go first.
    pub cache_size: u64,
    pub limits: Limits,
    /// Executions and log records older than this are pruned in the background.
    pub retention: Duration,
    pub server: Server,
    /// Which database keeps the executions (`[store]`).
    pub store: super::StoreSection,
    pub connectors: BTreeMap<String, ConnectorConfig>,
    /// Where `flows`, `server.listen`, `server.admin` and `server.data_dir` are written.
    pub places: Places,
    /// Problems that stop `serve` (and `validate`) but not `flowd run`, which does not
    /// listen: admin tokens that are missing or too weak.
    pub serve_errors: ConfigErrors,
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
    /// The most verbose of flowd's own log records written (its dependencies' stop at
    /// `info`). Each successful execution's end is a `debug` record.
    pub log_level: tracing::Level,
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
            log_level: tracing::Level::INFO,
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
    pub place: Option<Place>,
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

/// The places in the daemon config that checks made later (by the loader) point at.
#[derive(Debug, Clone, Default)]
pub struct Places {
    pub flows: Option<Place>,
    pub listen: Option<Place>,
    pub admin: Option<Place>,
    pub data_dir: Option<Place>,
}

/// Bounds of the daemon config's values: what the runtime can represent, with room.
const MAX_STEP_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const MAX_FLOW_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);
/// Well inside `SystemTime` arithmetic and the 48-bit millisecond time of job ids.
const MAX_RETENTION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const MAX_GRACE: Duration = Duration::from_secs(3600);
/// wasmtime keeps fuel in an `i64`.
const MAX_FUEL: u64 = 1_000_000_000_000_000_000;
pub(crate) const MIN_MEMORY: u64 = 64 << 10;
const MAX_BODY: u64 = 1 << 30;
const MAX_PAYLOAD: u64 = 1 << 30;
const MAX_HTTP_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The range of the listeners' header, body and idle timeouts.
const CONNECTION_TIMEOUTS: std::ops::RangeInclusive<Duration> = Duration::from_millis(100)..=Duration::from_secs(3600);
/// The most connections a listener may hold open.
const MAX_CONNECTIONS: u64 = 1_000_000;

fn resolve_server(
    t: Option<Table>,
    base: &Path,
    errors: &mut ConfigErrors,
    places: &mut Places,
    serve_errors: &mut ConfigErrors,
) -> Server {
    let mut s = Server::defaults(base);
    let Some(mut t) = t else {
        return s;
    };
    let source = t.source;
    for (key, into, place) in [
        ("listen", &mut s.listen, &mut places.listen),
        ("admin", &mut s.admin, &mut places.admin),
    ] {
        if let Some(a) = t.string(key, errors) {
            *place = Some(t.place(a.span()));
            match a.get_ref().parse::<SocketAddr>() {
                Ok(parsed) => *into = parsed,
                Err(_) => errors.push(
                    source
                        .error(
                            a.span(),
                            format!("server.{key} \"{}\" is not an IP address with a port", a.get_ref()),
                        )
                        .with_help(if a.get_ref().starts_with("localhost") {
                            "write the address, such as \"127.0.0.1:8080\" (names are not resolved)"
                        } else {
                            "write it as \"127.0.0.1:8080\" or \"[::1]:8080\""
                        }),
                ),
            }
        }
    }
    if let Some(d) = t.string("data_dir", errors) {
        places.data_dir = Some(t.place(d.span()));
        s.data_dir = base.join(d.get_ref());
    }
    if let Some(b) = t.bytes("max_body", 1..=MAX_BODY, errors) {
        s.max_body = b.into_inner();
    }
    if let Some(r) = t.duration("respond_timeout", MIN_TIMEOUT..=MAX_RESPOND_TIMEOUT, errors) {
        s.respond_timeout = r.into_inner();
    }
    if let Some(g) = t.duration("shutdown_grace", Duration::ZERO..=MAX_GRACE, errors) {
        s.shutdown_grace = g.into_inner();
    }
    if let Some(w) = t.int("workers", 1..=100_000, errors) {
        s.workers = w.into_inner() as u32;
    }
    if let Some(f) = t.choice("log_format", &["text", "json"], errors) {
        s.log_json = *f.get_ref() == "json";
    }
    if let Some(l) = t.choice("log_level", &["error", "warn", "info", "debug", "trace"], errors) {
        s.log_level = l.get_ref().parse().expect("a level tracing knows");
    }
    if let Some(tz) = t.string("timezone", errors) {
        match tz.get_ref().parse::<chrono_tz::Tz>() {
            Ok(parsed) => s.timezone = parsed,
            Err(_) => {
                let mut e = source.error(
                    tz.span(),
                    format!(
                        "server.timezone \"{}\" is not an IANA time zone name, such as \"Europe/Berlin\" or \"UTC\"",
                        tz.get_ref()
                    ),
                );
                if let Some(h) = did_you_mean(tz.get_ref(), chrono_tz::TZ_VARIANTS.iter().map(|z| z.name())) {
                    e = e.with_help(h);
                }
                errors.push(e);
            }
        }
    }
    if let Some(d) = t.duration("header_read_timeout", CONNECTION_TIMEOUTS, errors) {
        s.header_read_timeout = d.into_inner();
    }
    if let Some(d) = t.duration("body_read_timeout", CONNECTION_TIMEOUTS, errors) {
        s.body_read_timeout = d.into_inner();
    }
    if let Some(d) = t.duration("idle_timeout", CONNECTION_TIMEOUTS, errors) {
        s.idle_timeout = d.into_inner();
    }
    if let Some(n) = t.int("max_connections", 1..=MAX_CONNECTIONS, errors) {
        s.max_connections = n.into_inner() as u32;
    }
    let tokens = t.tables("tokens", errors);
    s.tokens = super::tokens::resolve(tokens, errors, serve_errors);
    t.finish(errors);
    s
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
            cache_size: DEFAULT_CACHE_SIZE,
            limits: Limits::default(),
            retention: DEFAULT_RETENTION,
            server: Server::defaults(Path::new(".")),
            store: super::StoreSection::default(),
            places: Places::default(),
            serve_errors: ConfigErrors::default(),
            connectors: BUNDLED
                .iter()
                .filter(|n| !NEEDS_GRANT.contains(n))
                .map(|n| {
                    let c = ConnectorConfig {
                        name: n.to_string(),
                        source: ConnectorSource::Bundled(n.to_string()),
                        grants: Grants::default(),
                        location: None,
                        place: None,
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
        let doc = document::parse(source)?;
        let mut errors = ConfigErrors::default();
        let mut serve_errors = ConfigErrors::default();
        let mut places = Places::default();
        let base = source.path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut root = Table::root(source, &doc);

        let environment = match root.string("environment", &mut errors) {
            Some(env) => {
                check_name(source, &env, "environment", &mut errors);
                env.into_inner()
            }
            None => "default".into(),
        };
        let flows_dir = root.string("flows", &mut errors).map(|f| {
            places.flows = Some(root.place(f.span()));
            base.join(f.get_ref())
        });
        let cache_dir = match root.string("cache_dir", &mut errors) {
            Some(c) => Some(base.join(c.get_ref())),
            None => default_cache_dir(),
        };
        let cache_size = root
            .bytes("cache_size", MIN_CACHE_SIZE..=MAX_CACHE_SIZE, &mut errors)
            .map_or(DEFAULT_CACHE_SIZE, Spanned::into_inner);
        let retention = root
            .duration("retention", MIN_RETENTION..=MAX_RETENTION, &mut errors)
            .map_or(DEFAULT_RETENTION, Spanned::into_inner);
        let server_table = root.table("server", &mut errors);
        let server = resolve_server(server_table, &base, &mut errors, &mut places, &mut serve_errors);
        let store = super::store::resolve(root.table("store", &mut errors), &mut errors, &mut serve_errors);
        let limits = resolve_limits(root.table("limits", &mut errors), &mut errors);
        let mut connectors = BTreeMap::new();
        if let Some(mut table) = root.table("connectors", &mut errors) {
            let entries: Vec<_> = table.entries().collect();
            for (name, node) in entries {
                let name_span = name.span();
                let name = name.into_inner().to_string();
                if !valid_name(&name) {
                    errors.push(source.error(
                        name_span.clone(),
                        format!("invalid connector name \"{name}\": {NAME_RULE}"),
                    ));
                }
                let Some(t) = table.entry_table(&name, node, &mut errors) else {
                    continue;
                };
                if let Some(c) = resolve_connector(t, &name, name_span, &base, &mut errors) {
                    connectors.insert(name, c);
                }
            }
            table.finish(&mut errors);
        }
        root.finish(&mut errors);
        if !errors.is_empty() {
            // The file is refused anyway: report everything in it at once.
            errors.extend(std::mem::take(&mut serve_errors));
        }
        errors.into_result(DaemonConfig {
            source: Some(source.path.clone()),
            environment,
            flows_dir,
            cache_dir,
            cache_size,
            limits,
            retention,
            server,
            store,
            connectors,
            places,
            serve_errors,
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

const DEFAULT_CACHE_SIZE: u64 = 1 << 30;
const MIN_CACHE_SIZE: u64 = 1 << 20;
const MAX_CACHE_SIZE: u64 = 1 << 40;

/// `$XDG_CACHE_HOME/flowd`, else `~/.cache/flowd`.
fn default_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("flowd"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".cache/flowd"))
}

pub(crate) const NAME_RULE: &str = "use ASCII letters, digits, `_` and `-`, starting with a letter";

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

fn resolve_connector(
    mut t: Table,
    name: &str,
    name_span: std::ops::Range<usize>,
    base: &Path,
    errors: &mut ConfigErrors,
) -> Option<ConnectorConfig> {
    let source = t.source;
    let bundled = t.string("bundled", errors);
    let path = t.string("path", errors);
    let grants = t.table("grants", errors);
    let grants = grants.map(|g| resolve_grants(g, base, errors)).unwrap_or_default();
    t.finish(errors);
    let src = match (bundled, path) {
        (Some(b), None) => {
            if !BUNDLED.contains(&b.get_ref().as_str()) {
                let mut e = source.error(
                    b.span(),
                    format!(
                        "unknown bundled connector \"{}\"; bundled connectors are: {}",
                        b.get_ref(),
                        BUNDLED.join(", ")
                    ),
                );
                if let Some(h) = did_you_mean(b.get_ref(), BUNDLED.iter().copied()) {
                    e = e.with_help(h);
                }
                errors.push(e);
            }
            ConnectorSource::Bundled(b.into_inner())
        }
        (None, Some(p)) => ConnectorSource::File(base.join(p.get_ref())),
        (Some(b), Some(_)) => {
            errors.push(source.error(
                b.span(),
                format!("connector \"{name}\" sets both `bundled` and `path`; set one"),
            ));
            return None;
        }
        (None, None) => {
            // A `bundled` or `path` that is not a string was reported as such.
            if !t.has("bundled") && !t.has("path") {
                errors.push(
                    source
                        .error(name_span, format!("connector \"{name}\" needs `bundled` or `path`"))
                        .with_help(format!(
                            "add `bundled = \"<name>\"` (one of {}) or `path = \"<file.wasm>\"`",
                            BUNDLED.join(", ")
                        )),
                );
            }
            return None;
        }
    };
    let place = t.place(t.span.clone());
    Some(ConnectorConfig {
        name: name.to_string(),
        source: src,
        grants,
        location: Some(place.location()),
        place: Some(place),
    })
}

fn resolve_limits(t: Option<Table>, errors: &mut ConfigErrors) -> Limits {
    let d = Limits::default();
    let Some(mut t) = t else {
        return d;
    };
    let fuel = t.int("fuel", 1..=MAX_FUEL, errors);
    let timeout = t.duration("timeout", MIN_STEP_TIMEOUT..=MAX_STEP_TIMEOUT, errors);
    let memory = t.bytes("memory", MIN_MEMORY..=WASM32_MAX_MEMORY, errors);
    let max_fuel = t.int("max_fuel", 1..=MAX_FUEL, errors);
    let max_timeout = t.duration("max_timeout", MIN_STEP_TIMEOUT..=MAX_STEP_TIMEOUT, errors);
    let max_memory = t.bytes("max_memory", MIN_MEMORY..=WASM32_MAX_MEMORY, errors);
    let flow_timeout = t.duration("flow_timeout", MIN_STEP_TIMEOUT..=MAX_FLOW_TIMEOUT, errors);
    let max_flow_timeout = t.duration("max_flow_timeout", MIN_STEP_TIMEOUT..=MAX_FLOW_TIMEOUT, errors);
    let max_payload = t.bytes("max_payload", 1024..=MAX_PAYLOAD, errors);
    let max_log_records = t.int("max_log_records", 0..=1_000_000, errors);
    let instances = t.int("instances", 1..=10_000, errors);
    let source = t.source;
    t.finish(errors);

    let v = |x: &Option<Spanned<u64>>| x.as_ref().map(|s| *s.get_ref());
    let dv = |x: &Option<Spanned<Duration>>| x.as_ref().map(|s| *s.get_ref());
    // An unset cap grows to the default it caps, and an unset default shrinks to its cap.
    let step = StepLimits {
        fuel: v(&fuel).unwrap_or(d.step.fuel.min(v(&max_fuel).unwrap_or(u64::MAX))),
        timeout: dv(&timeout).unwrap_or(d.step.timeout.min(dv(&max_timeout).unwrap_or(Duration::MAX))),
        memory: v(&memory).unwrap_or(d.step.memory.min(v(&max_memory).unwrap_or(u64::MAX))),
    };
    let max_step = StepLimits {
        fuel: v(&max_fuel).unwrap_or(d.max_step.fuel.max(step.fuel)),
        timeout: dv(&max_timeout).unwrap_or(d.max_step.timeout.max(step.timeout)),
        memory: v(&max_memory).unwrap_or(d.max_step.memory.max(step.memory)),
    };
    let flow = dv(&flow_timeout).unwrap_or(d.flow_timeout.min(dv(&max_flow_timeout).unwrap_or(Duration::MAX)));
    let l = Limits {
        step,
        max_step,
        flow_timeout: flow,
        max_flow_timeout: dv(&max_flow_timeout).unwrap_or(d.max_flow_timeout.max(flow)),
        max_payload: v(&max_payload).unwrap_or(d.max_payload),
        max_log_records: v(&max_log_records).map_or(d.max_log_records, |n| n as u32),
        instances: v(&instances).map_or(d.instances, |n| n as u32),
    };
    let over = |value: Option<std::ops::Range<usize>>, cap: Option<std::ops::Range<usize>>, msg: String| {
        let mut e = source.error(value.or(cap.clone()).unwrap_or(0..0), msg);
        if let Some(c) = cap {
            e = e.with_related(source.related(c, "the cap is set here"));
        }
        e
    };
    let span = |x: &Option<Spanned<u64>>| x.as_ref().map(|s| s.span());
    let dspan = |x: &Option<Spanned<Duration>>| x.as_ref().map(|s| s.span());
    if l.step.fuel > l.max_step.fuel {
        errors.push(over(
            span(&fuel),
            span(&max_fuel),
            format!(
                "limits.fuel ({}) is over limits.max_fuel ({})",
                l.step.fuel, l.max_step.fuel
            ),
        ));
    }
    if l.step.timeout > l.max_step.timeout {
        errors.push(over(
            dspan(&timeout),
            dspan(&max_timeout),
            format!(
                "limits.timeout ({}) is over limits.max_timeout ({})",
                format_duration(l.step.timeout),
                format_duration(l.max_step.timeout)
            ),
        ));
    }
    if l.flow_timeout > l.max_flow_timeout {
        errors.push(over(
            dspan(&flow_timeout),
            dspan(&max_flow_timeout),
            format!(
                "limits.flow_timeout ({}) is over limits.max_flow_timeout ({})",
                format_duration(l.flow_timeout),
                format_duration(l.max_flow_timeout)
            ),
        ));
    }
    if l.step.memory > l.max_step.memory {
        errors.push(over(
            span(&memory),
            span(&max_memory),
            format!(
                "limits.memory ({}) is over limits.max_memory ({})",
                format_bytes(l.step.memory),
                format_bytes(l.max_step.memory)
            ),
        ));
    }
    l
}

fn resolve_grants(mut t: Table, base: &Path, errors: &mut ConfigErrors) -> Grants {
    let source = t.source;
    let env_map = t.value::<BTreeMap<String, String>>("env", "a table of variable names to text", errors);
    let inherit = t.strings("inherit_env", errors);
    let dir_tables = t.tables("dirs", errors);
    let sockets_raw = t.strings("sockets", errors);
    let http = t.table("http", errors);
    let mut env: Vec<(String, String)> = env_map
        .map(|m| m.into_inner().into_iter().collect())
        .unwrap_or_default();
    for name in inherit.unwrap_or_default() {
        match std::env::var(name.get_ref()) {
            Ok(v) => env.push((name.get_ref().clone(), v)),
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
    for mut d in dir_tables {
        let host = d.string("host", errors);
        let guest = d.string("guest", errors);
        let writable = d.boolean("writable", errors).is_some_and(|w| *w.get_ref());
        for key in ["host", "guest"] {
            if !d.has(key) {
                errors.push(source.error(d.span.clone(), format!("grants.dirs: each directory needs `{key}`")));
            }
        }
        d.finish(errors);
        let (Some(host), Some(guest)) = (host, guest) else {
            continue;
        };
        let host_path = base.join(host.get_ref());
        if !host_path.is_dir() {
            errors.push(source.error(
                host.span(),
                format!("grants.dirs: {} is not a directory", host_path.display()),
            ));
        }
        if !guest.get_ref().starts_with('/') {
            errors.push(source.error(
                guest.span(),
                format!(
                    "grants.dirs: guest path \"{}\" must be absolute (start with `/`)",
                    guest.get_ref()
                ),
            ));
        }
        dirs.push(DirGrant {
            host: host_path,
            guest: guest.into_inner(),
            writable,
        });
    }
    let mut sockets = Vec::new();
    for s in sockets_raw.unwrap_or_default() {
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
    let http = http.map(|h| std::sync::Arc::new(resolve_http(h, errors)));
    t.finish(errors);
    Grants {
        env,
        dirs,
        sockets,
        http,
    }
}

fn resolve_http(mut t: Table, errors: &mut ConfigErrors) -> HttpGrant {
    let source = t.source;
    let allow_node = t.get("allow");
    let timeout = t.duration("timeout", Duration::from_millis(1)..=MAX_HTTP_TIMEOUT, errors);
    let max_response = t.bytes("max_response", 1..=MAX_BODY, errors);
    let mut allow = Vec::new();
    match allow_node.map(|n| (n, n.get_ref())) {
        Some((n, toml::de::DeValue::Array(items))) => {
            if items.is_empty() {
                errors.push(
                    source
                        .error(n.span(), "grants.http.allow is empty")
                        .with_help("list the origins the connector may call, such as \"api.example.com\""),
                );
            }
            for item in items.iter() {
                match item.get_ref().as_str() {
                    Some(text) => match HostRule::parse(text) {
                        Ok(rule) => allow.push(rule),
                        Err(why) => {
                            errors.push(source.error(item.span(), format!("grants.http.allow: \"{text}\": {why}")))
                        }
                    },
                    None => errors.push(source.error(item.span(), "grants.http.allow: each entry must be a string")),
                }
            }
        }
        Some((n, _)) => errors.push(source.error(n.span(), "grants.http.allow must be an array of origins")),
        None => errors.push(
            source
                .error(t.span.clone(), "grants.http needs `allow`")
                .with_help("list the origins the connector may call: `allow = [\"api.example.com\"]`"),
        ),
    }
    t.finish(errors);
    HttpGrant {
        allow,
        timeout: timeout.map_or(http_grant::DEFAULT_TIMEOUT, Spanned::into_inner),
        max_response: max_response.map_or(http_grant::DEFAULT_MAX_RESPONSE, Spanned::into_inner),
    }
}

mod duration_text {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }
}
