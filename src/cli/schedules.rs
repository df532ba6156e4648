//! `flowd schedules`: the daemon's scheduled tasks through its admin API: each schedule
//! flow's next fire times, its scheduled executions, enable, disable and run now.

use super::args::{Query, Remote, TimeRange, parse_flow_name, parse_status};
use super::remote::{page_limit, print_json, text, with_client};
use crate::engine::ExecutionStatus;
use crate::store::JobId;
use clap::{Args, Subcommand};
use hyper::Method;

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
        a.time.append(&mut q).map_err(super::remote::CommandError::usage)?;
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
