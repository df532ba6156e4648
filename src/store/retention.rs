//! Retention: the background task that deletes executions and log records older than the
//! configured retention, in small batches so ordinary writes keep flowing meanwhile.

use super::{Pruned, Store, StoreError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Executions deleted per prune transaction.
const BATCH: usize = 500;

/// Prunes everything older than `retention` now, then again every `interval`, forever.
/// A failed pass is logged and tried again at the next interval.
pub fn spawn(store: Arc<dyn Store>, retention: Duration, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let cutoff = SystemTime::now().checked_sub(retention).unwrap_or(UNIX_EPOCH);
            match prune_all(store.as_ref(), cutoff).await {
                Ok(p) if p != Pruned::default() => tracing::info!(
                    executions = p.executions,
                    log_records = p.log_records,
                    "pruned records past retention"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning past retention failed; trying again later"),
            }
            tokio::time::sleep(interval).await;
        }
    })
}

/// Prunes in batches until the store says nothing more is past `cutoff`; what was
/// deleted in all.
pub async fn prune_all(store: &dyn Store, cutoff: SystemTime) -> Result<Pruned, StoreError> {
    let mut total = Pruned::default();
    loop {
        let p = store.prune(cutoff, BATCH).await?;
        total.executions += p.executions;
        total.log_records += p.log_records;
        if !p.more {
            return Ok(total);
        }
        // Let writes queued behind this batch commit before the next one.
        tokio::task::yield_now().await;
    }
}
