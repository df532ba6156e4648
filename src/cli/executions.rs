//! `flowd executions list|show|resume|retry`. With `--data-dir` or `--config` they read
//! the store directly, for use without a daemon (offline mode, here; see
//! [`super::source`]); with neither they ask the daemon's admin API (client mode,
//! [`super::remote`]). An offline resume or retry claims the execution first, as a daemon
//! does, and runs it under that lease (renewed, its writes fenced): an execution a live
//! daemon holds on a shared store is refused, naming the daemon, never raced.

use super::EXIT_CONFIG;
use super::args::Query;
use super::args::{Target, TimeRange, client_only, parse_status};
use super::claims::{Claims, refusal};
use super::client::{Client, ClientError};
use super::remote::{CommandError, Outcome, POLL, decode, page_limit, print_json, with_client};
use super::source::Source;
use crate::config::DaemonConfig;
use crate::detail::RetryView;
use crate::engine::{ContinueError, ExecutionStatus, Executor, RetryFrom};
use crate::loader::{FlowSet, Purpose};
use crate::store::{Execution, JobId, ListQuery};
use clap::{Args, Subcommand};
use hyper::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum ExecutionsCommand {
    /// Executions, newest first. Asks the daemon's admin API, or offline reads the store
    /// (--data-dir DIR, or --config FILE: the store its [store] names).
    List(ListArgs),
    /// One execution: each attempt's steps with status, timing, fuel, error and payloads.
    /// Asks the daemon's admin API, or offline reads the store (--data-dir or --config).
    Show(ShowArgs),
    /// Resume a paused execution now and run it to its end: the daemon does (admin API),
    /// or offline this command does, with the flows of --config, in a stopped daemon's
    /// data directory or in a store daemons share (an execution a daemon holds is
    /// refused, naming it).
    Resume(ResumeArgs),
    /// Retry a failed, partially executed or rejected execution as a new attempt, from
    /// the first step that did not succeed (or with --from-start, from the beginning):
    /// the daemon does (admin API), or offline this command does (as resume).
    Retry(RetryArgs),
}

#[derive(Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub target: Target,
    pub job_id: JobId,
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
    #[arg(long)]
    pub json: bool,
}

/// Whether a manual retry of `exec` is possible now under the flows of `config`
/// (`None`: no config given), loaded as the daemon loads them.
fn retry_view(config: Option<(&Path, &FlowSet)>, exec: &Execution) -> RetryView {
    let Some((path, flows)) = config else {
        return RetryView::unknown(exec);
    };
    let flow = flows.by_name.get(&exec.flow);
    let missing = || format!("flow \"{}\" is not defined by {}", exec.flow, path.display());
    crate::detail::retry(flow.map(|f| f.as_ref()).ok_or_else(missing), exec)
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

pub async fn executions(cmd: ExecutionsCommand) -> u8 {
    let target = match &cmd {
        ExecutionsCommand::List(a) => &a.target,
        ExecutionsCommand::Show(a) => &a.target,
        ExecutionsCommand::Resume(a) => &a.target,
        ExecutionsCommand::Retry(a) => &a.resume.target,
    };
    // Only `list` has no flows to take from a config besides the store.
    let source = match target.source(!matches!(cmd, ExecutionsCommand::List(_))) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match (cmd, source) {
        (ExecutionsCommand::List(a), Some(source)) => list(&source, a).await,
        (ExecutionsCommand::List(a), None) => list_remote(a).await,
        (ExecutionsCommand::Show(a), Some(source)) => show(&source, a).await,
        (ExecutionsCommand::Show(a), None) => show_remote(a).await,
        (ExecutionsCommand::Resume(a), Some(source)) => continue_execution(&source, &a, None).await,
        (ExecutionsCommand::Resume(a), None) => resume_remote(a).await,
        (ExecutionsCommand::Retry(a), Some(source)) => {
            let from = if a.from_start {
                RetryFrom::Start
            } else {
                RetryFrom::FailedStep
            };
            continue_execution(&source, &a.resume, Some(from)).await
        }
        (ExecutionsCommand::Retry(a), None) => retry_remote(a).await,
    }
}

/// Resumes (`retry` is `None`) or retries one execution with the flows and connectors of
/// a daemon config, under a claim on it (see [`super::claims`]).
async fn continue_execution(source: &Source, a: &ResumeArgs, retry: Option<RetryFrom>) -> u8 {
    let (config, setup) = match offline_flows(&a.target.flows_config()).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let offline = match super::source::open(source).await {
        Ok(s) => s,
        Err(c) => return c,
    };
    let store = offline.store.clone();
    let exec = match store.execution(a.job_id).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            eprintln!("error: no execution {} in {}", a.job_id, offline.name);
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
    let claims = Claims::start(offline.store.clone(), offline.lease);
    let hold = match claims.claim(a.job_id).await {
        Ok(hold) => hold,
        Err(e) => {
            claims.stop().await;
            return refusal(a.job_id, &offline.name, &e);
        }
    };
    let work = async {
        match retry {
            Some(from) => executor.retry(&flow, a.job_id, from).await,
            None => executor.resume(&flow, a.job_id).await,
        }
    };
    let result = hold.scope(work).await;
    claims.stop().await;
    match result {
        Ok(report) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report).expect("serializes"));
            } else {
                print!("{}", super::render::timeline(&report, &flow));
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

async fn list(source: &Source, a: ListArgs) -> u8 {
    if let Err(c) = client_only(a.time.preset.is_some(), "--preset") {
        return c;
    }
    if let Err(why) = a.time.check() {
        eprintln!("error: {why}");
        return 2;
    }
    let store = match super::source::open(source).await {
        Ok(s) => s.store,
        Err(c) => return c,
    };
    let limit = a.limit.map_or(50, |n| n as usize);
    let q = ListQuery {
        flow: a.flow,
        project: a.project,
        statuses: a.status,
        trigger_kind: a.trigger_kind,
        from: a.time.from,
        to: a.time.to,
        before: a.cursor,
        limit,
    };
    let rows = match store.list(&q).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    // The same page as the admin API's, so a script reads either.
    let page = crate::detail::execution_page(&rows, limit);
    if a.json {
        print_json(&page);
    } else {
        print!("{}", super::render::executions_table(&rows));
        if let Some(next) = page["next_cursor"].as_str() {
            println!("more: add --cursor {next} for the next page");
        }
    }
    0
}

async fn show(source: &Source, a: ShowArgs) -> u8 {
    let offline = match super::source::open(source).await {
        Ok(s) => s,
        Err(c) => return c,
    };
    let store = offline.store;
    let loaded = match &a.target.config {
        Some(path) => match offline_flows(path).await {
            Ok((_, setup)) => Some((path.as_path(), setup.flows)),
            Err(code) => return code,
        },
        None => None,
    };
    let view = loaded.as_ref().map(|(p, f)| (*p, f));
    let detail = crate::detail::execution_detail(store.as_ref(), a.job_id, |e| Some(retry_view(view, e))).await;
    let detail = match detail {
        Ok(Some(d)) => d,
        Ok(None) => {
            eprintln!("error: no execution {} in {}", a.job_id, offline.name);
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
        let shown = serde_json::to_value(&detail).expect("the detail serializes");
        print!("{}", super::render::execution_detail(&shown));
    }
    0
}

async fn list_remote(a: ListArgs) -> u8 {
    with_client(&a.target.remote, async |c| {
        let mut q = Query::new();
        q.opt("flow", a.flow.as_deref())
            .opt("project", a.project.as_deref())
            .list("status", a.status.iter().map(|s| s.as_str()))
            .opt("trigger_kind", a.trigger_kind.as_deref())
            .opt("limit", page_limit(a.limit)?)
            .opt("cursor", a.cursor.map(|c| c.to_string()));
        a.time.append(&mut q).map_err(super::remote::CommandError::usage)?;
        let (_, v) = c.json(Method::GET, &q.path("/v1/executions"), None).await?;
        if a.json {
            print_json(&v);
            return Ok(0);
        }
        let rows: Vec<Execution> = decode(&c, &v, "executions")?;
        print!("{}", super::render::executions_table(&rows));
        if let Some(next) = v["next_cursor"].as_str() {
            println!("more: add --cursor {next} for the next page");
        }
        Ok(0)
    })
    .await
}

async fn show_remote(a: ShowArgs) -> u8 {
    with_client(&a.target.remote, async |c| {
        let (_, v) = c
            .json(Method::GET, &format!("/v1/executions/{}", a.job_id), None)
            .await?;
        if a.json {
            print_json(&v);
        } else {
            print!("{}", super::render::execution_detail(&v));
        }
        Ok(0)
    })
    .await
}

/// A 409 of the retry and resume endpoints is a refusal: exit 3 with its code.
pub(super) fn refused(what: &str, e: ClientError) -> Outcome {
    match e {
        ClientError::Api {
            status: StatusCode::CONFLICT,
            code,
            message,
            ..
        } => {
            eprintln!("error: {what} refused ({code}): {message}");
            Ok(3)
        }
        e => Err(e.into()),
    }
}

async fn resume_remote(a: ResumeArgs) -> u8 {
    with_client(&a.target.remote, async |c| {
        let path = format!("/v1/executions/{}/resume", a.job_id);
        let v = match c.json(Method::POST, &path, None).await {
            Ok((_, v)) => v,
            Err(e) => return refused("resume", e),
        };
        if a.json {
            print_json(&v);
        } else {
            println!("resume accepted: {}", a.job_id);
        }
        Ok(0)
    })
    .await
}

async fn retry_remote(a: RetryArgs) -> u8 {
    let job = a.resume.job_id;
    with_client(&a.resume.target.remote, async |c| {
        let from = if a.from_start { "start" } else { "failed_step" };
        let path = format!("/v1/executions/{job}/retry?from={from}");
        let v = match c.json(Method::POST, &path, None).await {
            Ok((_, v)) => v,
            Err(e) => return refused("retry", e),
        };
        let attempt: u32 = decode(&c, &v, "attempt")?;
        if !a.wait {
            if a.resume.json {
                print_json(&v);
            } else {
                println!("retry accepted: attempt {attempt} of {job}");
            }
            return Ok(0);
        }
        if !a.resume.json {
            println!("retry accepted: attempt {attempt} of {job}; waiting for it to end");
        }
        let row = wait_for(&c, job, attempt).await?;
        if a.resume.json {
            print_json(&row);
        }
        let e: Execution =
            serde_json::from_value(row).map_err(|e| CommandError::local(format!("the execution row: {e}")))?;
        if !a.resume.json {
            println!(
                "attempt {attempt} of {job}: {} ({} of {} steps executed{})",
                e.status.as_str(),
                e.steps_executed,
                e.steps_total,
                crate::detail::duration(&e).map_or(String::new(), |d| format!(", {d:.3}s"))
            );
            if e.status == ExecutionStatus::Paused {
                println!("it is paused: `flowd executions resume {job}` resumes it now");
            }
        }
        Ok(if e.status == ExecutionStatus::Success { 0 } else { 1 })
    })
    .await
}

/// Polls the list row of `job` until its attempt `attempt` has ended or paused (a pause
/// may last until someone resumes it, so waiting ends there too).
async fn wait_for(c: &Client, job: JobId, attempt: u32) -> Result<Value, CommandError> {
    loop {
        let (_, v) = c
            .json(Method::GET, &format!("/v1/executions?job_id={job}"), None)
            .await?;
        let row = &v["executions"][0];
        if row.is_null() {
            return Err(CommandError::local(format!(
                "execution {job} is no longer listed by the daemon"
            )));
        }
        let this_attempt = row["attempt"].as_u64() == Some(u64::from(attempt));
        if this_attempt && (row["finished_at"].is_string() || row["status"] == "paused") {
            return Ok(row.clone());
        }
        tokio::time::sleep(POLL).await;
    }
}
