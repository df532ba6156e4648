//! `flowd run`: one local execution of a flow, the connector author's inner loop.

use super::EXIT_CONFIG;
use super::claims::{Claims, refusal};
use super::source::Source;
use crate::config::{ConfigError, ConfigErrors, ConnectorConfig, ConnectorSource, Flow, Grants};
use crate::engine::{Admission, ExecutionReport, ExecutionStatus, Executor, StepInput, local_event};
use crate::loader;
use crate::store::ClaimError;
use crate::store::retention;
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
    #[arg(long, value_name = "FILE|-", conflicts_with = "body")]
    input: Option<String>,
    /// The daemon config naming connectors and limits (default: every bundled connector,
    /// default limits).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Use a component file as connector NAME (repeatable), with no grants.
    #[arg(long = "connector", value_name = "NAME=FILE.wasm", value_parser = parse_connector)]
    connectors: Vec<(String, PathBuf)>,
    /// Record the execution (steps, payloads, log records) in this data directory.
    #[arg(long, value_name = "DIR", conflicts_with = "record")]
    data_dir: Option<PathBuf>,
    /// Record the execution in the store the --config's [store] names, as --data-dir does:
    /// its data directory, or its PostgreSQL database (which daemons may share: each
    /// execution is run under this command's claim on it, see `executions resume`).
    #[arg(long, requires = "config")]
    record: bool,
    /// Run this many executions at once (with a store, 0 only recovers the flow's
    /// unfinished ones that no daemon holds). Prints `accepted <job id>` as each is
    /// durably accepted, then one line each.
    #[arg(long, value_name = "N", default_value_t = 1)]
    count: usize,
    /// Print the execution as JSON instead of a timeline.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    http: super::http_event::HttpEventArgs,
}

/// A connector given as `--connector NAME=FILE`: no grants, no place in a config file.
pub(super) fn file_connector(name: &str, path: &std::path::Path) -> ConnectorConfig {
    ConnectorConfig {
        name: name.to_string(),
        source: ConnectorSource::File(path.to_path_buf()),
        grants: Grants::default(),
        location: None,
        place: None,
    }
}

pub(super) fn parse_connector(s: &str) -> Result<(String, PathBuf), String> {
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
    // RFC 8259 §8.1: a byte order mark may be ignored (Windows editors write one).
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    // serde_json's message ends with the line and column.
    serde_json::from_str(text).map_err(|e| format!("--input {what}: not JSON: {e}"))
}

pub async fn run(args: RunArgs) -> u8 {
    let mut config = match super::daemon_config(args.config.as_ref()) {
        Ok(c) => c,
        Err(errors) => {
            super::print_errors(&errors);
            return EXIT_CONFIG;
        }
    };
    for (name, path) in &args.connectors {
        config.connectors.insert(name.clone(), file_connector(name, path));
    }
    let input = match read_input(&args.input) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let (registry, flow, config) = match loader::load_one(config, &args.flow).await {
        Ok(loaded) => loaded,
        Err(errors) => {
            print_run_errors(errors, &args);
            return EXIT_CONFIG;
        }
    };
    let mut executor = Executor::new(Arc::new(registry), config.environment.clone());
    if args.count != 1 {
        executor = executor.with_observer(Arc::new(PrintAccepted));
    }
    let mut pruning = None;
    let source = match (&args.data_dir, &args.config) {
        (Some(dir), _) => Some(Source::DataDir(dir.clone())),
        (None, Some(file)) if args.record => Some(Source::Config(file.clone())),
        _ => None,
    };
    let mut recording = None;
    if let Some(source) = &source {
        let offline = match super::source::recording(source, config.limits.max_payload as usize).await {
            Ok(o) => o,
            Err(code) => return code,
        };
        // One retention pass alongside the run; the daemon prunes continuously.
        let cutoff = std::time::SystemTime::now() - config.retention;
        let s = offline.store.clone();
        pruning = Some(tokio::spawn(
            async move { retention::prune_all(s.as_ref(), cutoff).await },
        ));
        let claims = Claims::start(offline.store.clone(), offline.lease);
        executor = executor
            .with_store(offline.store.clone())
            .claim_as(claims.owner(), claims.ttl());
        recording = Some(Arc::new(Recording {
            claims,
            name: offline.name,
        }));
    }
    let event = match args.http.event(&flow, &input) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    let (executor, flow) = (Arc::new(executor), Arc::new(flow));
    if let Some(recording) = &recording {
        // Opening a store picks up this flow's unfinished executions first.
        if let Err(code) = recover(&executor, &flow, recording).await {
            recording.claims.stop().await;
            return code;
        }
    }
    let code = if args.count != 1 {
        batch(executor, flow, input, event, args.count, recording.clone()).await
    } else {
        single(&executor, &flow, input, event, args.json, recording.as_deref()).await
    };
    if let Some(recording) = &recording {
        recording.claims.stop().await;
    }
    if let Some(p) = pruning
        && let Ok(Err(e)) = p.await
    {
        eprintln!("warning: pruning records older than the retention failed: {e}");
    }
    code
}

/// Where a run records, and its claims there.
struct Recording {
    claims: Claims,
    /// The store, as messages name it.
    name: String,
}

/// Runs one execution of `flow` for `event` start to end, as [`Executor::execute`] does,
/// under the claim taken with its acceptance when it is recorded.
async fn execute(
    executor: &Executor,
    flow: &Flow,
    event: crate::plugin::TriggerEvent,
    recording: Option<&Recording>,
) -> Result<ExecutionReport, crate::store::StoreError> {
    let accepted = match executor.admit(flow, event).await? {
        Admission::Accepted(a) => a,
        Admission::Dropped(r) | Admission::Failed(r) | Admission::TooLarge(r) => return Ok(r),
    };
    let (Some(recording), Some(lease)) = (recording, accepted.lease().cloned()) else {
        return executor.run(flow, *accepted).await;
    };
    let job = accepted.job_id;
    let report = recording.claims.hold(lease).scope(executor.run(flow, *accepted)).await;
    recording.claims.release(job).await;
    report
}

async fn single(
    executor: &Executor,
    flow: &Flow,
    input: Value,
    event: Option<crate::plugin::TriggerEvent>,
    json: bool,
    recording: Option<&Recording>,
) -> u8 {
    let event = event.unwrap_or_else(|| local_event(&flow.trigger.kind, input));
    let report = match execute(executor, flow, event, recording).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: the execution could not be recorded, so it stopped: {e}");
            return 1;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&report)).expect("a report serializes")
        );
    } else {
        print!("{}", super::render::timeline(&report, flow));
    }
    if report.status == ExecutionStatus::Success {
        0
    } else {
        1
    }
}

/// The report as JSON, each step that ran with its input (the trigger payload and the
/// outputs of the steps before it), as `flowd executions show` gives it.
fn report_json(report: &ExecutionReport) -> Value {
    let mut v = serde_json::to_value(report).expect("a report serializes");
    let mut outputs = serde_json::Map::new();
    if let Some(steps) = v["steps"].as_array_mut() {
        for (s, r) in steps.iter_mut().zip(&report.steps) {
            if r.status.ran() {
                let trigger = report.trigger.payload.as_deref().unwrap_or(&Value::Null);
                s["input"] = StepInput {
                    trigger,
                    steps: &outputs,
                }
                .to_value();
            }
            if let Some(o) = &r.output {
                outputs.insert(r.name.clone(), Value::clone(o));
            }
        }
    }
    v
}

/// Continues every unfinished execution of `flow` in the store that nobody else holds,
/// each under a claim, printing each outcome (and each left to its holder).
async fn recover(executor: &Arc<Executor>, flow: &Arc<Flow>, recording: &Arc<Recording>) -> Result<(), u8> {
    let Some(store) = executor.store() else { return Ok(()) };
    let unfinished = store.unfinished().await.map_err(|e| {
        eprintln!("error: reading unfinished executions: {e}");
        1
    })?;
    let tasks: Vec<_> = unfinished
        .into_iter()
        .filter(|e| e.flow == flow.name)
        .map(|exec| {
            let (executor, flow, recording) = (executor.clone(), flow.clone(), recording.clone());
            tokio::spawn(async move {
                let job = exec.job_id;
                let hold = match recording.claims.claim(job).await {
                    Ok(hold) => hold,
                    Err(e) => return (job, Err(e)),
                };
                let report = hold.scope(executor.recover(&flow, job)).await;
                recording.claims.release(job).await;
                (job, Ok(report))
            })
        })
        .collect();
    let mut failed = false;
    for t in tasks {
        match t.await {
            Ok((job, Err(ClaimError::Held { owner, .. }))) => println!("left {job}: {owner} holds it"),
            Ok((job, Err(e))) => {
                refusal(job, &recording.name, &e);
                failed = true;
            }
            Ok((job, Ok(Ok(r)))) => println!("recovered {job} {}", r.status),
            Ok((job, Ok(Err(e)))) => {
                eprintln!("error: recovering {job}: {e}");
                failed = true;
            }
            Err(e) => {
                eprintln!("error: a recovery task failed: {e}");
                failed = true;
            }
        }
    }
    if failed { Err(1) } else { Ok(()) }
}

async fn batch(
    executor: Arc<Executor>,
    flow: Arc<Flow>,
    input: Value,
    event: Option<crate::plugin::TriggerEvent>,
    count: usize,
    recording: Option<Arc<Recording>>,
) -> u8 {
    let mut tasks = Vec::new();
    for _ in 0..count {
        let (executor, flow, input, recording) = (executor.clone(), flow.clone(), input.clone(), recording.clone());
        let event = event.clone();
        tasks.push(tokio::spawn(async move {
            let event = event.unwrap_or_else(|| local_event(&flow.trigger.kind, input));
            execute(&executor, &flow, event, recording.as_deref()).await
        }));
    }
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => {
                println!("finished {} {}", r.job_id, r.status);
                if r.status != ExecutionStatus::Success {
                    failed += 1;
                }
            }
            Ok(Err(e)) => {
                eprintln!("error: an execution could not be recorded, so it stopped: {e}");
                failed += 1;
            }
            Err(e) => {
                eprintln!("error: an execution task failed: {e}");
                failed += 1;
            }
        }
    }
    println!("{} executions, {failed} not successful", count);
    if failed == 0 { 0 } else { 1 }
}

fn print_run_errors(errors: ConfigErrors, args: &RunArgs) {
    // Connectors given with --connector have no place in a config file: name the flag.
    let errors = ConfigErrors(
        errors
            .0
            .into_iter()
            .map(|e| match (&e.location, args.connectors.is_empty()) {
                (None, false) => ConfigError {
                    message: format!("--connector: {}", e.message),
                    ..e
                },
                _ => e,
            })
            .collect(),
    );
    let format = if args.json {
        super::MessageFormat::Json
    } else {
        super::MessageFormat::Human
    };
    super::report_config_errors(&errors, "", format);
}

/// `flowd run --count`: prints each job id once its execution is durably accepted (the
/// crash test relies on it being printed only then).
struct PrintAccepted;

impl crate::engine::Observer for PrintAccepted {
    fn accepted(&self, job: crate::store::JobId) {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "accepted {job}");
        let _ = out.flush();
    }
}
