//! `flowd serve`: the daemon. The whole setup is loaded (as `validate` loads it, with the
//! same report and exit code on any error) before anything listens.

use super::{EXIT_CONFIG, EXIT_FAILED, EXIT_OK, MessageFormat};
use crate::config::DaemonConfig;
use crate::loader::{self, Purpose};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ServeArgs {
    /// The daemon config.
    #[arg(long, value_name = "FILE", default_value = "config/flowd.toml", env = "FLOWD_CONFIG")]
    config: PathBuf,
}

pub async fn serve(args: ServeArgs) -> u8 {
    let config = match DaemonConfig::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            super::report_config_errors(&errors, "", MessageFormat::Human);
            return EXIT_CONFIG;
        }
    };
    // Colours only for a terminal: a log file or journal gets plain text. Set up before
    // loading, so what loading warns about (a cache that cannot be used) is logged.
    init_log(&config.server);
    let setup = match loader::load(&config, &[], Purpose::Serve).await {
        Ok(s) => s,
        Err(failed) => {
            super::report_config_errors(&failed.errors, &failed.summary(), MessageFormat::Human);
            return EXIT_CONFIG;
        }
    };
    match crate::daemon::serve(config, setup).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_FAILED
        }
    }
}

/// The daemon's log on stderr: text or JSON lines, flowd's own records up to
/// `log_level`, its dependencies' up to `info` (or `log_level` when that is quieter).
fn init_log(server: &crate::config::Server) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let ours = LevelFilter::from_level(server.log_level);
    let filter = Targets::new()
        .with_target(env!("CARGO_CRATE_NAME"), ours)
        .with_default(ours.min(LevelFilter::INFO));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if server.log_json {
        tracing_subscriber::registry()
            .with(layer.json().with_filter(filter))
            .init();
    } else {
        tracing_subscriber::registry()
            .with(layer.with_target(false).with_filter(filter))
            .init();
    }
}
