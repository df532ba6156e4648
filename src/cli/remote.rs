//! Client mode: the commands that ask a running daemon's admin API (`flowd executions`,
//! `logs`, `schedules` and `flows` without `--data-dir`). Each becomes one request (or a
//! stream, or a poll) and prints a table, or with `--json` the API's JSON as it came.
//! Exit codes: 0 ok, 1 the API answered an error, 2 a bad invocation or an unreachable
//! daemon, 3 a refused retry or resume.

use super::args::{Query, Remote, TimeRange, parse_flow_name, parse_status};
use super::client::{Client, ClientError};
use super::executions::{ListArgs, LogsArgs, ResumeArgs, RetryArgs, ShowArgs};
use crate::engine::ExecutionStatus;
use crate::store::{Execution, JobId, LogRow};
use clap::{Args, Subcommand};
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// The most an API page holds (`limit`).
const MAX_PAGE: u64 = 1000;
/// How often `retry --wait` looks at the execution again.
const POLL: Duration = Duration::from_millis(200);
/// The download progress line is redrawn at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Why a command stopped: a message for stderr and the exit code.
struct Failure {
    message: String,
    code: u8,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure {
            code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 2,
        }
    }

    fn local(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

type Outcome = Result<u8, Failure>;

/// Runs a client-mode command: the client of `remote`, then `f`, whose failure is
/// printed as `error: …`.
async fn with_client<F: AsyncFnOnce(Client) -> Outcome>(remote: &Remote, f: F) -> u8 {
    let client = match remote.client() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match f(client).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.message);
            e.code
        }
    }
}

/// A page size for the API, which answers at most [`MAX_PAGE`].
fn page_limit(limit: Option<u64>) -> Result<Option<String>, Failure> {
    match limit {
        Some(n) if n > MAX_PAGE => Err(Failure::usage(format!(
            "--limit {n}: the admin API answers at most {MAX_PAGE} per page; follow the next-page hint for more"
        ))),
        other => Ok(other.map(|n| n.to_string())),
    }
}

/// `value[key]` as `T`, or a protocol failure naming what was expected.
fn decode<T: serde::de::DeserializeOwned>(c: &Client, value: &Value, key: &str) -> Result<T, Failure> {
    serde_json::from_value(value[key].clone()).map_err(|e| {
        Failure::from(ClientError::Protocol {
            url: c.url().to_string(),
            what: format!("answered with an unexpected `{key}` ({e})"),
        })
    })
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("serializes"));
}

pub async fn list(a: ListArgs) -> u8 {
    with_client(&a.target.remote, async |c| {
        let mut q = Query::new();
        q.opt("flow", a.flow.as_deref())
            .opt("project", a.project.as_deref())
            .list("status", a.status.iter().map(|s| s.as_str()))
            .opt("trigger_kind", a.trigger_kind.as_deref())
            .opt("limit", page_limit(a.limit)?)
            .opt("cursor", a.cursor.map(|c| c.to_string()));
        a.time.append(&mut q);
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

pub async fn show(a: ShowArgs) -> u8 {
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
fn refused(what: &str, e: ClientError) -> Outcome {
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

pub async fn resume(a: ResumeArgs) -> u8 {
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

pub async fn retry(a: RetryArgs) -> u8 {
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
            serde_json::from_value(row).map_err(|e| Failure::local(format!("the execution row: {e}")))?;
        if !a.resume.json {
            println!(
                "attempt {attempt} of {job}: {} ({} of {} steps executed{})",
                e.status.as_str(),
                e.steps_executed,
                e.steps_total,
                crate::views::duration(&e).map_or(String::new(), |d| format!(", {d:.3}s"))
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
async fn wait_for(c: &Client, job: JobId, attempt: u32) -> Result<Value, Failure> {
    loop {
        let (_, v) = c
            .json(Method::GET, &format!("/v1/executions?job_id={job}"), None)
            .await?;
        let row = &v["executions"][0];
        if row.is_null() {
            return Err(Failure::local(format!(
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

/// The formats of `flowd logs --download`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DownloadFormat {
    /// One JSON record per line.
    Ndjson,
    /// A header row, then one row per record (RFC 4180 quoting).
    Csv,
    /// The lines `flowd logs` prints.
    Text,
}

impl DownloadFormat {
    fn name(self) -> &'static str {
        match self {
            DownloadFormat::Ndjson => "ndjson",
            DownloadFormat::Csv => "csv",
            DownloadFormat::Text => "text",
        }
    }
}

/// The filters of a log search, follow or download.
fn log_filters(a: &LogsArgs) -> Query {
    let mut q = Query::new();
    q.opt("flow", a.flow.as_deref())
        .opt("project", a.project.as_deref())
        .opt("flow_version", a.flow_version.as_deref())
        .opt("environment", a.environment.as_deref())
        .opt("job_id", a.job.map(|j| j.to_string()))
        .opt("step", a.step.as_deref())
        .opt("connector", a.connector.as_deref())
        .opt("action", a.action.as_deref())
        .opt("category", a.category.as_deref())
        .opt("level", a.level.map(|l| l.as_str()))
        .list("levels", a.levels.iter().map(|l| l.as_str()))
        .opt("contains", a.contains.as_deref());
    q
}

pub async fn logs(a: LogsArgs) -> u8 {
    with_client(&a.target.remote, async |c| {
        if a.follow {
            return follow(&c, log_filters(&a).path("/v1/logs/follow"), a.json).await;
        }
        if let Some(file) = &a.download {
            let mut q = log_filters(&a);
            a.time.append(&mut q);
            q.opt("format", Some(a.format.name()));
            return download(&c, q.path("/v1/logs/download"), file, a.format).await;
        }
        let mut q = log_filters(&a);
        a.time.append(&mut q);
        q.opt("limit", page_limit(a.limit)?)
            .opt("cursor", a.cursor.map(|k| k.to_string()));
        let (_, v) = c.json(Method::GET, &q.path("/v1/logs"), None).await?;
        if a.json {
            print_json(&v);
            return Ok(0);
        }
        let rows: Vec<LogRow> = decode(&c, &v, "logs")?;
        // The API pages newest first; a page reads top to bottom in time order, the
        // newest record last, as a terminal's tail does.
        for l in rows.iter().rev() {
            println!("{}", crate::views::log_line(l));
        }
        if let Some(next) = v["next_cursor"].as_str() {
            println!("older records: add --cursor {next}");
        }
        Ok(0)
    })
    .await
}

/// Prints each record of the live tail as it arrives, until the daemon ends the stream
/// (or Ctrl-C ends the process).
async fn follow(c: &Client, path: String, json: bool) -> Outcome {
    let mut body = c.stream(&path).await?;
    // Said once the daemon answered: records stored from here on are sent.
    eprintln!("following new log records from {} (Ctrl-C stops)", c.url());
    let mut pending: Vec<u8> = Vec::new();
    let mut out = std::io::stdout();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| c.broke(e))?;
        let Ok(data) = frame.into_data() else { continue };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = &line[..end];
            // Empty lines are the stream's heartbeats.
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = if json {
                String::from_utf8_lossy(line).into_owned()
            } else {
                match serde_json::from_slice::<LogRow>(line) {
                    Ok(r) => crate::views::log_line(&r),
                    Err(e) => {
                        return Err(Failure::local(format!(
                            "the live tail sent a line that is not a log record ({e})"
                        )));
                    }
                }
            };
            // A closed pipe (`| head`) ends the tail quietly.
            if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                return Ok(0);
            }
        }
    }
    eprintln!("the daemon ended the live tail");
    Ok(0)
}

/// Counts bytes and records of a download as its chunks pass.
struct Tally {
    csv: bool,
    in_quotes: bool,
    lines: u64,
    bytes: u64,
}

impl Tally {
    fn feed(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        for b in data {
            match b {
                // A quoted CSV field may hold newlines; `""` toggles twice.
                b'"' if self.csv => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => self.lines += 1,
                _ => {}
            }
        }
    }

    fn records(&self) -> u64 {
        if self.csv {
            self.lines.saturating_sub(1)
        } else {
            self.lines
        }
    }
}

/// Streams a download into a temporary file next to `file`, renamed to `file` once
/// complete, so a failed or interrupted download never leaves a truncated `file`.
async fn download(c: &Client, path: String, file: &Path, format: DownloadFormat) -> Outcome {
    let Some(name) = file.file_name() else {
        return Err(Failure::usage(format!(
            "--download {}: not a file name",
            file.display()
        )));
    };
    let partial = file.with_file_name(format!(".{}.{}.part", name.to_string_lossy(), std::process::id()));
    let body = c.stream(&path).await?;
    let mut tally = Tally {
        csv: format == DownloadFormat::Csv,
        in_quotes: false,
        lines: 0,
        bytes: 0,
    };
    let progress = std::io::stderr().is_terminal();
    let result = tokio::select! {
        r = write_body(c, body, &partial, &mut tally, progress) => r,
        _ = tokio::signal::ctrl_c() => Err(Failure { message: "interrupted".into(), code: 130 }),
    };
    if progress {
        eprint!("\r\x1b[K");
    }
    if let Err(mut e) = result {
        let _ = std::fs::remove_file(&partial);
        e.message = format!("{}; {} not written", e.message, file.display());
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&partial, file) {
        let _ = std::fs::remove_file(&partial);
        return Err(Failure::local(format!("cannot write {}: {e}", file.display())));
    }
    eprintln!(
        "downloaded {} records ({} bytes) to {}",
        tally.records(),
        tally.bytes,
        file.display()
    );
    Ok(0)
}

/// Writes each chunk of `body` to `partial` as it arrives (memory stays one chunk), then
/// syncs it.
async fn write_body(
    c: &Client,
    mut body: hyper::body::Incoming,
    partial: &Path,
    tally: &mut Tally,
    progress: bool,
) -> Result<(), Failure> {
    use tokio::io::AsyncWriteExt;
    let local = |e: std::io::Error| Failure::local(format!("cannot write {}: {e}", partial.display()));
    let mut f = tokio::fs::File::create(partial).await.map_err(local)?;
    let mut drawn = Instant::now();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| c.broke(e))?;
        let Ok(data) = frame.into_data() else { continue };
        f.write_all(&data).await.map_err(local)?;
        tally.feed(&data);
        if progress && drawn.elapsed() >= PROGRESS_EVERY {
            eprint!(
                "\r\x1b[K{} records, {} so far",
                tally.records(),
                bytesize::ByteSize(tally.bytes)
            );
            drawn = Instant::now();
        }
    }
    f.sync_all().await.map_err(local)?;
    Ok(())
}

#[derive(Subcommand)]
pub enum SchedulesCommand {
    /// Each schedule flow: cron, time zone, active, last fire and the next fire times.
    List(SchedulesListArgs),
    /// Executions started by schedules, newest first, with their trigger and end times
    /// (the last 30 minutes unless a range is given).
    Executions(ScheduleExecutionsArgs),
    /// Let the flow's schedule fire again.
    Enable(ScheduleArgs),
    /// Stop the flow's schedule from firing (its missed times are not caught up).
    Disable(ScheduleArgs),
    /// Fire the flow's schedule now.
    Run(ScheduleArgs),
}

#[derive(Args)]
pub struct SchedulesListArgs {
    #[command(flatten)]
    remote: Remote,
    /// How many next fire times per flow (default 5, at most 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100))]
    next: Option<u64>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ScheduleExecutionsArgs {
    #[command(flatten)]
    remote: Remote,
    #[arg(long, value_parser = parse_flow_name)]
    flow: Option<String>,
    /// Any of these statuses, comma-separated.
    #[arg(long, value_name = "S[,S...]", value_delimiter = ',', value_parser = parse_status)]
    status: Vec<ExecutionStatus>,
    #[command(flatten)]
    time: TimeRange,
    /// At most this many (default 50, at most 1000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Only executions older than this job id (the next-page hint of the previous page).
    #[arg(long, value_name = "JOB_ID")]
    cursor: Option<JobId>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ScheduleArgs {
    #[arg(value_parser = parse_flow_name)]
    flow: String,
    #[command(flatten)]
    remote: Remote,
    #[arg(long)]
    json: bool,
}

pub async fn schedules(cmd: SchedulesCommand) -> u8 {
    match cmd {
        SchedulesCommand::List(a) => schedules_list(a).await,
        SchedulesCommand::Executions(a) => schedule_executions(a).await,
        SchedulesCommand::Enable(a) => schedule_action(a, "enable").await,
        SchedulesCommand::Disable(a) => schedule_action(a, "disable").await,
        SchedulesCommand::Run(a) => schedule_action(a, "run").await,
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}

async fn schedules_list(a: SchedulesListArgs) -> u8 {
    with_client(&a.remote, async |c| {
        let mut q = Query::new();
        q.opt("next", a.next.map(|n| n.to_string()));
        let (_, v) = c.json(Method::GET, &q.path("/v1/schedules"), None).await?;
        if a.json {
            print_json(&v);
            return Ok(0);
        }
        let rows = v["schedules"].as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            println!("no flow has a schedule trigger");
        }
        for s in &rows {
            println!(
                "{}  {}  cron \"{}\" ({})  last fire {}",
                text(s, "flow"),
                if s["active"] == true { "enabled" } else { "disabled" },
                text(s, "cron"),
                text(s, "timezone"),
                text(s, "last_fire"),
            );
            for t in s["next_fires"].as_array().into_iter().flatten() {
                println!("  next {}", t.as_str().unwrap_or("-"));
            }
        }
        Ok(0)
    })
    .await
}

async fn schedule_executions(a: ScheduleExecutionsArgs) -> u8 {
    with_client(&a.remote, async |c| {
        let mut q = Query::new();
        q.opt("flow", a.flow.as_deref())
            .list("status", a.status.iter().map(|s| s.as_str()))
            .opt("limit", page_limit(a.limit)?)
            .opt("cursor", a.cursor.map(|c| c.to_string()));
        a.time.append(&mut q);
        let (_, v) = c.json(Method::GET, &q.path("/v1/schedules/executions"), None).await?;
        if a.json {
            print_json(&v);
            return Ok(0);
        }
        println!(
            "{:<36}  {:<20}  {:<18}  {:<24}  {:<24}  {:>9}",
            "job id", "flow", "status", "scheduled at", "finished at", "duration"
        );
        for e in v["executions"].as_array().into_iter().flatten() {
            println!(
                "{:<36}  {:<20}  {:<18}  {:<24}  {:<24}  {:>9}",
                text(e, "job_id"),
                text(e, "flow"),
                text(e, "status"),
                text(e, "scheduled_at"),
                text(e, "finished_at"),
                e["duration"].as_f64().map_or("-".into(), |d| format!("{d:.3}s")),
            );
        }
        if let Some(next) = v["next_cursor"].as_str() {
            println!("more: add --cursor {next} for the next page");
        }
        Ok(0)
    })
    .await
}

async fn schedule_action(a: ScheduleArgs, action: &str) -> u8 {
    with_client(&a.remote, async |c| {
        let path = format!("/v1/schedules/{}/{action}", a.flow);
        let (_, v) = c.json(Method::POST, &path, None).await?;
        if a.json {
            print_json(&v);
        } else if action == "run" {
            println!("schedule of {} fired: job {}", a.flow, text(&v, "job_id"));
        } else {
            println!("schedule of {} is {action}d", a.flow);
        }
        Ok(0)
    })
    .await
}

pub async fn flows_list(a: super::flows::ListArgs) -> u8 {
    with_client(&a.remote, async |c| {
        let (_, v) = c.json(Method::GET, "/v1/flows", None).await?;
        if a.json {
            print_json(&v);
            return Ok(0);
        }
        println!(
            "{:<24}  {:<16}  {:<8}  {:<8}  {:>5}  version",
            "flow", "project", "trigger", "state", "steps"
        );
        for f in v["flows"].as_array().into_iter().flatten() {
            println!(
                "{:<24}  {:<16}  {:<8}  {:<8}  {:>5}  {}",
                text(f, "name"),
                text(f, "project"),
                text(f, "trigger_kind"),
                if f["active"] == true { "active" } else { "inactive" },
                f["steps"].to_string(),
                text(f, "version"),
            );
        }
        Ok(0)
    })
    .await
}

pub async fn set_active(a: super::flows::FlowArgs, active: bool) -> u8 {
    with_client(&a.target.remote, async |c| {
        let action = if active { "activate" } else { "deactivate" };
        let (_, v) = c
            .json(Method::POST, &format!("/v1/flows/{}/{action}", a.flow), None)
            .await?;
        if a.json {
            print_json(&v);
        } else {
            println!("flow {} is {}", a.flow, if active { "active" } else { "inactive" });
        }
        Ok(0)
    })
    .await
}

pub async fn reload(a: super::flows::ReloadArgs) -> u8 {
    with_client(&a.remote, async |c| {
        match c.json(Method::POST, "/v1/reload", None).await {
            Ok((_, v)) => {
                if a.json {
                    print_json(&v);
                } else {
                    println!("reloaded: {} flows", v["flows"]);
                }
                Ok(0)
            }
            Err(ClientError::Api { code, body, .. }) if code == "invalid_config" => {
                if a.json {
                    print_json(&body);
                }
                let errors = body["error"]["errors"].as_array().cloned().unwrap_or_default();
                for e in &errors {
                    match e["location"].as_str() {
                        Some(at) => eprintln!("error: {at}: {}", text(e, "message")),
                        None => eprintln!("error: {}", text(e, "message")),
                    }
                }
                eprintln!(
                    "{} error{}: {}",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" },
                    text(&body["error"], "message")
                );
                Ok(1)
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::Tally;

    fn records(csv: bool, chunks: &[&str]) -> u64 {
        let mut t = Tally {
            csv,
            in_quotes: false,
            lines: 0,
            bytes: 0,
        };
        for c in chunks {
            t.feed(c.as_bytes());
        }
        t.records()
    }

    #[test]
    fn records_are_counted_across_chunks_and_quoted_csv_newlines() {
        assert_eq!(records(false, &["{\"a\":1}\n{\"a\"", ":2}\n"]), 2);
        assert_eq!(
            records(
                true,
                &["time,message\n", "t,\"two\nlines, \"\"quoted\"\"\"\n", "t,plain\n"]
            ),
            2
        );
    }
}
