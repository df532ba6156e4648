//! `flowd executions list|show|resume|retry` and `flowd logs`. With `--data-dir` they
//! read a data directory directly, for use without a daemon (offline mode, here);
//! without it they ask the daemon's admin API (client mode, [`super::remote`]).

use super::EXIT_CONFIG;
use super::args::{Target, TimeRange, client_only, parse_level, parse_status};
use crate::config::DaemonConfig;
use crate::engine::{ContinueError, ExecutionStatus, Executor, RetryFrom, retries_left};
use crate::loader::{FlowSet, Purpose};
use crate::plugin::Level;
use crate::store::{Execution, JobId, ListQuery, LogKey, LogQuery, RedbStore, Store};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Subcommand)]
pub enum ExecutionsCommand {
    /// Executions, newest first. Asks the daemon's admin API, or with --data-dir reads a
    /// data directory.
    List(ListArgs),
    /// One execution: each attempt's steps with status, timing, fuel, error and payloads.
    /// Asks the daemon's admin API, or with --data-dir reads a data directory.
    Show(ShowArgs),
    /// Resume a paused execution now and run it to its end: the daemon does (admin API),
    /// or with --data-dir this command does, on a stopped daemon's data.
    Resume(ResumeArgs),
    /// Retry a failed, partially executed or rejected execution as a new attempt, from
    /// the first step that did not succeed (or with --from-start, from the beginning):
    /// the daemon does (admin API), or with --data-dir this command does.
    Retry(RetryArgs),
}

#[derive(Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub target: Target,
    pub job_id: JobId,
    /// The daemon config whose flows and connectors run the execution (offline mode; a
    /// daemon uses its own).
    #[arg(long, value_name = "FILE", default_value = "config/flowd.toml", env = "FLOWD_CONFIG")]
    pub config: PathBuf,
    /// JSON: offline the run's report; in client mode the API's answer (with --wait, the
    /// execution's row once the attempt ended).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub resume: ResumeArgs,
    /// Retry from the first step rather than from the failed one.
    #[arg(long)]
    pub from_start: bool,
    /// Wait until the new attempt ends and exit 0 only if it succeeded (client mode; the
    /// offline retry always runs to the end).
    #[arg(long)]
    pub wait: bool,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub flow: Option<String>,
    #[arg(long)]
    pub project: Option<String>,
    /// Any of these statuses, comma-separated: pending, queued, running, paused, success,
    /// partially_executed, failed, rejected.
    #[arg(long, value_name = "S[,S...]", value_delimiter = ',', value_parser = parse_status)]
    pub status: Vec<ExecutionStatus>,
    /// http, schedule or manual.
    #[arg(long, value_name = "KIND")]
    pub trigger_kind: Option<String>,
    #[command(flatten)]
    pub time: TimeRange,
    /// Only executions older than this job id (the next-page hint of the previous page).
    #[arg(long, value_name = "JOB_ID", visible_alias = "before")]
    pub cursor: Option<JobId>,
    /// At most this many (default 50; the admin API answers at most 1000 per page).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub target: Target,
    pub job_id: JobId,
    /// A daemon config whose flows say whether a manual retry would be accepted now
    /// (offline mode; a daemon answers with its loaded flows).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// Whether a manual retry of `exec` is possible now under the flows of `config`
/// (`None`: no config given), loaded as the daemon loads them.
fn retry_view(config: Option<(&Path, &FlowSet)>, exec: &Execution) -> Value {
    let Some((path, flows)) = config else {
        return json!({ "retries_left": retries_left(exec) });
    };
    let flow = flows.by_name.get(&exec.flow);
    let missing = || format!("flow \"{}\" is not defined by {}", exec.flow, path.display());
    crate::views::retry(flow.map(|f| f.as_ref()).ok_or_else(missing), exec)
}

/// The flows of a daemon config, loaded and checked as the daemon would (connectors
/// included), for offline commands; errors are printed.
async fn offline_flows(path: &Path) -> Result<(DaemonConfig, crate::loader::Setup), u8> {
    let config = DaemonConfig::load(path).map_err(|errors| {
        super::print_errors(&errors);
        EXIT_CONFIG
    })?;
    match crate::loader::load(&config, &[], Purpose::Offline).await {
        Ok(setup) => Ok((config, setup)),
        Err(failed) => {
            super::report_config_errors(&failed.errors, &failed.summary(), super::MessageFormat::Human);
            Err(EXIT_CONFIG)
        }
    }
}

#[derive(Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub flow: Option<String>,
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long, value_name = "VERSION")]
    pub flow_version: Option<String>,
    #[arg(long)]
    pub environment: Option<String>,
    #[arg(long, value_name = "JOB_ID")]
    pub job: Option<JobId>,
    #[arg(long)]
    pub step: Option<String>,
    #[arg(long)]
    pub connector: Option<String>,
    /// What was running: run (a step), accept (the trigger), or a host event name.
    #[arg(long)]
    pub action: Option<String>,
    #[arg(long)]
    pub category: Option<String>,
    /// The lowest level shown: trace, debug, info, warn or error.
    #[arg(long, value_parser = parse_level, conflicts_with = "levels")]
    pub level: Option<Level>,
    /// Exactly these levels, comma-separated.
    #[arg(long, value_name = "L[,L...]", value_delimiter = ',', value_parser = parse_level)]
    pub levels: Vec<Level>,
    /// Only records whose message contains this text.
    #[arg(long, value_name = "TEXT")]
    pub contains: Option<String>,
    #[command(flatten)]
    pub time: TimeRange,
    /// At most this many records: offline the oldest (default 1000); in client mode the
    /// newest (default 100, at most 1000), printed oldest first.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// The records older than a page (its next-page hint); client mode.
    #[arg(long, value_name = "CURSOR", value_parser = parse_log_cursor)]
    pub cursor: Option<LogKey>,
    /// Print new matching records as they are stored, until Ctrl-C or the daemon stops
    /// (client mode).
    #[arg(long, conflicts_with_all = ["from", "to", "preset", "limit", "cursor", "download"])]
    pub follow: bool,
    /// Write every matching record to FILE, oldest first, streamed; FILE appears only
    /// once complete (client mode).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["limit", "cursor", "json"])]
    pub download: Option<PathBuf>,
    /// The format of --download.
    #[arg(long, value_enum, default_value_t = super::remote::DownloadFormat::Ndjson, requires = "download")]
    pub format: super::remote::DownloadFormat,
    /// JSON: offline and with --follow one record per line, otherwise the API's answer.
    #[arg(long)]
    pub json: bool,
}

fn parse_log_cursor(s: &str) -> Result<LogKey, String> {
    s.parse()
}

fn open(dir: &Path) -> Result<RedbStore, u8> {
    if !dir.join("flowd.redb").is_file() {
        eprintln!("error: --data-dir {}: no flowd database there", dir.display());
        return Err(2);
    }
    RedbStore::open(dir, usize::MAX).map_err(|e| {
        eprintln!("error: --data-dir: {e}");
        2
    })
}

pub async fn executions(cmd: ExecutionsCommand) -> u8 {
    match cmd {
        ExecutionsCommand::List(a) => match a.target.data_dir.clone() {
            Some(dir) => list(&dir, a),
            None => super::remote::list(a).await,
        },
        ExecutionsCommand::Show(a) => match a.target.data_dir.clone() {
            Some(dir) => show(&dir, a).await,
            None => super::remote::show(a).await,
        },
        ExecutionsCommand::Resume(a) => match a.target.data_dir.clone() {
            Some(dir) => continue_execution(&dir, &a, None).await,
            None => super::remote::resume(a).await,
        },
        ExecutionsCommand::Retry(a) => match a.resume.target.data_dir.clone() {
            Some(dir) => {
                let from = if a.from_start {
                    RetryFrom::Start
                } else {
                    RetryFrom::FailedStep
                };
                continue_execution(&dir, &a.resume, Some(from)).await
            }
            None => super::remote::retry(a).await,
        },
    }
}

/// Resumes (`retry` is `None`) or retries one execution with the flows and connectors of
/// a daemon config.
async fn continue_execution(dir: &Path, a: &ResumeArgs, retry: Option<RetryFrom>) -> u8 {
    let (config, setup) = match offline_flows(&a.config).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let store = match open(dir) {
        Ok(s) => Arc::new(s),
        Err(c) => return c,
    };
    let exec = match store.execution(a.job_id) {
        Ok(Some(e)) => e,
        Ok(None) => {
            eprintln!("error: no execution {} in {}", a.job_id, dir.display());
            return 1;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let crate::loader::Setup { registry, flows } = setup;
    let Some(flow) = flows.by_name.get(&exec.flow).map(|f| f.as_ref().clone()) else {
        eprintln!(
            "error: execution {} belongs to flow \"{}\", which {} does not define",
            a.job_id,
            exec.flow,
            config.describe()
        );
        return 1;
    };
    let executor = Executor::new(Arc::new(registry), config.environment.clone()).with_store(store);
    let result = match retry {
        Some(from) => executor.retry(&flow, a.job_id, from).await,
        None => executor.resume(&flow, a.job_id).await,
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

fn list(dir: &Path, a: ListArgs) -> u8 {
    if let Err(c) = client_only(a.time.preset.is_some(), "--preset") {
        return c;
    }
    let store = match open(dir) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let q = ListQuery {
        flow: a.flow,
        project: a.project,
        statuses: a.status,
        trigger_kind: a.trigger_kind,
        from: a.time.from,
        to: a.time.to,
        before: a.cursor,
        limit: a.limit.map_or(50, |n| n as usize),
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
    } else {
        print!("{}", super::render::executions_table(&rows));
    }
    0
}

async fn show(dir: &Path, a: ShowArgs) -> u8 {
    let store = match open(dir) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let loaded = match &a.config {
        Some(path) => match offline_flows(path).await {
            Ok((_, setup)) => Some((path.as_path(), setup.flows)),
            Err(code) => return code,
        },
        None => None,
    };
    let view = loaded.as_ref().map(|(p, f)| (*p, f));
    let detail = crate::views::execution_detail(&store, a.job_id, |e| retry_view(view, e));
    let detail = match detail {
        Ok(Some(d)) => d,
        Ok(None) => {
            eprintln!("error: no execution {} in {}", a.job_id, dir.display());
            return 1;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&detail).expect("serializes"));
    } else {
        print!("{}", super::render::execution_detail(&detail));
    }
    0
}

pub async fn logs(a: LogsArgs) -> u8 {
    let Some(dir) = a.target.data_dir.clone() else {
        return super::remote::logs(a).await;
    };
    let refused = client_only(a.time.preset.is_some(), "--preset")
        .and_then(|()| client_only(a.cursor.is_some(), "--cursor"))
        .and_then(|()| client_only(a.follow, "--follow"))
        .and_then(|()| client_only(a.download.is_some(), "--download"));
    if let Err(c) = refused {
        return c;
    }
    let store = match open(&dir) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let q = LogQuery {
        job_id: a.job,
        project: a.project,
        flow: a.flow,
        flow_version: a.flow_version,
        environment: a.environment,
        step: a.step,
        connector: a.connector,
        action: a.action,
        level: a.level,
        levels: a.levels,
        category: a.category,
        contains: a.contains,
        from: a.time.from,
        to: a.time.to,
        limit: a.limit.map_or(1000, |n| n as usize),
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
