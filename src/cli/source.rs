//! Where an offline command reads and writes executions: a data directory, opened as
//! the daemon opens it (the daemon must not be running on it; redb holds a lock).

use crate::store::{Store, StoreConfig};
use std::path::Path;
use std::sync::Arc;

/// Opens the store in `dir`, which must hold one, or says why not (exit code 2: the
/// command line is wrong).
pub(super) async fn open_store(dir: &Path) -> Result<Arc<dyn Store>, u8> {
    if !dir.join("flowd.redb").is_file() {
        eprintln!("error: --data-dir {}: no flowd database there", dir.display());
        return Err(2);
    }
    create_store(dir).await
}

/// Opens the store in `dir`, making an empty one there if there is none (a flow may be
/// deactivated before the daemon first starts).
pub(super) async fn create_store(dir: &Path) -> Result<Arc<dyn Store>, u8> {
    let config = StoreConfig::redb(dir.to_path_buf(), usize::MAX);
    crate::store::open(&config).await.map_err(|e| {
        eprintln!("error: --data-dir: {e}");
        2
    })
}
