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
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(tracing::Level::INFO);
    if config.server.log_json {
        builder.json().init();
    } else {
        builder.with_target(false).init();
    }
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
