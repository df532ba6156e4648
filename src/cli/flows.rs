//! `flowd flows list|activate|deactivate|reload`. Activation with `--data-dir` or
//! `--config` writes the store directly (offline mode, here; the choice survives restarts,
//! and daemons sharing a PostgreSQL store take it on within a second); everything else,
//! and activation with neither, asks the running daemon's admin API ([`super::remote`]).

use super::args::{Remote, Target, parse_flow_name};
use super::client::ClientError;
use super::remote::{print_json, text, with_client};
use crate::store::Write;
use clap::{Args, Subcommand};
use hyper::Method;

#[derive(Subcommand)]
pub enum FlowsCommand {
    /// The daemon's loaded flows with their trigger kind and active state (client mode).
    List(ListArgs),
    /// Take webhooks and fire schedules for the flow again: in the running daemon (admin
    /// API), or offline in the store: --data-dir (a stopped daemon's data) or --config
    /// (its [store]; daemons sharing a PostgreSQL store take it on within a second).
    Activate(FlowArgs),
    /// Answer the flow's webhooks with 409 and fire none of its schedules: in the running
    /// daemon (admin API), or offline in the store: --data-dir (a stopped daemon's data)
    /// or --config (its [store]; daemons sharing a PostgreSQL store take it on within a
    /// second).
    Deactivate(FlowArgs),
    /// Make the daemon re-read its config and every flow, all or nothing (client mode):
    /// with any error, every error is printed and the running config stays.
    Reload(ReloadArgs),
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub remote: Remote,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub remote: Remote,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct FlowArgs {
    #[arg(value_parser = parse_flow_name)]
    pub flow: String,
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub json: bool,
}

pub async fn flows(cmd: FlowsCommand) -> u8 {
    let (args, active) = match cmd {
        FlowsCommand::List(a) => return list_remote(a).await,
        FlowsCommand::Reload(a) => return reload(a).await,
        FlowsCommand::Activate(a) => (a, true),
        FlowsCommand::Deactivate(a) => (a, false),
    };
    match args.target.source(false) {
        Ok(Some(source)) => set_active(&source, &args.flow, active).await,
        Ok(None) => set_active_remote(args, active).await,
        Err(code) => code,
    }
}

async fn set_active(source: &super::source::Source, flow: &str, active: bool) -> u8 {
    let store = match super::source::create(source).await {
        Ok(s) => s.store,
        Err(code) => return code,
    };
    let write = Write::FlowActive {
        flow: flow.to_string(),
        active,
    };
    match store.write(vec![write]).await {
        Ok(()) => {
            println!("flow {flow} is {}", if active { "active" } else { "inactive" });
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

async fn list_remote(a: ListArgs) -> u8 {
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

async fn set_active_remote(a: FlowArgs, active: bool) -> u8 {
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

/// How long a reload may take unless `--timeout` says: it may compile connectors.
const RELOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

async fn reload(a: ReloadArgs) -> u8 {
    with_client(&a.remote, async |c| {
        let c = match a.remote.timeout {
            Some(_) => c,
            None => c.answering_within(RELOAD_TIMEOUT),
        };
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
