//! `flowd executions list|show` and `flowd logs`: read a data directory directly, for
//! use without a daemon (the admin API serves the same views later).

use crate::config::DaemonConfig;
use crate::engine::{ContinueError, ExecutionStatus, Executor, RetryFrom, retries_left};
use crate::loader;
use crate::plugin::Level;
use crate::store::{Execution, JobId, ListQuery, LogQuery, RedbStore, Store};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum ExecutionsCommand {
    /// Executions, newest first.
    List(ListArgs),
    /// One execution: each attempt's steps with status, timing, fuel, error and payloads.
    Show(ShowArgs),
    /// Resume a paused execution now and run it to its end.
    Resume(ContinueArgs),
    /// Retry a failed, partially executed or rejected execution as a new attempt, from
    /// the first step that did not succeed (or with --from-start, from the beginning).
    Retry(ContinueArgs),
}

#[derive(Args)]
pub struct ContinueArgs {
    #[command(flatten)]
    dir: DataDir,
    job_id: JobId,
    /// The daemon config whose flows and connectors run the execution.
    #[arg(long, value_name = "FILE", default_value = "config/flowd.toml", env = "FLOWD_CONFIG")]
    config: PathBuf,
    /// Retry from the first step rather than from the failed one.
    #[arg(long)]
    from_start: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct DataDir {
    /// The data directory (`flowd run --data-dir`).
    #[arg(long, value_name = "DIR", env = "FLOWD_DATA_DIR")]
    data_dir: PathBuf,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    dir: DataDir,
    #[arg(long)]
    flow: Option<String>,
    #[arg(long)]
    project: Option<String>,
    /// pending, queued, running, paused, success, partially_executed, failed, rejected.
    #[arg(long, value_parser = parse_status)]
    status: Option<ExecutionStatus>,
    /// Only executions older than this job id (the last one of the previous page).
    #[arg(long, value_name = "JOB_ID")]
    before: Option<JobId>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    dir: DataDir,
    job_id: JobId,
    /// A daemon config whose flows say whether a manual retry would be accepted now.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// Whether a manual retry of `exec` is possible now under the flows of `config`.
fn retry_view(config: &Option<PathBuf>, exec: &Execution) -> Value {
    let Some(path) = config else {
        return json!({ "retries_left": retries_left(exec) });
    };
    let flow = DaemonConfig::load(path).ok().and_then(|c| {
        let dir = c.flows_dir.clone()?;
        let files = crate::config::flow_files(&dir).ok()?;
        files
            .iter()
            .filter_map(|f| crate::config::Flow::load(f, &c).ok())
            .find(|f| f.name == exec.flow)
    });
    let missing = || format!("flow \"{}\" is not defined by {}", exec.flow, path.display());
    crate::views::retry(flow.as_ref().ok_or_else(missing), exec)
}

#[derive(Args)]
pub struct LogsArgs {
    #[command(flatten)]
    dir: DataDir,
    #[arg(long, value_name = "JOB_ID")]
    job: Option<JobId>,
    #[arg(long)]
    flow: Option<String>,
    #[arg(long)]
    step: Option<String>,
    /// The lowest level shown: trace, debug, info, warn or error.
    #[arg(long, value_parser = parse_level)]
    level: Option<Level>,
    #[arg(long)]
    category: Option<String>,
    /// Only records whose message contains this text.
    #[arg(long)]
    contains: Option<String>,
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

fn parse_status(s: &str) -> Result<ExecutionStatus, String> {
    serde_json::from_value(Value::String(s.to_string())).map_err(|_| {
        format!("unknown status {s:?}; expected pending, queued, running, paused, success, partially_executed, failed or rejected")
    })
}

fn parse_level(s: &str) -> Result<Level, String> {
    serde_json::from_value(Value::String(s.to_string()))
        .map_err(|_| format!("unknown level {s:?}; expected trace, debug, info, warn or error"))
}

fn open(dir: &DataDir) -> Result<RedbStore, u8> {
    if !dir.data_dir.join("flowd.redb").is_file() {
        eprintln!("error: --data-dir {}: no flowd database there", dir.data_dir.display());
        return Err(2);
    }
    RedbStore::open(&dir.data_dir, usize::MAX).map_err(|e| {
        eprintln!("error: --data-dir: {e}");
        2
    })
}

pub async fn executions(cmd: ExecutionsCommand) -> u8 {
    match cmd {
        ExecutionsCommand::List(a) => list(a),
        ExecutionsCommand::Show(a) => show(a),
        ExecutionsCommand::Resume(a) => continue_execution(a, false).await,
        ExecutionsCommand::Retry(a) => continue_execution(a, true).await,
    }
}

/// Resumes or retries one execution with the flows and connectors of a daemon config.
async fn continue_execution(a: ContinueArgs, retry: bool) -> u8 {
    let config = match DaemonConfig::load(&a.config) {
        Ok(c) => c,
        Err(errors) => {
            super::print_errors(&errors);
            return 2;
        }
    };
    let store = match open(&a.dir) {
        Ok(s) => Arc::new(s),
        Err(c) => return c,
    };
    let exec = match store.execution(a.job_id) {
        Ok(Some(e)) => e,
        Ok(None) => {
            eprintln!("error: no execution {} in {}", a.job_id, a.dir.data_dir.display());
            return 1;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let (registry, mut errors) = match loader::load_registry(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    let flows = match loader::load_flows(&registry, &config).await {
        Ok(f) => f,
        Err(e) => {
            errors.extend(e);
            Vec::new()
        }
    };
    if !errors.is_empty() {
        super::print_errors(&errors);
        return 2;
    }
    let Some(flow) = flows.into_iter().find(|f| f.name == exec.flow) else {
        eprintln!(
            "error: execution {} belongs to flow \"{}\", which {} does not define",
            a.job_id,
            exec.flow,
            config.describe()
        );
        return 1;
    };
    let executor = Executor::new(Arc::new(registry), config.environment.clone()).with_store(store);
    let result = if retry {
        let from = if a.from_start {
            RetryFrom::Start
        } else {
            RetryFrom::FailedStep
        };
        executor.retry(&flow, a.job_id, from).await
    } else {
        executor.resume(&flow, a.job_id).await
    };
    match result {
        Ok(report) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report).expect("serializes"));
            } else {
                print!("{}", super::render::timeline(&report));
            }
            if report.status == ExecutionStatus::Success {
                0
            } else {
                1
            }
        }
        Err(ContinueError::Refused(r)) => {
            eprintln!("error: retry refused ({}): {r}", r.code());
            3
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn list(a: ListArgs) -> u8 {
    let store = match open(&a.dir) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let q = ListQuery {
        flow: a.flow,
        project: a.project,
        statuses: a.status.into_iter().collect(),
        before: a.before,
        limit: a.limit,
        ..ListQuery::default()
    };
    let rows = match store.list(&q) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("serializes"));
        return 0;
    }
    println!(
        "{:<36}  {:<20}  {:<18}  {:>9}  {:>5}  {:>3}  time",
        "job id", "flow", "status", "duration", "steps", "try"
    );
    for e in &rows {
        println!(
            "{:<36}  {:<20}  {:<18}  {:>9}  {:>5}  {:>3}  {}",
            e.job_id.to_string(),
            e.flow,
            e.status.as_str(),
            crate::views::duration(e).map_or("-".into(), |d| format!("{d:.3}s")),
            format!("{}/{}", e.steps_executed, e.steps_total),
            e.attempt,
            crate::time_format::rfc3339(e.created_at),
        );
    }
    0
}

fn show(a: ShowArgs) -> u8 {
    let store = match open(&a.dir) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let detail = crate::views::execution_detail(&store, a.job_id, |e| retry_view(&a.config, e));
    let detail = match detail {
        Ok(Some(d)) => d,
        Ok(None) => {
            eprintln!("error: no execution {} in {}", a.job_id, a.dir.data_dir.display());
            return 1;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&detail).expect("serializes"));
        return 0;
    }
    let e = &detail["execution"];
    println!(
        "job {}  flow {} (project {}, version {})  {}  attempt {}",
        e["job_id"].as_str().unwrap_or(""),
        e["flow"].as_str().unwrap_or(""),
        e["project"].as_str().unwrap_or(""),
        e["flow_version"].as_str().unwrap_or(""),
        e["status"].as_str().unwrap_or(""),
        e["attempt"]
    );
    println!(
        "  trigger {}  payload {}",
        e["trigger_kind"].as_str().unwrap_or(""),
        detail["trigger"]
    );
    let retry = &detail["retry"];
    match (retry["possible"].as_bool(), retry["refused"]["message"].as_str()) {
        (Some(true), _) => println!("  manual retry possible ({} left)", retry["retries_left"]),
        (Some(false), Some(why)) => println!("  no manual retry: {why}"),
        _ => println!("  manual retries left: {}", retry["retries_left"]),
    }
    for s in detail["steps"].as_array().into_iter().flatten() {
        println!(
            "  [{}] {:<16} {:<9} {:>9.3} ms  fuel {}",
            s["attempt"],
            s["name"].as_str().unwrap_or(""),
            s["status"].as_str().unwrap_or(""),
            s["duration"].as_f64().unwrap_or(0.0) * 1000.0,
            s["fuel_used"]
        );
        if !s["error"].is_null() {
            println!(
                "        error: {}: {}",
                s["error"]["kind"].as_str().unwrap_or(""),
                s["error"]["message"].as_str().unwrap_or("")
            );
        }
        if let Some(note) = s["note"].as_str() {
            println!("        {note}");
        }
        if !s["output"].is_null() {
            println!("        output: {}", s["output"]);
        }
    }
    0
}

pub fn logs(a: LogsArgs) -> u8 {
    let store = match open(&a.dir) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let q = LogQuery {
        job_id: a.job,
        flow: a.flow,
        step: a.step,
        level: a.level,
        category: a.category,
        contains: a.contains,
        limit: a.limit,
        ..LogQuery::default()
    };
    let rows = match store.logs(&q) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    for (_, l) in rows {
        if a.json {
            println!("{}", serde_json::to_string(&l).expect("serializes"));
        } else {
            println!("{}", crate::views::log_line(&l));
        }
    }
    0
}
