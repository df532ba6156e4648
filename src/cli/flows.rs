//! `flowd flows activate|deactivate`: switch a flow on or off in a data directory (while
//! the daemon is stopped; the admin API does it live). The choice survives restarts.

use crate::store::{RedbStore, Store, Write};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum FlowsCommand {
    /// Take webhooks and fire schedules for the flow again.
    Activate(FlowArgs),
    /// Answer the flow's webhooks with 409 and fire none of its schedules.
    Deactivate(FlowArgs),
}

#[derive(Args)]
pub struct FlowArgs {
    flow: String,
    /// The data directory of the daemon.
    #[arg(long, value_name = "DIR", env = "FLOWD_DATA_DIR")]
    data_dir: PathBuf,
}

pub async fn flows(cmd: FlowsCommand) -> u8 {
    let (args, active) = match cmd {
        FlowsCommand::Activate(a) => (a, true),
        FlowsCommand::Deactivate(a) => (a, false),
    };
    let store = match RedbStore::open(&args.data_dir, usize::MAX) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --data-dir: {e}");
            return 2;
        }
    };
    match store
        .write(vec![Write::FlowActive {
            flow: args.flow.clone(),
            active,
        }])
        .await
    {
        Ok(()) => {
            println!("flow {} is {}", args.flow, if active { "active" } else { "inactive" });
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
