//! An offline command's claims on the executions it runs (`run` with a store, `executions
//! resume|retry`), held as a daemon holds its own: under an owner id of this process,
//! renewed by a heartbeat, every write fenced, given up at the end. On a store daemons
//! share, an execution one of them holds is refused with the holder's name, never raced;
//! on a data directory (which no daemon may have open) a claim is always granted.

use crate::daemon::leases::{Leases, spawn_heartbeat};
use crate::engine::Hold;
use crate::store::{ClaimError, JobId, Lease, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub(super) struct Claims {
    store: Arc<dyn Store>,
    leases: Arc<Leases>,
    /// Ends the heartbeat.
    stopping: CancellationToken,
}

/// Says on stderr why a claim on `job` in the store `name` names was not granted; the
/// exit code: 3 when another owner holds it (a daemon running it or waiting out its
/// pause), 1 when the store could not record the claim.
pub(super) fn refusal(job: JobId, name: &str, e: &ClaimError) -> u8 {
    match e {
        ClaimError::Held { owner, until, .. } => {
            eprintln!(
                "error: execution {job} is held by {owner} until {} (a daemon sharing {name} runs it or waits out its pause): ask that daemon through its admin API (leave out --config and --data-dir), or try again once it lets go",
                crate::time_format::rfc3339(*until)
            );
            3
        }
        e => {
            eprintln!("error: claiming execution {job} in {name}: {e}");
            1
        }
    }
}

impl Claims {
    /// Claims in `store` for this process, each lasting `ttl` unrenewed.
    pub fn start(store: Arc<dyn Store>, ttl: Duration) -> Claims {
        let owner = format!("flowd-cli-{}", uuid::Uuid::now_v7());
        let leases = Arc::new(Leases::new(store.clone(), owner, ttl));
        let stopping = CancellationToken::new();
        spawn_heartbeat(leases.clone(), stopping.clone());
        Claims {
            store,
            leases,
            stopping,
        }
    }

    pub fn owner(&self) -> &str {
        &self.leases.owner
    }

    pub fn ttl(&self) -> Duration {
        self.leases.ttl
    }

    /// Claims `job`: the hold to run it under, or why not (see [`refusal`]).
    pub async fn claim(&self, job: JobId) -> Result<Hold, ClaimError> {
        let lease = self.store.claim(job, self.owner(), self.ttl()).await?;
        Ok(self.leases.hold(lease))
    }

    /// Holds `lease` (taken with an acceptance) from now on.
    pub fn hold(&self, lease: Lease) -> Hold {
        self.leases.hold(lease)
    }

    /// Gives `job` up.
    pub async fn release(&self, job: JobId) {
        self.leases.release(job).await;
    }

    /// Stops renewing and gives every claim up.
    pub async fn stop(&self) {
        self.stopping.cancel();
        self.leases.release_all().await;
    }
}
