//! `flowd run`: one local execution of a flow, the connector author's inner loop.

use crate::config::{ConfigError, ConfigErrors, ConnectorConfig, ConnectorSource, Flow, Grants};
use crate::engine::{ExecutionStatus, Executor, local_event};
use crate::loader;
use crate::store::RedbStore;
use clap::Args;
use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct RunArgs {
    /// The flow file.
    flow: PathBuf,
    /// JSON for the trigger: the HTTP body, or the manual run's body. `-` reads stdin.
    #[arg(long, value_name = "FILE|-")]
    input: Option<String>,
    /// The daemon config naming connectors and limits (default: every bundled connector,
    /// default limits).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Use a component file as connector NAME (repeatable), with no grants.
    #[arg(long = "connector", value_name = "NAME=FILE.wasm", value_parser = parse_connector)]
    connectors: Vec<(String, PathBuf)>,
    /// Record the execution (steps, payloads, log records) in this data directory.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print the execution as JSON instead of a timeline.
    #[arg(long)]
    json: bool,
}

fn parse_connector(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=FILE.wasm, got {s:?}"))?;
    if name.is_empty() || path.is_empty() {
        return Err(format!("expected NAME=FILE.wasm, got {s:?}"));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

fn read_input(arg: &Option<String>) -> Result<Value, String> {
    let (what, text) = match arg.as_deref() {
        None => return Ok(Value::Null),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("--input -: cannot read stdin: {e}"))?;
            ("stdin".to_string(), s)
        }
        Some(path) => (
            path.to_string(),
            std::fs::read_to_string(path).map_err(|e| format!("--input {path}: cannot read: {e}"))?,
        ),
    };
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "--input {what}: not JSON: {e} (at line {}, column {})",
            e.line(),
            e.column()
        )
    })
}

pub async fn run(args: RunArgs) -> u8 {
    let mut config = match super::daemon_config(args.config.as_ref()) {
        Ok(c) => c,
        Err(errors) => {
            super::print_errors(&errors);
            return 2;
        }
    };
    for (name, path) in &args.connectors {
        config.connectors.insert(
            name.clone(),
            ConnectorConfig {
                name: name.clone(),
                source: ConnectorSource::File(path.clone()),
                grants: Grants::default(),
                location: None,
            },
        );
    }
    let input = match read_input(&args.input) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let flow = match Flow::load(&args.flow, &config) {
        Ok(f) => f,
        Err(errors) => {
            super::print_errors(&errors);
            return 2;
        }
    };
    // Only the connectors this flow uses are loaded.
    let used: Vec<&str> = flow
        .trigger
        .connector
        .iter()
        .map(|c| c.connector.as_str())
        .chain(flow.steps.iter().filter_map(|s| match &s.action {
            crate::config::Action::Connector { call, .. } => Some(call.connector.as_str()),
            _ => None,
        }))
        .collect();
    config.connectors.retain(|name, _| used.contains(&name.as_str()));
    let (registry, mut errors) = match loader::load_registry(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    errors.extend(loader::validate_with_connectors(&registry, &flow).await);
    if !errors.is_empty() {
        print_run_errors(errors, &args);
        return 2;
    }
    let mut executor = Executor::new(Arc::new(registry), config.environment.clone());
    if let Some(dir) = &args.data_dir {
        match RedbStore::open(dir, config.limits.max_payload as usize) {
            Ok(store) => executor = executor.with_store(Arc::new(store)),
            Err(e) => {
                eprintln!("error: --data-dir: {e}");
                return 2;
            }
        }
    }
    let event = local_event(&flow.trigger.kind, input);
    let report = match executor.execute(&flow, event).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: the execution could not be recorded, so it stopped: {e}");
            return 1;
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serializes")
        );
    } else {
        print!("{}", super::render::timeline(&report));
    }
    if report.status == ExecutionStatus::Success {
        0
    } else {
        1
    }
}

fn print_run_errors(errors: ConfigErrors, args: &RunArgs) {
    // Connectors given with --connector have no place in a config file: name the flag.
    let errors = ConfigErrors(
        errors
            .0
            .into_iter()
            .map(|e| match (&e.location, args.connectors.is_empty()) {
                (None, false) => ConfigError {
                    location: None,
                    message: format!("--connector: {}", e.message),
                },
                _ => e,
            })
            .collect(),
    );
    super::print_errors(&errors);
}
