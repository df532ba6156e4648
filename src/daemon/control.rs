//! Operator actions on a running daemon, as the admin API (and SIGHUP) asks them:
//! activate or deactivate a flow, run one now (manual or schedule), retry or resume an
//! execution (under the store's claim on it), reload the config (here, or on every daemon
//! sharing the store). Each says why it was refused in its own error.

use super::{Shared, daemon_executor, spawn_schedules};
use crate::config::{ConfigErrors, DaemonConfig, Flow, TriggerKind};
use crate::engine::{Admission, Executor};
use crate::loader::{self, Purpose, Setup};
use crate::plugin::{Registry, TriggerEvent};
use crate::store::{JobId, Store, StoreError, Write};
use crate::sync::{Lock as _, Shared as _};
use anyhow::anyhow;
use serde_json::Value;
use std::sync::Arc;

/// Why a retry or resume request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ContinueRequestError {
    #[error("no execution {0}")]
    NotFound(JobId),
    #[error(
        "execution {job} belongs to flow \"{flow}\", which the daemon no longer loads; start a new execution of a loaded flow instead"
    )]
    FlowGone { job: JobId, flow: String },
    #[error("flow \"{0}\" is inactive; activate it first (POST /v1/flows/{0}/activate)")]
    Inactive(String),
    #[error("another retry or resume of execution {0} is being accepted; look at its status and try again")]
    Busy(JobId),
    #[error(transparent)]
    Continue(#[from] crate::engine::ContinueError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("claiming execution {job}: {source}")]
    Claim {
        job: JobId,
        source: crate::store::ClaimError,
    },
}

crate::store_errors_into!(ContinueRequestError);

/// How long a claim taken to accept a retry or resume holds if its holder never gives it
/// up (it is given up as soon as the request is answered).
const ACCEPT_CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The store's claim on a job while its retry or resume is accepted, so two requests
/// (to this daemon or another sharing the store) cannot both pass the checks before
/// either is stored; given up when dropped.
struct Claim {
    store: Arc<dyn Store>,
    lease: Option<crate::store::Lease>,
}

impl Claim {
    /// Gives the claim up now (before the dispatcher claims the execution to run it).
    async fn give_up(mut self) {
        let Some(lease) = self.lease.take() else { return };
        if let Err(e) = self.store.release(lease).await {
            tracing::warn!(error = %e, "could not give up a claim; it expires on its own");
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else { return };
        let store = self.store.clone();
        // Giving up is best effort: a claim that is not released expires.
        tokio::spawn(async move {
            if let Err(e) = store.release(lease).await {
                tracing::warn!(error = %e, "could not give up a claim; it expires on its own");
            }
        });
    }
}

/// Why a manual run did not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no flow named \"{0}\"")]
    UnknownFlow(String),
    #[error("flow \"{0}\" is inactive")]
    Inactive(String),
    #[error("flow \"{0}\" has no schedule trigger")]
    NotScheduled(String),
    #[error("flow \"{flow}\" has no manual trigger; {how} instead")]
    NotManual { flow: String, how: String },
    #[error("flow \"{flow}\" has a full queue; try again in {retry_after}s")]
    QueueFull { flow: String, retry_after: u64 },
    #[error("the trigger connector dropped the event: {0}")]
    Dropped(String),
    #[error("{0}; nothing was recorded")]
    TooLarge(String),
    #[error("the trigger failed (execution {0} is recorded as failed)")]
    TriggerFailed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::store_errors_into!(RunError);

impl Shared {
    /// Activates or deactivates a flow; the choice is stored and survives restarts.
    pub async fn set_active(&self, flow: &str, active: bool) -> Result<(), RunError> {
        if !self.flows().by_name.contains_key(flow) {
            return Err(RunError::UnknownFlow(flow.to_string()));
        }
        self.store
            .write(vec![Write::FlowActive {
                flow: flow.to_string(),
                active,
            }])
            .await?;
        let mut inactive = self.inactive.write_now();
        if active {
            inactive.remove(flow);
        } else {
            inactive.insert(flow.to_string());
        }
        Ok(())
    }

    /// Starts an execution of `flow` now with `body` as a manual event (the API's
    /// `POST /flows/{flow}/run`); the job id once it is stored.
    pub async fn run_now(&self, flow: &str, body: Value) -> Result<JobId, RunError> {
        self.start_now(flow, |f| match &f.trigger.kind {
            TriggerKind::Manual => Ok(TriggerEvent::Manual(body)),
            // Its steps read an HTTP request or a fire time, not a manual body.
            other => Err(RunError::NotManual {
                flow: f.name.clone(),
                how: match other {
                    TriggerKind::Http { path, method, .. } => format!("send {method} {path} to the trigger listener"),
                    _ => format!("fire it with POST /v1/schedules/{}/run", f.name),
                },
            }),
        })
        .await
    }

    /// Fires a schedule flow now, as its schedule would (a scheduled task's "run now");
    /// it is not a fire time of the schedule, so catch-up does not count it.
    pub async fn fire_now(&self, flow: &str) -> Result<JobId, RunError> {
        self.start_now(flow, |f| match f.trigger.kind {
            TriggerKind::Schedule { .. } => Ok(TriggerEvent::schedule(std::time::SystemTime::now())),
            _ => Err(RunError::NotScheduled(f.name.clone())),
        })
        .await
    }

    async fn start_now(
        &self,
        flow: &str,
        event: impl FnOnce(&Flow) -> Result<TriggerEvent, RunError>,
    ) -> Result<JobId, RunError> {
        let flow = self
            .flows()
            .by_name
            .get(flow)
            .cloned()
            .ok_or_else(|| RunError::UnknownFlow(flow.to_string()))?;
        let event = event(&flow)?;
        if !self.is_active(&flow.name) {
            return Err(RunError::Inactive(flow.name.clone()));
        }
        let reservation = self
            .dispatcher
            .reserve(&flow)
            .map_err(|retry_after| RunError::QueueFull {
                flow: flow.name.clone(),
                retry_after,
            })?;
        match self.dispatcher.executor().admit(&flow, event).await? {
            Admission::Accepted(a) => {
                let job = a.job_id;
                self.dispatcher.submit(reservation, *a);
                Ok(job)
            }
            Admission::Dropped(r) => Err(RunError::Dropped(r.trigger.note.unwrap_or_default())),
            Admission::TooLarge(r) => Err(RunError::TooLarge(r.trigger.note.unwrap_or_default())),
            Admission::Failed(r) => Err(RunError::TriggerFailed(r.job_id)),
        }
    }

    /// The stored execution `job` and its flow as loaded now, held for a retry or resume.
    async fn claim(&self, job: JobId) -> Result<(Claim, Arc<Flow>), ContinueRequestError> {
        let exec = self
            .store
            .execution(job)
            .await?
            .ok_or(ContinueRequestError::NotFound(job))?;
        let flow = self
            .flows()
            .by_name
            .get(&exec.flow)
            .cloned()
            .ok_or_else(|| ContinueRequestError::FlowGone {
                job,
                flow: exec.flow.clone(),
            })?;
        if !self.is_active(&flow.name) {
            return Err(ContinueRequestError::Inactive(flow.name.clone()));
        }
        // One owner per request: two requests of this daemon must not share a claim.
        let owner = format!("{}/{}", self.owner, uuid::Uuid::now_v7());
        let lease = match self.store.claim(job, &owner, ACCEPT_CLAIM_TTL).await {
            Ok(lease) => Some(lease),
            // This daemon holds it (a timed pause it waits out): a resume wakes it here.
            Err(crate::store::ClaimError::Held { owner, .. }) if owner == self.owner => None,
            Err(crate::store::ClaimError::Held { .. }) => return Err(ContinueRequestError::Busy(job)),
            Err(source) => return Err(ContinueRequestError::Claim { job, source }),
        };
        let claim = Claim {
            store: self.store.clone(),
            lease,
        };
        Ok((claim, flow))
    }

    /// Accepts a manual retry of `job` (stored as a new attempt before this returns) and
    /// hands it to the dispatcher; the attempt's number.
    pub async fn retry(&self, job: JobId, from: crate::engine::RetryFrom) -> Result<u32, ContinueRequestError> {
        let (claim, flow) = self.claim(job).await?;
        let attempt = self.dispatcher.executor().accept_retry(&flow, job, from).await?;
        claim.give_up().await;
        self.dispatcher.recover(flow, job);
        Ok(attempt)
    }

    /// Resumes `job`: a pause until resumed ends durably, then the dispatcher runs the
    /// rest; a timed pause is woken, and the task waiting it out goes on, on this daemon
    /// or, through the store, on the one sharing it that holds the execution. A timed
    /// pause nobody holds (so nobody waits it out) ends durably here.
    pub async fn resume(&self, job: JobId) -> Result<(), ContinueRequestError> {
        let (claim, flow) = match self.claim(job).await {
            Err(ContinueRequestError::Busy(job)) => return self.wake_elsewhere(job).await,
            other => other?,
        };
        let sole = claim.lease.is_some();
        if self.dispatcher.executor().accept_resume(&flow, job, sole).await? == crate::engine::Resumed::Stored {
            claim.give_up().await;
            self.dispatcher.recover(flow, job);
        }
        Ok(())
    }

    /// `job` is held by another daemon sharing the store: a timed pause it waits out is
    /// woken there (the store passes the request on, see [`super::watch`]); anything
    /// else it holds is busy.
    async fn wake_elsewhere(&self, job: JobId) -> Result<(), ContinueRequestError> {
        let exec = self
            .store
            .execution(job)
            .await?
            .ok_or(ContinueRequestError::NotFound(job))?;
        if exec.status == crate::engine::ExecutionStatus::Paused
            && let Some(due) = exec.resume_at
            && self.store.ask_wake(job, due).await?
        {
            return Ok(());
        }
        Err(ContinueRequestError::Busy(job))
    }

    /// Reloads connectors and flows from the config file the daemon started with, all or
    /// nothing: on any error the running ones stay and every error is returned. Server
    /// settings need a restart. The number of flows loaded.
    pub async fn reload(self: &Arc<Self>) -> anyhow::Result<Result<usize, ConfigErrors>> {
        let Some(path) = self.config.source.clone() else {
            return Err(anyhow!(
                "the daemon runs on the built-in config: there is no file to reload"
            ));
        };
        let _one = self.reloading.lock().await;
        let config = match DaemonConfig::load(&path) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let Setup { registry, flows } = match loader::load(&config, &[], Purpose::Serve).await {
            Ok(setup) => setup,
            Err(failed) => return Ok(Err(failed.errors)),
        };
        // The running settings hold the token made at start, which no file names.
        let mut running = self.config.server.clone();
        running.tokens.retain(|t| Some(&t.value) != self.local_token.as_ref());
        if config.server != running {
            tracing::warn!("[server] settings changed: they apply at the next start");
        }
        let executor = Arc::new(self.executor_for(registry, &config));
        let n = flows.by_name.len();
        self.dispatcher.set_executor(executor);
        *self.flows.write_now() = Arc::new(flows);
        let mut schedules = self.schedules.locked();
        for s in schedules.drain(..) {
            s.abort();
        }
        *schedules = spawn_schedules(self);
        Ok(Ok(n))
    }

    /// Reloads this daemon's config (see [`Shared::reload`]) and, when that succeeded,
    /// asks every other daemon sharing the store to reload its own.
    pub async fn reload_everywhere(self: &Arc<Self>) -> anyhow::Result<Result<usize, ConfigErrors>> {
        let reloaded = self.reload().await?;
        if reloaded.is_ok()
            && let Some(n) = self
                .store
                .announce_reload()
                .await
                .map_err(|e| anyhow!("reloaded here, but could not ask the other daemons to: {e}"))?
        {
            // This daemon has reloaded already: its watch need not again.
            self.seen_reloads.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(reloaded)
    }

    fn executor_for(&self, registry: Registry, config: &DaemonConfig) -> Executor {
        daemon_executor(registry, config, &self.store, &self.metrics, &self.pauses, &self.leases)
    }
}
