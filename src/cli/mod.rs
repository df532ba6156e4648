//! The `flowd` command line: flags parsed by clap into validated arguments, then one
//! subcommand run on a tokio runtime. Exit codes: 0 success, 1 the thing checked or run
//! did not succeed (or the admin API answered an error), 2 the invocation or its config
//! was wrong (or the daemon could not be reached), 3 a retry or resume was refused.
//!
//! `executions`, `logs` and `flows activate|deactivate` work in two modes: with
//! `--data-dir` on a data directory directly ([`executions`], [`flows`]), without it as a
//! client of the daemon's admin API ([`remote`] over [`client`]).

mod args;
mod check;
mod client;
mod executions;
mod flows;
mod remote;
mod render;
mod run;
mod serve;
mod validate;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "flowd",
    version,
    about = "Runs automation flows whose triggers and actions are sandboxed WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one execution of a flow locally, without a daemon, and print its timeline.
    Run(run::RunArgs),
    /// Run the daemon: webhooks, schedules and manual runs, recorded in the data directory.
    Serve(serve::ServeArgs),
    /// Inspect connector components.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Validate the daemon config and every flow, each step's config through its connector.
    Validate(validate::ValidateArgs),
    /// Recorded executions: from the daemon's admin API (--url, FLOWD_TOKEN), or with
    /// --data-dir from a data directory directly.
    Executions {
        #[command(subcommand)]
        command: executions::ExecutionsCommand,
    },
    /// The daemon's flows: list, activate, deactivate, reload.
    Flows {
        #[command(subcommand)]
        command: flows::FlowsCommand,
    },
    /// Recorded log records: from the daemon's admin API (the newest page, printed oldest
    /// first; --follow, --download), or with --data-dir from a data directory (oldest first).
    Logs(Box<executions::LogsArgs>),
    /// The daemon's scheduled tasks: next fire times, scheduled executions, enable,
    /// disable, run now (admin API).
    Schedules {
        #[command(subcommand)]
        command: remote::SchedulesCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Say which world a component implements, what it imports, whether this host can run
    /// it, and how long it takes to compile.
    Check(check::CheckArgs),
}

/// A `--config` flag's meaning, shared by subcommands.
pub(crate) fn daemon_config(
    path: Option<&PathBuf>,
) -> Result<crate::config::DaemonConfig, crate::config::ConfigErrors> {
    match path {
        Some(p) => crate::config::DaemonConfig::load(p),
        None => Ok(crate::config::DaemonConfig::builtin()),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon sets up its own logging from its config.
    if !matches!(cli.command, Command::Serve(_)) {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_max_level(tracing::Level::WARN)
            .with_target(false)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Serve(args) => serve::serve(args).await,
            Command::Plugin {
                command: PluginCommand::Check(args),
            } => check::check(args).await,
            Command::Validate(args) => validate::validate(args).await,
            Command::Executions { command } => executions::executions(command).await,
            Command::Logs(args) => executions::logs(*args).await,
            Command::Flows { command } => flows::flows(command).await,
            Command::Schedules { command } => remote::schedules(command).await,
        }
    });
    ExitCode::from(code)
}

/// Prints every config error, one per line, then a count.
pub(crate) fn print_errors(errors: &crate::config::ConfigErrors) {
    for e in &errors.0 {
        eprintln!("error: {e}");
    }
    let n = errors.len();
    eprintln!("{n} error{}", if n == 1 { "" } else { "s" });
}
