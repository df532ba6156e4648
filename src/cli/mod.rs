//! The `flowd` command line: flags parsed by clap into validated arguments, then one
//! subcommand run on a tokio runtime. Exit codes, the same for every command:
//! [`EXIT_OK`] 0 success; [`EXIT_FAILED`] 1 what ran did not succeed (an execution, the
//! daemon after it started, or the admin API answered an error); [`EXIT_CONFIG`] 2 the
//! config or the invocation is wrong (every config error, in `validate`, `run` and `serve`
//! alike), or the daemon could not be reached; [`EXIT_REFUSED`] 3 a retry or resume was
//! refused.
//!
//! One module per command (`run`, `serve`, `validate`, `check`, `executions`, `logs`,
//! `flows`, `schedules`, `store`), each with its arguments and its body. `executions`, `logs` and
//! `flows activate|deactivate` read either the store (`--data-dir`, or the `[store]` of
//! `--config`, opened by [`source`]) or the daemon's admin API (the [`client`], with what client-mode commands
//! share in [`remote`]); the choice is made once, at the top of the command.

mod args;
mod check;
mod claims;
mod client;
mod executions;
mod flows;
mod http_event;
mod logs;
mod plugin;
mod progress;
mod remote;
mod render;
mod run;
mod schedules;
mod serve;
mod source;
mod store;
mod templates;
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
    /// Recorded executions: from the daemon's admin API (--url, FLOWD_TOKEN), or offline
    /// from the store directly: --data-dir DIR, or --config FILE (the store its [store]
    /// names, redb or PostgreSQL).
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
    /// first; --follow, --download), or offline from the store, --data-dir or --config
    /// (oldest first).
    Logs(Box<logs::LogsArgs>),
    /// The daemon's scheduled tasks: next fire times, scheduled executions, enable,
    /// disable, run now (admin API).
    Schedules {
        #[command(subcommand)]
        command: schedules::SchedulesCommand,
    },
    /// The daemon config's store: `migrate` brings a PostgreSQL database to this flowd's
    /// schema.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Say which world a component implements, what it imports, whether this host can run
    /// it, and how long it takes to compile.
    Check(check::CheckArgs),
    /// Create a connector project (Rust, JavaScript or Python) from a template.
    New(plugin::NewArgs),
    /// Write the WIT this binary serves (the `flowd:connector` package).
    Wit(plugin::WitArgs),
}

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;
pub const EXIT_REFUSED: u8 = 3;

/// How config errors are printed: rendered for people, or one JSON object a line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MessageFormat {
    #[default]
    Human,
    Json,
}

/// Prints config errors (on stderr, or as JSON lines on stdout) ending with a summary;
/// `what` says what was checked (`2 of 3 flows valid`), when anything was.
pub(crate) fn report_config_errors(errors: &crate::config::ConfigErrors, what: &str, format: MessageFormat) {
    use std::io::Write as _;
    match format {
        MessageFormat::Human => {
            let _ = std::io::stderr().write_all(crate::config::report::render_all(errors, what).as_bytes());
        }
        MessageFormat::Json => {
            let mut out = std::io::stdout().lock();
            for e in &errors.0 {
                let _ = writeln!(out, "{}", crate::config::report::json(e));
            }
            let summary = serde_json::json!({ "reason": "summary", "errors": errors.len(), "checked": what });
            let _ = writeln!(out, "{summary}");
        }
    }
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
    progress::install(matches!(cli.command, Command::Serve(_)));
    // The daemon sets up its own logging from its config.
    if !matches!(cli.command, Command::Serve(_)) {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_max_level(tracing::Level::WARN)
            .with_target(false)
            .init();
    }
    if !matches!(cli.command, Command::Serve(_) | Command::Store { .. }) {
        end_quietly_on_a_closed_pipe();
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
            Command::Plugin {
                command: PluginCommand::New(args),
            } => plugin::new(args),
            Command::Plugin {
                command: PluginCommand::Wit(args),
            } => plugin::wit(args),
            Command::Validate(args) => validate::validate(args).await,
            Command::Executions { command } => executions::executions(command).await,
            Command::Logs(args) => logs::logs(*args).await,
            Command::Flows { command } => flows::flows(command).await,
            Command::Schedules { command } => schedules::schedules(command).await,
            Command::Store { command } => store::store(command).await,
        }
    });
    ExitCode::from(code)
}

/// Output piped into a reader that stops early (`flowd logs | head`) ends the command as
/// it ends `cat`, by SIGPIPE: Rust ignores the signal, and every print to the closed pipe
/// would panic. The daemon and store copies keep ignoring it: a closed peer or pipe is an
/// error they handle. Sockets are not affected (Rust sends with `MSG_NOSIGNAL`).
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: sets the disposition of one signal before any thread starts; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Prints every config error as cargo prints diagnostics, then a count.
pub(crate) fn print_errors(errors: &crate::config::ConfigErrors) {
    report_config_errors(errors, "", MessageFormat::Human);
}
