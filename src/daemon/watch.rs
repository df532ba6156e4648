//! Operator changes made through another daemon sharing the store: each daemon reads the
//! store's [`OperatorState`] every [`EVERY`] and takes on the flows deactivated (or
//! schedules disabled) there, reloads its own config files when a reload was asked of
//! all, and wakes the timed pauses it waits out that a resume was asked of elsewhere. Polling, not LISTEN/NOTIFY: one small read a second costs the database nothing,
//! needs no connection of its own, and a daemon that lost the database catches up on its
//! next read without a path of its own (see docs/storage.md).

use super::Shared;
use crate::store::OperatorState;
use crate::sync::Shared as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the store is read: how late another daemon's change may take effect here.
pub const EVERY: Duration = Duration::from_secs(1);

/// Starts watching when the store is shared (a backend one daemon has to itself has
/// nothing to watch); `initial` is the state read at start.
pub fn spawn(shared: &Arc<Shared>, initial: &Option<OperatorState>) -> Option<tokio::task::JoinHandle<()>> {
    let initial = initial.as_ref()?;
    shared.seen_reloads.store(initial.reloads, Ordering::SeqCst);
    Some(tokio::spawn(watch(shared.clone())))
}

async fn watch(shared: Arc<Shared>) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shared.stopping.cancelled() => return,
        }
        let state = match shared.store.operator_state().await {
            Ok(Some(state)) => state,
            Ok(None) => return,
            Err(e) => {
                // Said once per outage, not every second.
                if !failing {
                    tracing::warn!(error = %e, "cannot read operator changes from the store; retrying every second");
                }
                failing = true;
                continue;
            }
        };
        if failing {
            tracing::info!("reading operator changes from the store again");
            failing = false;
        }
        wake(&shared, &state.wakes).await;
        if *shared.inactive.read_now() != state.inactive {
            tracing::info!(inactive = ?state.inactive, "flows (de)activated through another daemon");
            *shared.inactive.write_now() = state.inactive;
        }
        if shared.seen_reloads.fetch_max(state.reloads, Ordering::SeqCst) < state.reloads {
            match shared.reload().await {
                Ok(Ok(n)) => tracing::info!(flows = n, "reloaded the config (asked through another daemon)"),
                Ok(Err(errors)) => {
                    for e in &errors.0 {
                        tracing::error!("{e}");
                    }
                    tracing::error!(
                        errors = errors.len(),
                        "reload asked through another daemon refused: the running config stays"
                    );
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "reload asked through another daemon failed: the running config stays")
                }
            }
        }
    }
}

/// Wakes the timed pauses among `wakes` that this daemon waits out, and has the store
/// forget their requests (the others are another daemon's, or not waited out yet).
async fn wake(shared: &Shared, wakes: &[(crate::store::JobId, std::time::SystemTime)]) {
    let woken: Vec<_> = wakes
        .iter()
        .filter(|(job, due)| shared.pauses.wake_due(*job, *due))
        .map(|(job, _)| *job)
        .collect();
    for job in &woken {
        tracing::info!(job = %job, "timed pause ended early: a resume was asked through another daemon");
    }
    if !woken.is_empty()
        && let Err(e) = shared.store.forget_wakes(woken).await
    {
        tracing::warn!(error = %e, "could not clear the resume requests just acted on; a later pause of the same execution is not affected");
    }
}
