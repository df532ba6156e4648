//! The lease a run holds on its execution, for the task running it: every write the
//! run's recorder makes carries its fence (so a store refuses it once another owner
//! claimed the execution), and a run whose lease was lost starts no further step.

use crate::store::{JobId, Lease, StoreError, Write, WriteError};
use tokio_util::sync::CancellationToken;

/// A lease on one execution, and the signal that it was lost.
#[derive(Clone)]
pub struct Hold {
    pub lease: Lease,
    /// Cancelled when the lease is found lost (its renewal refused).
    pub lost: CancellationToken,
}

tokio::task_local! {
    static HOLD: Hold;
}

impl Hold {
    /// Runs `work` under this hold: the writes of its execution carry the fence.
    pub async fn scope<F: std::future::Future>(self, work: F) -> F::Output {
        HOLD.scope(self, work).await
    }
}

/// The fence check to send with a write of `job`, when the task runs under a hold on it.
pub(super) fn fence(job: JobId) -> Option<Write> {
    HOLD.try_with(|h| {
        (h.lease.job == job).then(|| Write::Fence {
            job,
            owner: h.lease.owner.clone(),
            fence: h.lease.fence,
        })
    })
    .ok()
    .flatten()
}

/// Refuses to go on with `job` when the task's hold on it was lost.
pub(super) fn check(job: JobId) -> Result<(), StoreError> {
    let lost = HOLD
        .try_with(|h| (h.lease.job == job && h.lost.is_cancelled()).then(|| h.lease.clone()))
        .ok()
        .flatten();
    match lost {
        Some(lease) => Err(StoreError::Write(WriteError::Fenced {
            job,
            owner: lease.owner,
            fence: lease.fence,
        })),
        None => Ok(()),
    }
}
