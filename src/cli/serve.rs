//! `flowd serve`: the daemon.

use crate::config::DaemonConfig;
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
            super::print_errors(&errors);
            return 2;
        }
    };
    // Colours only for a terminal: a log file or journal gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(tracing::Level::INFO);
    if config.server.log_json {
        builder.json().init();
    } else {
        builder.with_target(false).init();
    }
    match crate::daemon::serve(config).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}
