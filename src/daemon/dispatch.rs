//! Runs accepted executions: at most `server.workers` at once over all flows, each on its
//! own task, tracked so shutdown can wait for them. An execution not started when
//! shutdown begins stays `pending` in the store and is picked up on the next start.

use crate::config::Flow;
use crate::engine::{Accepted, Executor};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Becomes true when a submitted execution has finished (or was never started).
#[derive(Clone)]
pub struct Done(tokio::sync::watch::Receiver<bool>);

impl Done {
    pub fn is_done(&self) -> bool {
        *self.0.borrow()
    }

    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|d| *d).await;
    }
}

#[derive(Clone)]
pub struct Dispatcher {
    executor: Arc<Executor>,
    workers: Arc<Semaphore>,
    tasks: TaskTracker,
    stopping: CancellationToken,
}

impl Dispatcher {
    pub fn new(executor: Arc<Executor>, workers: u32, stopping: CancellationToken) -> Dispatcher {
        Dispatcher {
            executor,
            workers: Arc::new(Semaphore::new(workers as usize)),
            tasks: TaskTracker::new(),
            stopping,
        }
    }

    pub fn executor(&self) -> &Arc<Executor> {
        &self.executor
    }

    /// Runs `accepted` when a worker is free (unless shutdown comes first).
    pub fn submit(&self, flow: Arc<Flow>, accepted: Accepted) -> Done {
        self.submit_after(flow, accepted, Vec::new())
    }

    /// Like [`Dispatcher::submit`], once every one of `after` is done.
    pub fn submit_after(&self, flow: Arc<Flow>, accepted: Accepted, after: Vec<Done>) -> Done {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let this = self.clone();
        self.tasks.spawn(async move {
            // Marks the execution done however this task ends.
            let _done = DoneOnDrop(tx);
            for d in after {
                tokio::select! {
                    _ = d.wait() => {}
                    _ = this.stopping.cancelled() => return,
                }
            }
            let permit = tokio::select! {
                // A free worker wins over shutdown: work that can start, starts.
                biased;
                p = this.workers.clone().acquire_owned() => p.expect("the worker semaphore is never closed"),
                _ = this.stopping.cancelled() => return,
            };
            let job = accepted.job_id;
            match this.executor.run(&flow, accepted).await {
                Ok(r) => tracing::info!(job = %job, flow = %flow.name, status = %r.status, "execution finished"),
                Err(e) => {
                    tracing::error!(job = %job, flow = %flow.name, error = %e, "execution stopped: the store failed")
                }
            }
            drop(permit);
        });
        Done(rx)
    }

    /// Continues an execution the store holds unfinished.
    pub fn recover(&self, flow: Arc<Flow>, job: crate::store::JobId) {
        let this = self.clone();
        self.tasks.spawn(async move {
            let permit = tokio::select! {
                // A free worker wins over shutdown: work that can start, starts.
                biased;
                p = this.workers.clone().acquire_owned() => p.expect("the worker semaphore is never closed"),
                _ = this.stopping.cancelled() => return,
            };
            match this.executor.recover(&flow, job).await {
                Ok(r) => tracing::info!(job = %job, flow = %flow.name, status = %r.status, "recovered execution"),
                Err(e) => tracing::error!(job = %job, flow = %flow.name, error = %e, "recovery failed"),
            }
            drop(permit);
        });
    }

    /// Waits for every tracked execution, at most `grace`; true when all finished.
    pub async fn drain(&self, grace: std::time::Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}

struct DoneOnDrop(tokio::sync::watch::Sender<bool>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}
