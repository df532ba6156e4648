//! Loading a whole setup: the daemon config's connectors (compiled, import-checked,
//! linked) and its flows, each step's config validated by its own connector, and the checks
//! that need the whole set (flow names, webhook paths, listeners, the data directory,
//! admin tokens). `serve`, `validate`, reload, `run`, offline resume/retry and the retry
//! view all load through here, so what one accepts the others accept. Every problem is
//! collected rather than stopping at the first.

use crate::config::{Action, ConfigError, ConfigErrors, DaemonConfig, Flow, TriggerKind, flow_files};
use crate::plugin::{Registry, Runtime, World};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a setup is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `flowd serve` and reload: everything, the listeners and admin tokens included.
    Serve,
    /// `flowd validate`: exactly what `Serve` checks, so the two always agree.
    Validate,
    /// Offline resume and retry, the retry view: connectors and flows, nothing that only
    /// a listening daemon needs.
    Offline,
}

/// The loaded flows, by name and by webhook path.
#[derive(Default)]
pub struct FlowSet {
    pub by_name: HashMap<String, Arc<Flow>>,
    pub by_path: HashMap<String, Arc<Flow>>,
}

/// A loaded setup: every connector, and every flow fully validated.
pub struct Setup {
    pub registry: Registry,
    pub flows: FlowSet,
}

/// Why a setup did not load: every problem, and how many flow files were valid.
#[derive(Debug, Default)]
pub struct Failed {
    pub errors: ConfigErrors,
    pub flows: usize,
    pub valid: usize,
}

impl Failed {
    /// `1 of 3 flows valid` (nothing when there were no flow files).
    pub fn summary(&self) -> String {
        if self.flows == 0 {
            return String::new();
        }
        format!(
            "{} of {} flow{} valid",
            self.valid,
            self.flows,
            if self.flows == 1 { "" } else { "s" }
        )
    }
}

impl From<ConfigErrors> for Failed {
    fn from(errors: ConfigErrors) -> Failed {
        Failed {
            errors,
            ..Failed::default()
        }
    }
}

/// Loads the connectors and flows of `config` (and the flow files in `extra`, which
/// `validate` accepts), checking everything `purpose` needs.
pub async fn load(config: &DaemonConfig, extra: &[PathBuf], purpose: Purpose) -> Result<Setup, Failed> {
    let mut errors = ConfigErrors::default();
    if purpose != Purpose::Offline {
        errors.extend(config.serve_errors.clone());
        check_listeners(config, &mut errors);
        check_data_dir(config, &mut errors);
    }
    let registry = load_registry(config, &mut errors)?;
    let mut files = Vec::new();
    if let Some(dir) = &config.flows_dir {
        let (found, e) = flow_files(dir, config.places.flows.as_ref());
        files.extend(found);
        errors.extend(e);
    }
    files.extend(extra.iter().cloned());
    let (flows, flow_errors) = load_flow_files(&registry, config, &files).await;
    errors.extend(flow_errors);
    let valid = flows.len();
    let set = flow_set(flows, &mut errors);
    match errors.into_result(set) {
        Ok(flows) => Ok(Setup { registry, flows }),
        Err(errors) => Err(Failed {
            errors,
            flows: files.len(),
            valid,
        }),
    }
}

/// Loads one flow file and only the connectors it uses, for `flowd run` (which neither
/// listens nor reads the flows directory).
pub async fn load_one(mut config: DaemonConfig, file: &Path) -> Result<(Registry, Flow, DaemonConfig), ConfigErrors> {
    let flow = Flow::load(file, &config)?;
    let used: Vec<&str> = flow
        .trigger
        .connector
        .iter()
        .map(|c| c.connector.as_str())
        .chain(flow.steps.iter().filter_map(|s| match &s.action {
            Action::Connector { call, .. } => Some(call.connector.as_str()),
            _ => None,
        }))
        .collect();
    config.connectors.retain(|name, _| used.contains(&name.as_str()));
    let mut errors = ConfigErrors::default();
    let registry = load_registry(&config, &mut errors).map_err(|f| f.errors)?;
    errors.extend(validate_with_connectors(&registry, &flow).await);
    errors.into_result((registry, flow, config))
}

/// Loads the runtime and every connector of `config`; a connector that fails is reported
/// at its place in the daemon config.
fn load_registry(config: &DaemonConfig, errors: &mut ConfigErrors) -> Result<Registry, Failed> {
    let runtime = match Runtime::new(config) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            errors.push(ConfigError::new(format!("cannot start the WebAssembly runtime: {e:#}")));
            return Err(Failed::from(std::mem::take(errors)));
        }
    };
    let (registry, failed) = Registry::load(runtime, config);
    for (name, e) in failed {
        // One line: the first line of the cause, without the bytes a parser dumps.
        let message = format!("{e:#}");
        let line = message.lines().next().unwrap_or_default();
        let message = line
            .split(" - expected=")
            .next()
            .unwrap_or(line)
            .trim_end_matches(':')
            .to_string();
        errors.push(match config.connectors.get(&name).and_then(|c| c.place.as_ref()) {
            Some(p) => p.error(message),
            None => ConfigError::new(message),
        });
    }
    Ok(registry)
}

/// Two listeners on one port of one address (or of every address) cannot both bind.
fn check_listeners(config: &DaemonConfig, errors: &mut ConfigErrors) {
    let (listen, admin) = (config.server.listen, config.server.admin);
    let clash = |a: SocketAddr, b: SocketAddr| {
        a.port() != 0
            && a.port() == b.port()
            && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
    };
    if !clash(listen, admin) {
        return;
    }
    let message = format!(
        "server.admin ({admin}) and server.listen ({listen}) are the same port: the two listeners cannot share it"
    );
    let mut e = match &config.places.admin {
        Some(p) => p.error(message),
        None => ConfigError::new(message),
    };
    if let Some(p) = &config.places.listen {
        e = e.with_related(p.related("the trigger listener is here"));
    }
    errors.push(e.with_help("give the admin API its own port, such as the trigger port + 1"));
}

/// The data directory must be a directory, or creatable: its nearest existing ancestor
/// must be one.
fn check_data_dir(config: &DaemonConfig, errors: &mut ConfigErrors) {
    let dir = &config.server.data_dir;
    let Some(existing) = dir.ancestors().find(|a| a.as_os_str().is_empty() || a.exists()) else {
        return;
    };
    if existing.as_os_str().is_empty() || existing.is_dir() {
        return;
    }
    let message = if existing == dir {
        format!("server.data_dir {} is not a directory", dir.display())
    } else {
        format!(
            "server.data_dir {} cannot be created: {} is not a directory",
            dir.display(),
            existing.display()
        )
    };
    errors.push(match &config.places.data_dir {
        Some(p) => p.error(message),
        None => ConfigError::new(format!("{message} (the default: data/ beside the config)"))
            .with_help("set server.data_dir to a directory"),
    });
}

/// What a connector rejected in a config: (dotted path, message) pairs.
type Problems = Vec<(String, String)>;

/// Checks what only the connectors can check: that each connector implements the world
/// its use needs, and that it accepts the config it is given (a problem at a config key
/// is shown at that key).
pub async fn validate_with_connectors(registry: &Registry, flow: &Flow) -> ConfigErrors {
    let mut errors = ConfigErrors::default();
    let mut calls = Vec::new();
    if let Some(call) = &flow.trigger.connector {
        calls.push(("the trigger".to_string(), call, World::Trigger));
    }
    for step in &flow.steps {
        if let Action::Connector { call, .. } = &step.action {
            calls.push((format!("step \"{}\"", step.name), call, World::Action));
        }
    }
    // Each distinct (connector, config) is validated once, several at a time.
    let mut checks: Vec<(&str, &crate::config::ConnectorCall, String)> = Vec::new();
    let mut pending: HashMap<(String, String), Option<Problems>> = HashMap::new();
    let mut running = tokio::task::JoinSet::new();
    let limit = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let mut results = Vec::new();
    for (who, call, world) in &calls {
        // A connector that failed to load was already reported where it is configured.
        let Some(connector) = registry.get(&call.connector) else {
            continue;
        };
        if connector.world() != *world {
            errors.push(call.error_at(
                "",
                format!(
                    "{who}: connector \"{}\" implements {}, but {who} needs {}",
                    call.connector,
                    connector.world().wit_name(),
                    world.wit_name()
                ),
            ));
            continue;
        }
        let text = call.config.to_string();
        let key = (call.connector.clone(), text.clone());
        checks.push((who.as_str(), call, text));
        if pending.contains_key(&key) {
            continue;
        }
        pending.insert(key.clone(), None);
        if running.len() >= limit
            && let Some(done) = running.join_next().await
        {
            results.push(done);
        }
        let (connector, runtime, config) = (connector.clone(), registry.runtime.clone(), call.config.clone());
        running.spawn(async move { (key, connector.validate(&runtime, &config).await) });
    }
    while let Some(done) = running.join_next().await {
        results.push(done);
    }
    for done in results {
        let (key, outcome) = match done {
            Ok(r) => r,
            Err(e) => {
                errors.push(ConfigError::new(format!("a connector's config check failed: {e}")));
                continue;
            }
        };
        let problems = match outcome {
            Ok(problems) => problems.into_iter().map(|p| (p.path, p.message)).collect(),
            Err(f) => vec![(String::new(), format!("failed to validate its config: {f}"))],
        };
        pending.insert(key, Some(problems));
    }
    for (who, call, text) in checks {
        let Some(Some(problems)) = pending.get(&(call.connector.clone(), text)) else {
            continue;
        };
        for (path, message) in problems {
            let what = if path.is_empty() {
                String::new()
            } else {
                format!("config.{path}: ")
            };
            errors.push(call.error_at(
                path,
                format!(
                    "{who}: connector \"{}\" rejected the config: {what}{message}",
                    call.connector
                ),
            ));
        }
    }
    errors
}

/// Loads and validates `files`: the flows that are valid (the first of any two with one
/// name) and every problem found, a reused name included.
async fn load_flow_files(registry: &Registry, config: &DaemonConfig, files: &[PathBuf]) -> (Vec<Flow>, ConfigErrors) {
    let mut errors = ConfigErrors::default();
    let mut flows: Vec<Flow> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for file in files {
        let flow = match Flow::load(file, config) {
            Ok(f) => f,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        let problems = validate_with_connectors(registry, &flow).await;
        if !problems.is_empty() {
            errors.extend(problems);
            continue;
        }
        match names.get(&flow.name) {
            Some(&i) => {
                let first = &flows[i];
                let message = format!(
                    "flow name \"{}\" is already used by {}",
                    flow.name,
                    first.source.display()
                );
                let mut e = match &flow.place {
                    Some(p) => p.error(message),
                    None => ConfigError::file(file, message),
                };
                if let Some(p) = &first.place {
                    e = e.with_related(p.related("first used here"));
                }
                errors.push(e.with_help("flow names are unique: rename one (`name` in [flow], else the file name)"));
            }
            None => {
                names.insert(flow.name.clone(), flows.len());
                flows.push(flow);
            }
        }
    }
    (flows, errors)
}

/// The flows by name and by webhook path; two flows on one path are an error naming both.
fn flow_set(flows: Vec<Flow>, errors: &mut ConfigErrors) -> FlowSet {
    let mut set = FlowSet::default();
    for flow in flows {
        let flow = Arc::new(flow);
        if let TriggerKind::Http { path, .. } = &flow.trigger.kind {
            match set.by_path.get(path) {
                Some(other) => {
                    let message = format!("flows \"{}\" and \"{}\" both listen on {path}", other.name, flow.name);
                    let mut e = match &flow.trigger.place {
                        Some(p) => p.error(message).with_label(format!("flow \"{}\"", flow.name)),
                        None => ConfigError::new(message),
                    };
                    if let Some(p) = &other.trigger.place {
                        e = e.with_related(p.related(format!("flow \"{}\"", other.name)));
                    }
                    errors.push(e.with_help("a webhook path belongs to one flow: give each its own `path`"));
                    continue;
                }
                None => {
                    set.by_path.insert(path.clone(), flow.clone());
                }
            }
        }
        set.by_name.insert(flow.name.clone(), flow);
    }
    set
}
