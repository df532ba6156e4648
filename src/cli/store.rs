//! `flowd store migrate`: brings the daemon config's store to this flowd's schema and
//! says where it stands, so an operator can migrate before starting daemons (which also
//! migrate on start). The redb store needs no step of its own: it is upgraded when opened.

use super::{EXIT_CONFIG, EXIT_FAILED, EXIT_OK};
use crate::config::{DaemonConfig, StoreSection};
use crate::store::PostgresStore;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Apply the schema migrations this flowd knows to the configured PostgreSQL database
    /// (each once; safe to run while daemons run), and print its schema version.
    Migrate(MigrateArgs),
}

#[derive(Args)]
pub struct MigrateArgs {
    /// The daemon config; its `[store]` names the database.
    #[arg(long, value_name = "FILE", default_value = "config/flowd.toml", env = "FLOWD_CONFIG")]
    config: PathBuf,
}

pub async fn store(cmd: StoreCommand) -> u8 {
    match cmd {
        StoreCommand::Migrate(a) => migrate(a).await,
    }
}

async fn migrate(a: MigrateArgs) -> u8 {
    let config = match DaemonConfig::load(&a.config) {
        Ok(c) => c,
        Err(errors) => {
            super::print_errors(&errors);
            return EXIT_CONFIG;
        }
    };
    match &config.store {
        StoreSection::Redb { .. } => {
            println!(
                "ok: {} keeps executions in redb ({}), which is upgraded when opened: nothing to migrate",
                config.describe(),
                config.server.data_dir.display()
            );
            EXIT_OK
        }
        StoreSection::Postgres { url, pool_size, .. } => {
            if url.is_empty() {
                // The variable is missing or empty: the config's own error says which.
                super::print_errors(&config.serve_errors);
                return EXIT_CONFIG;
            }
            match PostgresStore::open(url, config.limits.max_payload as usize, (*pool_size as usize).min(2)).await {
                Ok(store) => match store.migrate().await {
                    Ok(version) => {
                        println!("ok: {} is at schema version {version}", store.name());
                        EXIT_OK
                    }
                    Err(e) => {
                        eprintln!("error: {}: {e}", store.name());
                        EXIT_FAILED
                    }
                },
                Err(e) => {
                    eprintln!("error: {e}");
                    EXIT_FAILED
                }
            }
        }
    }
}
