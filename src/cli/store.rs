//! `flowd store migrate`: brings the daemon config's store to this flowd's schema and
//! says where it stands, so an operator can migrate before starting daemons (which also
//! migrate on start). The redb store needs no step of its own: it is upgraded when opened.
//! `flowd store copy`: moves an embedded redb store into the configured PostgreSQL
//! database, with progress, verifying the counts at the end.

use super::{EXIT_CONFIG, EXIT_FAILED, EXIT_OK};
use crate::config::{DaemonConfig, StoreSection};
use crate::store::redb::Part;
use crate::store::{PostgresStore, RedbStore};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Apply the schema migrations this flowd knows to the configured PostgreSQL database
    /// (each once; safe to run while daemons run), and print its schema version.
    Migrate(MigrateArgs),
    /// Copy an embedded redb store (stop the daemon using it first) into the config's
    /// PostgreSQL database, which must be empty, in batches; the counts of both are
    /// compared at the end.
    Copy(CopyArgs),
}

#[derive(Args)]
pub struct CopyArgs {
    /// The data directory holding the redb store (`flowd.redb`).
    #[arg(long, value_name = "DATA_DIR")]
    from: PathBuf,
    /// Where to: the PostgreSQL database the config's `[store]` names.
    #[arg(long, value_enum)]
    to: Target,
    /// The daemon config; its `[store]` names the database (backend = "postgres").
    #[arg(long, value_name = "FILE", default_value = "config/flowd.toml", env = "FLOWD_CONFIG")]
    config: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Target {
    Postgres,
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
        StoreCommand::Copy(a) => copy(a).await,
    }
}

/// The database URL and pool size of `config`'s PostgreSQL store, or the exit code after
/// saying why there is none.
fn postgres_of(config: &DaemonConfig) -> Result<(&str, usize), u8> {
    match &config.store {
        StoreSection::Postgres { url, pool_size, .. } if !url.is_empty() => Ok((url, (*pool_size as usize).min(2))),
        // The variable is missing or empty: the config's own error says which.
        StoreSection::Postgres { .. } => {
            super::print_errors(&config.serve_errors);
            Err(EXIT_CONFIG)
        }
        StoreSection::Redb { .. } => {
            eprintln!(
                "error: {} keeps executions in redb: name the target database with [store] backend = \"postgres\" and url_env",
                config.describe()
            );
            Err(EXIT_CONFIG)
        }
    }
}

async fn copy(a: CopyArgs) -> u8 {
    let Target::Postgres = a.to;
    let config = match DaemonConfig::load(&a.config) {
        Ok(c) => c,
        Err(errors) => {
            super::print_errors(&errors);
            return EXIT_CONFIG;
        }
    };
    let (url, pool) = match postgres_of(&config) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if !a.from.join("flowd.redb").is_file() {
        eprintln!(
            "error: {} holds no redb store (no flowd.redb): name the daemon's data directory",
            a.from.display()
        );
        return EXIT_CONFIG;
    }
    let from = match RedbStore::open(&a.from, usize::MAX) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e} (is a daemon still using it? stop it first)");
            return EXIT_FAILED;
        }
    };
    // What the source holds was within its limits when stored: none is applied again.
    let to = match PostgresStore::open(url, usize::MAX, pool).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    println!("copying {} into {}", a.from.display(), to.name());
    let progress = |part: Part, done: u64, total: u64| println!("{}: {done} of {total}", part.name());
    match crate::store::copy::copy(&from, &to, progress).await {
        Ok(counts) => {
            println!("ok: copied and verified {counts}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
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
