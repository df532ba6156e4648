//! `flowd serve`: loads the config, its connectors and flows, opens the store, recovers
//! what a previous run left unfinished, and serves webhooks and schedules. SIGHUP reloads
//! the config all-or-nothing; SIGTERM or SIGINT stops accepting, lets running executions
//! finish for the grace period and exits (anything unfinished resumes on the next start).

use crate::sync::{Lock as _, Shared as _};
pub mod admin;
mod body;
mod dispatch;
mod http;
pub mod listener;
mod scheduler;

pub use dispatch::{Dispatcher, Done, FlowLoad, Load};

use crate::config::{ConfigErrors, DaemonConfig, Flow, TriggerKind};
use crate::engine::{Admission, Executor};
use crate::loader::{self, Purpose, Setup};
use crate::plugin::{Registry, TriggerEvent};
use crate::store::{JobId, RedbStore, Store, StoreError, Write};
use anyhow::{Context as _, anyhow};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A timed pause due later than this waits without holding a worker (a shorter one is
/// waited out by its run, as most pauses are brief).
pub const PARK_PAUSES_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

pub use crate::loader::FlowSet;

/// What every request and task of the daemon shares.
pub struct Shared {
    pub config: DaemonConfig,
    flows: RwLock<Arc<FlowSet>>,
    inactive: RwLock<BTreeSet<String>>,
    store: Arc<dyn Store>,
    pub dispatcher: Dispatcher,
    pub stopping: CancellationToken,
    pub metrics: Arc<crate::metrics::Metrics>,
    pauses: Arc<crate::engine::Pauses>,
    /// Jobs whose retry or resume is being accepted right now.
    claims: Mutex<std::collections::HashSet<JobId>>,
    /// One task per schedule flow; replaced on reload.
    schedules: Mutex<Vec<JoinHandle<()>>>,
    /// Reloads (SIGHUP, the API) run one at a time.
    reloading: tokio::sync::Mutex<()>,
}

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
}

/// Holds a job while its retry or resume is accepted, so two requests cannot both pass
/// the checks before either is stored.
struct Claim<'a> {
    shared: &'a Shared,
    job: JobId,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.shared.claims.locked().remove(&self.job);
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

impl Shared {
    pub fn flows(&self) -> Arc<FlowSet> {
        self.flows.read_now().clone()
    }

    pub fn is_active(&self, flow: &str) -> bool {
        !self.inactive.read_now().contains(flow)
    }

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
    fn claim(&self, job: JobId) -> Result<(Claim<'_>, Arc<Flow>), ContinueRequestError> {
        let exec = self.store.execution(job)?.ok_or(ContinueRequestError::NotFound(job))?;
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
        if !self.claims.locked().insert(job) {
            return Err(ContinueRequestError::Busy(job));
        }
        Ok((Claim { shared: self, job }, flow))
    }

    /// Accepts a manual retry of `job` (stored as a new attempt before this returns) and
    /// hands it to the dispatcher; the attempt's number.
    pub async fn retry(&self, job: JobId, from: crate::engine::RetryFrom) -> Result<u32, ContinueRequestError> {
        let (_claim, flow) = self.claim(job)?;
        let attempt = self.dispatcher.executor().accept_retry(&flow, job, from).await?;
        self.dispatcher.recover(flow, job);
        Ok(attempt)
    }

    /// Resumes `job`: a pause until resumed ends durably, then the dispatcher runs the
    /// rest; a timed pause is woken, and the task waiting it out goes on.
    pub async fn resume(&self, job: JobId) -> Result<(), ContinueRequestError> {
        let (_claim, flow) = self.claim(job)?;
        if self.dispatcher.executor().accept_resume(&flow, job).await? == crate::engine::Resumed::Stored {
            self.dispatcher.recover(flow, job);
        }
        Ok(())
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
        if config.server != self.config.server {
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

    fn executor_for(&self, registry: Registry, config: &DaemonConfig) -> Executor {
        daemon_executor(registry, config, &self.store, &self.metrics, &self.pauses)
    }

    /// The next `n` fire times of a schedule flow (none for other flows).
    pub fn next_fires(&self, flow: &str, n: usize) -> Option<Vec<std::time::SystemTime>> {
        let flow = self.flows().by_name.get(flow).cloned()?;
        let schedule = crate::schedule::Schedule::of(&flow.trigger.kind)?;
        Some(schedule.next(std::time::SystemTime::now(), n))
    }
}

/// A running daemon.
pub struct Daemon {
    shared: Arc<Shared>,
    local: SocketAddr,
    admin: SocketAddr,
    accept: JoinHandle<()>,
    admin_accept: JoinHandle<()>,
    retention: JoinHandle<()>,
}

/// The daemon's executor over `registry`: recording in `store`, counting in `metrics`,
/// long pauses parked in `pauses` (shared by every executor, across reloads).
fn daemon_executor(
    registry: Registry,
    config: &DaemonConfig,
    store: &Arc<dyn Store>,
    metrics: &Arc<crate::metrics::Metrics>,
    pauses: &Arc<crate::engine::Pauses>,
) -> Executor {
    Executor::new(Arc::new(registry), config.environment.clone())
        .with_store(store.clone())
        .with_observer(metrics.clone())
        .with_pauses(pauses.clone())
        .park_pauses_after(PARK_PAUSES_AFTER)
}

impl Daemon {
    /// Loads everything, opens the store, binds the listener, recovers unfinished
    /// executions and starts the schedules.
    pub async fn start(config: DaemonConfig) -> anyhow::Result<Daemon> {
        let setup = loader::load(&config, &[], Purpose::Serve)
            .await
            .map_err(|failed| anyhow!("{}", failed.errors))?;
        Self::start_with(config, setup).await
    }

    /// Starts on a setup loaded from `config` (see [`loader::load`]).
    pub async fn start_with(config: DaemonConfig, setup: Setup) -> anyhow::Result<Daemon> {
        let Setup { registry, flows } = setup;
        let store = RedbStore::open(&config.server.data_dir, config.limits.max_payload as usize)
            .context("opening the data directory")?;
        let store: Arc<dyn Store> = Arc::new(store);
        let inactive = store.inactive_flows()?;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let pauses = Arc::new(crate::engine::Pauses::default());
        let executor = Arc::new(daemon_executor(registry, &config, &store, &metrics, &pauses));
        let stopping = CancellationToken::new();
        let dispatcher = Dispatcher::new(executor, config.server.workers, stopping.clone());
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding the trigger listener to {}", config.server.listen))?;
        let local = listener.local_addr()?;
        let admin_listener = TcpListener::bind(config.server.admin)
            .await
            .with_context(|| format!("binding the admin listener to {}", config.server.admin))?;
        let admin = admin_listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            flows: RwLock::new(Arc::new(flows)),
            inactive: RwLock::new(inactive),
            store: store.clone(),
            dispatcher,
            stopping,
            metrics,
            pauses,
            claims: Mutex::default(),
            schedules: Mutex::default(),
            reloading: tokio::sync::Mutex::new(()),
        });
        recover(&shared)?;
        *shared.schedules.locked() = spawn_schedules(&shared);
        let retention =
            crate::store::retention::spawn(store, shared.config.retention, std::time::Duration::from_secs(3600));
        let accept = tokio::spawn(serve_listener(shared.clone(), listener, "trigger", http::handle));
        let admin_accept = tokio::spawn(serve_listener(shared.clone(), admin_listener, "admin", admin::handle));
        Ok(Daemon {
            shared,
            local,
            admin,
            accept,
            admin_accept,
            retention,
        })
    }

    /// The store's group-commit counters.
    pub fn store_stats(&self) -> crate::store::WriterStats {
        self.shared.store.stats()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Where the admin API listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Reloads connectors and flows from the config file, all or nothing (see
    /// [`Shared::reload`]).
    pub async fn reload(&self) -> anyhow::Result<Result<usize, ConfigErrors>> {
        self.shared.reload().await
    }

    /// Stops accepting, lets running executions finish for the grace period; true when
    /// every one finished.
    ///
    /// Every task of the daemon's own that holds the store has ended when this returns,
    /// so the database is closed once the caller drops its last [`Shared`] handle.
    pub async fn shutdown(self) -> bool {
        self.shared.stopping.cancel();
        self.retention.abort();
        let schedules: Vec<_> = self.shared.schedules.locked().drain(..).collect();
        for s in &schedules {
            s.abort();
        }
        let drained = self
            .shared
            .dispatcher
            .drain(self.shared.config.server.shutdown_grace)
            .await;
        let _ = self.accept.await;
        let _ = self.admin_accept.await;
        // An aborted task is dropped by the runtime later, not by abort(); awaiting it
        // waits for that drop, and with it for its hold on the store.
        let _ = self.retention.await;
        for s in schedules {
            let _ = s.await;
        }
        drained
    }
}

fn spawn_schedules(shared: &Arc<Shared>) -> Vec<JoinHandle<()>> {
    shared
        .flows()
        .by_name
        .values()
        .filter(|f| matches!(f.trigger.kind, TriggerKind::Schedule { .. }))
        .map(|f| scheduler::spawn(shared.clone(), f.clone()))
        .collect()
}

/// Serves HTTP/1 connections on `listener`, each request answered by `handle`, until
/// the daemon stops; requests already being answered then get the grace period (held-open
/// webhooks are answered 504-free only if their execution responds in time).
async fn serve_listener<F, Fut, B>(shared: Arc<Shared>, listener: TcpListener, what: &'static str, handle: F)
where
    F: Fn(Arc<Shared>, hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<listener::BoxError>,
{
    let limits = listener::Limits::of(&shared.config.server);
    let (stopping, grace) = (shared.stopping.clone(), shared.config.server.shutdown_grace);
    listener::serve(listener, what, limits, stopping, grace, move |req| {
        handle(shared.clone(), req)
    })
    .await;
}

/// Hands every unfinished execution of a known flow back to the dispatcher, saying in
/// the log what it found and what becomes of it.
fn recover(shared: &Shared) -> anyhow::Result<()> {
    use crate::engine::ExecutionStatus as S;
    let flows = shared.flows();
    let unfinished = shared.store.unfinished()?;
    let count = |s: S| unfinished.iter().filter(|e| e.status == s).count();
    let (pending, queued, running, paused) = (count(S::Pending), count(S::Queued), count(S::Running), count(S::Paused));
    let until_resumed = unfinished
        .iter()
        .filter(|e| e.status == S::Paused && e.resume_at.is_none())
        .count();
    if unfinished.is_empty() {
        tracing::info!("recovery: no unfinished executions");
    } else {
        tracing::info!(
            pending,
            queued,
            running,
            paused,
            "recovery: {} unfinished executions: pending and queued ones start in their order; running ones go on at their first step without a stored result (a step a restart cut short runs again, shown as an interrupted try); timed pauses wait for their due time; {until_resumed} paused until resumed stay so",
            unfinished.len()
        );
    }
    let mut unknown = 0;
    for exec in unfinished {
        match flows.by_name.get(&exec.flow) {
            Some(flow) => shared.dispatcher.recover(flow.clone(), exec.job_id),
            None => {
                unknown += 1;
                tracing::warn!(job = %exec.job_id, flow = %exec.flow, status = %exec.status, "recovery: unfinished execution of a flow the config no longer has is left as it is");
            }
        }
    }
    if unknown > 0 {
        tracing::warn!(
            executions = unknown,
            "recovery: executions of flows the config no longer has are left as they are, for a start whose config has their flow"
        );
    }
    Ok(())
}

/// Runs the daemon on a loaded setup until SIGTERM or SIGINT; SIGHUP reloads the config
/// file.
pub async fn serve(config: DaemonConfig, setup: Setup) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Installed before anything is announced: a signal that came before its handler
    // would kill the process.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let daemon = Daemon::start_with(config, setup).await?;
    let local = daemon.local_addr();
    // Tests and scripts wait for these lines to know the ports (the trigger one last).
    println!("flowd: admin listener on http://{}", daemon.admin_addr());
    println!("flowd: trigger listener on http://{local}");
    tracing::info!(%local, flows = daemon.shared().flows().by_name.len(), "trigger listener ready");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match daemon.reload().await {
                Ok(Ok(n)) => tracing::info!(flows = n, "reloaded the config"),
                Ok(Err(errors)) => {
                    for e in &errors.0 {
                        tracing::error!("{e}");
                    }
                    tracing::error!(errors = errors.len(), "reload refused: the running config stays");
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"), "reload failed: the running config stays"),
            },
        }
    }
    tracing::info!("shutting down: no new requests; running executions may finish");
    let grace = daemon.shared().config.server.shutdown_grace;
    if daemon.shutdown().await {
        tracing::info!("every running execution finished");
    } else {
        tracing::warn!(grace = %crate::config::units::format_duration(grace), "executions still running after the grace period resume on the next start");
    }
    Ok(())
}
