//! Where an offline command reads and writes executions: a data directory (`--data-dir`,
//! redb, opened as the daemon opens it: no daemon may have it open, redb holds a lock), or
//! the store a daemon config's `[store]` names (`--config`: its data directory, or its
//! PostgreSQL database, which running daemons may share; see [`super::executions`] for
//! how writes there keep to the daemons' leases).

use super::EXIT_CONFIG;
use crate::config::{DaemonConfig, StoreSection};
use crate::store::{PostgresStore, Store, StoreConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The most connections an offline command opens to a PostgreSQL store.
const OFFLINE_POOL: usize = 2;

/// Which store an offline command was given.
#[derive(Debug, Clone)]
pub enum Source {
    DataDir(PathBuf),
    Config(PathBuf),
}

/// A store opened for an offline command.
pub(super) struct Offline {
    pub store: Arc<dyn Store>,
    /// How messages name it: the data directory, or the database.
    pub name: String,
    /// How long a claim on an execution lasts unrenewed (the config's `[store] lease`).
    pub lease: Duration,
}

/// Opens the store of `source`, which must hold one (a data directory with no database
/// is refused, exit code 2; a database is migrated as `flowd store migrate` does), or
/// says why not: 2 for what the command line or the config got wrong and a database
/// that cannot be reached (as for an unreachable daemon).
pub(super) async fn open(source: &Source) -> Result<Offline, u8> {
    open_as(source, false, usize::MAX).await
}

/// [`open`], making an empty redb store in a data directory with none (a flow may be
/// deactivated before the daemon first starts).
pub(super) async fn create(source: &Source) -> Result<Offline, u8> {
    open_as(source, true, usize::MAX).await
}

/// [`create`] for `flowd run`, which records payloads of at most `max_payload` bytes in a
/// data directory (`--config`'s own limit applies to its store).
pub(super) async fn recording(source: &Source, max_payload: usize) -> Result<Offline, u8> {
    open_as(source, true, max_payload).await
}

async fn open_as(source: &Source, create: bool, max_payload: usize) -> Result<Offline, u8> {
    let lease = StoreSection::default().lease();
    let file = match source {
        Source::DataDir(dir) => {
            let what = || format!("--data-dir {}", dir.display());
            let store = redb(dir, create, max_payload, what).await?;
            let name = dir.display().to_string();
            return Ok(Offline { store, name, lease });
        }
        Source::Config(file) => file,
    };
    let config = DaemonConfig::load(file).map_err(|errors| {
        super::print_errors(&errors);
        EXIT_CONFIG
    })?;
    let lease = config.store.lease();
    match &config.store {
        StoreSection::Redb { .. } => {
            let dir = &config.server.data_dir;
            let what = || format!("--config {}: its data directory {}", file.display(), dir.display());
            let store = redb(dir, create, config.limits.max_payload as usize, what).await?;
            Ok(Offline {
                store,
                name: dir.display().to_string(),
                lease,
            })
        }
        StoreSection::Postgres { url, url_env, .. } => {
            if url.is_empty() {
                eprintln!(
                    "error: --config {}: [store] url_env names {url_env}, which is not set (or empty) here: set it to the database's URL",
                    file.display()
                );
                return Err(EXIT_CONFIG);
            }
            match PostgresStore::open(url, config.limits.max_payload as usize, OFFLINE_POOL).await {
                Ok(store) => Ok(Offline {
                    name: store.name().to_string(),
                    store: Arc::new(store),
                    lease,
                }),
                Err(e) => {
                    eprintln!("error: --config {}: {e}", file.display());
                    Err(EXIT_CONFIG)
                }
            }
        }
    }
}

/// The redb store in `dir`; `what` names it in messages.
async fn redb(dir: &Path, create: bool, max_payload: usize, what: impl Fn() -> String) -> Result<Arc<dyn Store>, u8> {
    if !create && !dir.join("flowd.redb").is_file() {
        eprintln!("error: {}: no flowd database there", what());
        return Err(EXIT_CONFIG);
    }
    let config = StoreConfig::redb(dir.to_path_buf(), max_payload);
    crate::store::open(&config).await.map_err(|e| {
        eprintln!("error: {}: {e}", what());
        EXIT_CONFIG
    })
}
