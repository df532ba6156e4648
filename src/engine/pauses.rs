//! Timed pauses that are being waited out in this process, so a resume request can end
//! one early: the task that waits is the one that goes on, so nothing runs twice.

use crate::store::JobId;
use crate::sync::Lock as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

/// Shared by every executor of a daemon (a reload makes new executors, not new pauses).
#[derive(Default)]
pub struct Pauses {
    waiting: Mutex<HashMap<JobId, Arc<Notify>>>,
}

impl Pauses {
    /// Waits until `until`, or until [`Pauses::wake`] is called for `job`.
    pub(crate) async fn wait(&self, job: JobId, until: SystemTime) {
        let notify = Arc::new(Notify::new());
        self.waiting.locked().insert(job, notify.clone());
        let wait = until.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = notify.notified() => {}
        }
        self.waiting.locked().remove(&job);
    }

    /// Ends the wait of `job` now; false when no task here waits for it.
    pub fn wake(&self, job: JobId) -> bool {
        match self.waiting.locked().get(&job) {
            Some(n) => {
                // A permit is kept if the waiter is between registering and awaiting.
                n.notify_one();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_ends_at_its_time_or_when_woken() {
        let pauses = Arc::new(Pauses::default());
        let job = JobId::new();
        assert!(!pauses.wake(job), "nobody waits yet");
        let p = pauses.clone();
        let waiter = tokio::spawn(async move { p.wait(job, SystemTime::now() + Duration::from_secs(3600)).await });
        while !pauses.wake(job) {
            tokio::task::yield_now().await;
        }
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken long before its hour")
            .unwrap();
        assert!(!pauses.wake(job), "the wait is over and forgotten");
        pauses.wait(job, SystemTime::now()).await;
    }
}
