//! `flowd validate`: the daemon config and every flow, through the loader `serve` uses,
//! reporting every problem (exit 0 when valid, 2 when not).

use super::{EXIT_CONFIG, EXIT_OK, MessageFormat};
use crate::config::DaemonConfig;
use crate::loader::{self, Purpose};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ValidateArgs {
    /// The daemon config.
    #[arg(long, value_name = "FILE", default_value = "config/flowd.toml", env = "FLOWD_CONFIG")]
    config: PathBuf,
    /// How errors are printed: `human` (as cargo does, on stderr) or `json` (one object a
    /// line on stdout, for editors and CI).
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    message_format: MessageFormat,
    /// Use a component file as connector NAME (repeatable), with no grants, as `run` does.
    #[arg(long = "connector", value_name = "NAME=FILE.wasm", value_parser = super::run::parse_connector)]
    connectors: Vec<(String, PathBuf)>,
    /// Flow files to check besides those in the config's flows directory.
    flows: Vec<PathBuf>,
}

pub async fn validate(args: ValidateArgs) -> u8 {
    let mut config = match DaemonConfig::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            super::report_config_errors(&errors, "", args.message_format);
            return EXIT_CONFIG;
        }
    };
    for (name, path) in &args.connectors {
        config
            .connectors
            .insert(name.clone(), super::run::file_connector(name, path));
    }
    match loader::load(&config, &args.flows, Purpose::Validate).await {
        Ok(setup) => {
            let n = setup.flows.by_name.len();
            match args.message_format {
                MessageFormat::Human => println!(
                    "ok: {} and {n} flow{} are valid",
                    config.describe(),
                    if n == 1 { "" } else { "s" }
                ),
                MessageFormat::Json => println!(
                    "{}",
                    serde_json::json!({ "reason": "summary", "errors": 0, "checked": format!("{n} of {n} flows valid") })
                ),
            }
            EXIT_OK
        }
        Err(failed) => {
            super::report_config_errors(&failed.errors, &failed.summary(), args.message_format);
            EXIT_CONFIG
        }
    }
}
