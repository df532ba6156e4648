//! `flowd flows list|activate|deactivate|reload`. Activation with `--data-dir` writes a
//! stopped daemon's data directory directly (offline mode, here; the choice survives
//! restarts); everything else, and activation without `--data-dir`, asks the running
//! daemon's admin API ([`super::remote`]).

use super::args::{Remote, Target, parse_flow_name};
use crate::store::{RedbStore, Store, Write};
use clap::{Args, Subcommand};
use std::path::Path;

#[derive(Subcommand)]
pub enum FlowsCommand {
    /// The daemon's loaded flows with their trigger kind and active state (client mode).
    List(ListArgs),
    /// Take webhooks and fire schedules for the flow again: in the running daemon (admin
    /// API), or with --data-dir in a stopped daemon's data.
    Activate(FlowArgs),
    /// Answer the flow's webhooks with 409 and fire none of its schedules: in the running
    /// daemon (admin API), or with --data-dir in a stopped daemon's data.
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
        FlowsCommand::List(a) => return super::remote::flows_list(a).await,
        FlowsCommand::Reload(a) => return super::remote::reload(a).await,
        FlowsCommand::Activate(a) => (a, true),
        FlowsCommand::Deactivate(a) => (a, false),
    };
    match args.target.data_dir.clone() {
        Some(dir) => set_active(&dir, &args.flow, active).await,
        None => super::remote::set_active(args, active).await,
    }
}

async fn set_active(dir: &Path, flow: &str, active: bool) -> u8 {
    let store = match RedbStore::open(dir, usize::MAX) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --data-dir: {e}");
            return 2;
        }
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
