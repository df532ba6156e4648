//! Loading a whole setup: the daemon config, its connectors (compiled, import-checked,
//! linked) and its flows, each step's config validated by its own connector, with every
//! problem collected rather than stopping at the first.

use crate::config::{Action, ConfigError, ConfigErrors, DaemonConfig, Flow};
use crate::plugin::{Registry, Runtime, World};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Loads the runtime and every connector of `config`; load failures are reported at the
/// connector's place in the daemon config.
pub fn load_registry(config: &DaemonConfig) -> anyhow::Result<(Registry, ConfigErrors)> {
    let runtime = Arc::new(Runtime::new(config)?);
    let (registry, failed) = Registry::load(runtime, config);
    let mut errors = ConfigErrors::default();
    for (name, e) in failed {
        let location = config.connectors.get(&name).and_then(|c| c.location.clone());
        let message = format!("{e:#}");
        errors.push(match location {
            Some(l) => ConfigError::at(l, message),
            None => ConfigError {
                location: None,
                message,
            },
        });
    }
    Ok((registry, errors))
}

/// Checks what only the connectors can check: that each connector implements the world
/// its use needs, and that it accepts the config it is given.
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
    for (who, call, world) in calls {
        let at = |message: String| ConfigError {
            location: call.location.clone(),
            message,
        };
        // A connector that failed to load was already reported where it is configured.
        let Some(connector) = registry.get(&call.connector) else {
            continue;
        };
        if connector.world() != world {
            errors.push(at(format!(
                "{who}: connector \"{}\" implements {}, but {who} needs {}",
                call.connector,
                connector.world().wit_name(),
                world.wit_name()
            )));
            continue;
        }
        match connector.validate(&registry.runtime, &call.config).await {
            Ok(problems) => {
                for p in problems {
                    let path = if p.path.is_empty() {
                        String::new()
                    } else {
                        format!("config.{}: ", p.path)
                    };
                    errors.push(at(format!(
                        "{who}: connector \"{}\" rejected the config: {path}{}",
                        call.connector, p.message
                    )));
                }
            }
            Err(f) => errors.push(at(format!(
                "{who}: connector \"{}\" failed to validate its config: {f}",
                call.connector
            ))),
        }
    }
    errors
}

/// Parses and fully validates one flow file.
pub async fn load_flow(registry: &Registry, config: &DaemonConfig, path: &Path) -> Result<Flow, ConfigErrors> {
    let flow = Flow::load(path, config)?;
    validate_with_connectors(registry, &flow).await.into_result(flow)
}

/// Every flow in the config's flows directory, fully validated; flow names are unique.
pub async fn load_flows(registry: &Registry, config: &DaemonConfig) -> Result<Vec<Flow>, ConfigErrors> {
    let Some(dir) = &config.flows_dir else {
        return Ok(Vec::new());
    };
    let files = crate::config::flow_files(dir)?;
    let (flows, errors) = load_flow_files(registry, config, &files).await;
    errors.into_result(flows)
}

/// Loads and validates `files`: the flows that are valid (the first of any two with one
/// name) and every problem found, a reused name included.
pub async fn load_flow_files(
    registry: &Registry,
    config: &DaemonConfig,
    files: &[PathBuf],
) -> (Vec<Flow>, ConfigErrors) {
    let mut errors = ConfigErrors::default();
    let mut flows: Vec<Flow> = Vec::new();
    for file in files {
        match load_flow(registry, config, file).await {
            Ok(flow) => match flows.iter().find(|f| f.name == flow.name) {
                Some(first) => errors.push(ConfigError::file(
                    file,
                    format!(
                        "flow name \"{}\" is already used by {}",
                        flow.name,
                        first.source.display()
                    ),
                )),
                None => flows.push(flow),
            },
            Err(e) => errors.extend(e),
        }
    }
    (flows, errors)
}
