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
    /// Each wait, with the time it ends at.
    waiting: Mutex<HashMap<JobId, Entry>>,
}

/// A registered wait: its wake-up, its end, and whether it was handed over (see
/// [`Wait::hand_over`]) for the next registration of its job to take up.
struct Entry {
    notify: Arc<Notify>,
    until: SystemTime,
    handed: bool,
}

/// How far a wake asked for the pause due at one time may be from a wait's own end and
/// still be for it (a due time read back from the store may be rounded).
const SAME_PAUSE: Duration = Duration::from_secs(1);

impl Pauses {
    /// Waits until `until`, or until [`Pauses::wake`] is called for `job`.
    pub(crate) async fn wait(&self, job: JobId, until: SystemTime) {
        self.register(job, until).ended().await
    }

    /// Takes `job`'s wait until `until` now, before the pause is made visible, so that a
    /// resume request that sees it paused finds its waiter; the wait is given up when
    /// the returned [`Wait`] is dropped without being waited out.
    pub(crate) fn register(&self, job: JobId, until: SystemTime) -> Wait<'_> {
        let notify = {
            let mut waiting = self.waiting.locked();
            // A wait handed over is taken up, with any wake it got in between.
            let notify = match waiting.get(&job) {
                Some(e) if e.handed => e.notify.clone(),
                _ => Arc::new(Notify::new()),
            };
            waiting.insert(
                job,
                Entry {
                    notify: notify.clone(),
                    until,
                    handed: false,
                },
            );
            notify
        };
        Wait {
            pauses: self,
            job,
            notify,
            until,
        }
    }

    /// Ends the wait of `job` now; false when no task here waits for it.
    pub fn wake(&self, job: JobId) -> bool {
        match self.waiting.locked().get(&job) {
            Some(e) => {
                // A permit is kept if the waiter is between registering and awaiting.
                e.notify.notify_one();
                true
            }
            None => false,
        }
    }

    /// Ends the wait of `job` now if it is the pause due at `due` (a later pause of the
    /// same execution is not woken by a request for an earlier one); false otherwise.
    pub fn wake_due(&self, job: JobId, due: SystemTime) -> bool {
        let same = |until: SystemTime| {
            let gap = until.duration_since(due).or_else(|e| Ok::<_, ()>(e.duration()));
            gap.is_ok_and(|g| g <= SAME_PAUSE)
        };
        match self.waiting.locked().get(&job) {
            Some(e) if same(e.until) => {
                e.notify.notify_one();
                true
            }
            _ => false,
        }
    }
}

/// A registered wait (see [`Pauses::register`]).
pub(crate) struct Wait<'a> {
    pauses: &'a Pauses,
    job: JobId,
    notify: Arc<Notify>,
    until: SystemTime,
}

impl Wait<'_> {
    /// Leaves the wait registered for whoever waits the pause out elsewhere (the
    /// dispatcher parks a long pause): its next [`Pauses::register`] of the job takes it
    /// up, with a wake that came in between.
    pub(crate) fn hand_over(self) {
        if let Some(e) = self.pauses.waiting.locked().get_mut(&self.job)
            && Arc::ptr_eq(&e.notify, &self.notify)
        {
            e.handed = true;
        }
    }

    /// Until the pause's time, or until woken (a wake before this call is kept).
    pub(crate) async fn ended(self) {
        let wait = self.until.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = self.notify.notified() => {}
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let mut waiting = self.pauses.waiting.locked();
        if waiting
            .get(&self.job)
            .is_some_and(|e| Arc::ptr_eq(&e.notify, &self.notify) && !e.handed)
        {
            waiting.remove(&self.job);
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
        let due = SystemTime::now() + Duration::from_secs(3600);
        let p = pauses.clone();
        let waiter = tokio::spawn(async move { p.wait(job, due).await });
        while !pauses.wake_due(job, due + Duration::from_millis(400)) {
            assert!(
                !pauses.wake_due(job, due + Duration::from_secs(5)),
                "a request for another pause"
            );
            tokio::task::yield_now().await;
        }
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken by a request for its own due time")
            .unwrap();
        pauses.wait(job, SystemTime::now()).await;
    }

    #[tokio::test]
    async fn a_registered_wait_is_found_before_it_is_waited_out_and_forgotten_when_dropped() {
        let pauses = Pauses::default();
        let job = JobId::new();
        let wait = pauses.register(job, SystemTime::now() + Duration::from_secs(3600));
        // Woken between registering and waiting (a resume request right after the pause
        // was stored): the wake is kept and ends the wait at once.
        assert!(pauses.wake(job));
        tokio::time::timeout(Duration::from_secs(10), wait.ended())
            .await
            .expect("a wake before the wait ends it");
        assert!(!pauses.wake(job), "the wait is over and forgotten");
        drop(pauses.register(job, SystemTime::now() + Duration::from_secs(3600)));
        assert!(!pauses.wake(job), "a wait given up is forgotten");
    }

    #[tokio::test]
    async fn a_wait_handed_over_is_taken_up_with_a_wake_that_came_in_between() {
        let pauses = Arc::new(Pauses::default());
        let job = JobId::new();
        let hour = SystemTime::now() + Duration::from_secs(3600);
        // The run registers its long pause and hands it to the dispatcher to park.
        pauses.register(job, hour).hand_over();
        // A resume request finds it before the parked wait has begun, and wakes it.
        assert!(pauses.wake(job), "the handed-over wait is found");
        // The parked wait takes it up, and the wake is not lost.
        tokio::time::timeout(Duration::from_secs(10), pauses.wait(job, hour))
            .await
            .expect("woken long before its hour");
        assert!(!pauses.wake(job), "taken up, waited out and forgotten");
        // A wait that is not handed over starts afresh, without an earlier wake.
        drop(pauses.register(job, hour));
        assert!(!pauses.wake(job));
    }
}
