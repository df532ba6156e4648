//! `flowd validate`: the daemon config and every flow, reporting every problem.

use crate::config::{ConfigErrors, DaemonConfig, flow_files};
use crate::loader;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ValidateArgs {
    /// The daemon config.
    #[arg(long, value_name = "FILE", default_value = "config/flowd.toml", env = "FLOWD_CONFIG")]
    config: PathBuf,
    /// Flow files to check besides those in the config's flows directory.
    flows: Vec<PathBuf>,
}

pub async fn validate(args: ValidateArgs) -> u8 {
    let config = match DaemonConfig::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            super::print_errors(&errors);
            return 1;
        }
    };
    let (registry, mut errors) = match loader::load_registry(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    let mut files = Vec::new();
    if let Some(dir) = &config.flows_dir {
        match flow_files(dir) {
            Ok(f) => files.extend(f),
            Err(e) => errors.push(e),
        }
    }
    files.extend(args.flows.iter().cloned());
    let (flows, flow_errors) = loader::load_flow_files(&registry, &config, &files).await;
    errors.extend(flow_errors);
    let valid = flows.len();
    report(&errors, &config, valid, files.len())
}

fn report(errors: &ConfigErrors, config: &DaemonConfig, valid: usize, total: usize) -> u8 {
    if errors.is_empty() {
        println!(
            "ok: {} and {total} flow{} are valid",
            config.describe(),
            if total == 1 { "" } else { "s" }
        );
        0
    } else {
        super::print_errors(errors);
        eprintln!("{valid} of {total} flow{} valid", if total == 1 { "" } else { "s" });
        1
    }
}
