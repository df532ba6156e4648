//! `flowd serve`: loads the config, its connectors and flows, opens the store, recovers
//! what a previous run left unfinished, and serves webhooks and schedules. SIGHUP reloads
//! the config all-or-nothing; SIGTERM or SIGINT stops accepting, lets running executions
//! finish for the grace period and exits (anything unfinished resumes on the next start).

use crate::sync::{Lock as _, Shared as _};
pub mod admin;
mod body;
mod control;
mod dispatch;
mod http;
pub mod leases;
pub mod listener;
mod respond;
mod scheduler;
mod watch;

pub use control::{ContinueRequestError, RunError};
pub use dispatch::{Dispatcher, Done, FlowLoad, Load};

use crate::config::{ConfigErrors, DaemonConfig, TriggerKind};
use crate::engine::Executor;
use crate::loader::{self, Purpose, Setup};
use crate::plugin::Registry;
use crate::store::Store;
use anyhow::{Context as _, anyhow};
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
    /// Who this daemon is in the store's claims (unique per start).
    owner: String,
    /// Its leases on the executions it holds.
    leases: Arc<leases::Leases>,
    /// One task per schedule flow; replaced on reload.
    schedules: Mutex<Vec<JoinHandle<()>>>,
    /// Reloads (SIGHUP, the API) run one at a time.
    reloading: tokio::sync::Mutex<()>,
    /// The store's count of reloads asked of every daemon, as far as this one has acted
    /// on it (see `watch`).
    seen_reloads: std::sync::atomic::AtomicU64,
    /// The web console's sign-ins.
    pub sessions: admin::session::Sessions,
    /// The live tail's one reader of the store and its followers.
    pub tail: admin::tail::Hub,
    /// The operator token made at start (see [`admin::session::local_token`]), which
    /// `config.server.tokens` holds beside the configured ones.
    local_token: Option<String>,
}

impl Shared {
    pub fn flows(&self) -> Arc<FlowSet> {
        self.flows.read_now().clone()
    }

    pub fn is_active(&self, flow: &str) -> bool {
        !self.inactive.read_now().contains(flow)
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
    /// Takes on operator changes made through other daemons sharing the store.
    watch: Option<JoinHandle<()>>,
    heartbeat: JoinHandle<()>,
    take_over: JoinHandle<()>,
    /// Stops the heartbeat once running executions are drained.
    beating: CancellationToken,
}

/// The daemon's executor over `registry`: recording in `store`, counting in `metrics`,
/// long pauses parked in `pauses` (shared by every executor, across reloads).
fn daemon_executor(
    registry: Registry,
    config: &DaemonConfig,
    store: &Arc<dyn Store>,
    metrics: &Arc<crate::metrics::Metrics>,
    pauses: &Arc<crate::engine::Pauses>,
    leases: &leases::Leases,
) -> Executor {
    Executor::new(Arc::new(registry), config.environment.clone())
        .with_store(store.clone())
        .with_observer(metrics.clone())
        .with_pauses(pauses.clone())
        .park_pauses_after(PARK_PAUSES_AFTER)
        .claim_as(leases.owner.clone(), leases.ttl)
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
        let store = crate::store::open(&crate::store::StoreConfig::of(&config))
            .await
            .context("opening the store")?;
        Self::start_on(config, setup, store).await
    }

    /// Starts on a setup and a store opened by the caller (which may keep its own handle
    /// on the backend, e.g. for its figures).
    pub async fn start_on(mut config: DaemonConfig, setup: Setup, store: Arc<dyn Store>) -> anyhow::Result<Daemon> {
        let Setup { registry, flows } = setup;
        let local = admin::session::local_token(&config.server).context("making the local operator token")?;
        let local_token = local.as_ref().map(|t| t.value.clone());
        config.server.tokens.extend(local);
        let state = store.operator_state().await?;
        let inactive = match &state {
            Some(state) => state.inactive.clone(),
            None => store.inactive_flows().await?,
        };
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let pauses = Arc::new(crate::engine::Pauses::default());
        let owner = format!("flowd-{}", uuid::Uuid::now_v7());
        // Said so that an operator refused a claim (`flowd executions resume --config`)
        // can tell which daemon holds the execution.
        tracing::info!("this daemon claims executions as {owner}");
        let leases = Arc::new(leases::Leases::new(store.clone(), owner.clone(), config.store.lease()));
        let executor = Arc::new(daemon_executor(registry, &config, &store, &metrics, &pauses, &leases));
        let stopping = CancellationToken::new();
        let dispatcher = Dispatcher::new(executor, config.server.workers, stopping.clone(), Some(leases.clone()));
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
            owner,
            leases: leases.clone(),
            schedules: Mutex::default(),
            reloading: tokio::sync::Mutex::new(()),
            seen_reloads: Default::default(),
            sessions: admin::session::Sessions::default(),
            tail: admin::tail::Hub::default(),
            local_token,
        });
        let beating = CancellationToken::new();
        let heartbeat = leases::spawn_heartbeat(leases, beating.clone());
        recover(&shared).await?;
        let take_over = tokio::spawn(take_over_loop(shared.clone()));
        *shared.schedules.locked() = spawn_schedules(&shared);
        let watch = watch::spawn(&shared, &state);
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
            watch,
            heartbeat,
            take_over,
            beating,
        })
    }

    /// The operator token this daemon made for itself, when its config has none and it
    /// listens on loopback only. Printed at start, never logged.
    pub fn local_token(&self) -> Option<&str> {
        self.shared.local_token.as_deref()
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
        if let Some(w) = &self.watch {
            w.abort();
        }
        self.take_over.abort();
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
        if let Some(w) = self.watch {
            let _ = w.await;
        }
        let _ = self.take_over.await;
        for s in schedules {
            let _ = s.await;
        }
        // What did not finish is free for another daemon at once, not at its expiry.
        self.beating.cancel();
        let _ = self.heartbeat.await;
        self.shared.leases.release_all().await;
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

/// How many executions one take-over claims at a time.
const TAKE_OVER_BATCH: usize = 100;

/// Claims unfinished executions of loaded flows that no daemon holds (all of them at
/// the first start on a store of its own; on a shared store, those whose daemon's
/// leases expired) and hands them to the dispatcher, in bounded batches. How many.
async fn take_over(shared: &Shared) -> Result<Vec<crate::store::Execution>, crate::store::ClaimError> {
    let flows = shared.flows();
    let names: Vec<String> = flows.by_name.keys().cloned().collect();
    let mut all = Vec::new();
    loop {
        let batch = shared
            .store
            .take_over(&shared.owner, shared.leases.ttl, &names, TAKE_OVER_BATCH)
            .await?;
        let n = batch.len();
        shared.leases.taken_over(n);
        for (exec, lease) in batch {
            match flows.by_name.get(&exec.flow) {
                Some(flow) => {
                    let hold = shared.leases.hold(lease);
                    // Queued since its acceptance: max_wait counts from then, whichever
                    // daemon accepted it (a retry's attempt waits on, as on one daemon).
                    if exec.status == crate::engine::ExecutionStatus::Queued && exec.attempt == 1 {
                        shared
                            .dispatcher
                            .recover_queued(flow.clone(), exec.job_id, hold, exec.created_at);
                    } else {
                        shared.dispatcher.recover_held(flow.clone(), exec.job_id, Some(hold));
                    }
                }
                // Reloaded away meanwhile: free for a daemon that has the flow.
                None => {
                    let _ = shared.store.release(lease).await;
                }
            }
            all.push(exec);
        }
        if n < TAKE_OVER_BATCH {
            return Ok(all);
        }
    }
}

/// Takes over, every half lease, what other daemons' expired leases left.
async fn take_over_loop(shared: Arc<Shared>) {
    let every = shared.leases.ttl / 2;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shared.stopping.cancelled() => return,
        }
        match take_over(&shared).await {
            Ok(taken) if taken.is_empty() => {}
            Ok(taken) => {
                tracing::warn!(
                    executions = taken.len(),
                    "took over unfinished executions whose daemon's lease expired: they go on here as after a restart"
                );
            }
            Err(e) => tracing::warn!(error = %e, "taking over expired leases failed; trying again later"),
        }
    }
}

/// Hands every unfinished execution of a known flow that no daemon holds to the
/// dispatcher, saying in the log what it found and what becomes of it.
async fn recover(shared: &Shared) -> anyhow::Result<()> {
    use crate::engine::ExecutionStatus as S;
    let flows = shared.flows();
    let unfinished = take_over(shared).await?;
    let count = |s: S| unfinished.iter().filter(|e| e.status == s).count();
    let (pending, queued, running, paused) = (count(S::Pending), count(S::Queued), count(S::Running), count(S::Paused));
    if unfinished.is_empty() {
        tracing::info!("recovery: no unfinished executions");
    } else {
        tracing::info!(
            pending,
            queued,
            running,
            paused,
            "recovery: {} unfinished executions: pending and queued ones start in their order; running ones go on at their first step without a stored result (a step a restart cut short runs again, shown as an interrupted try); timed pauses wait for their due time",
            unfinished.len()
        );
    }
    // Left alone: paused until resumed, or of a flow the config no longer has.
    let mut until_resumed = 0;
    let mut unknown = 0;
    for exec in shared.store.unfinished().await? {
        if exec.status == S::Paused && exec.resume_at.is_none() {
            until_resumed += 1;
        } else if !flows.by_name.contains_key(&exec.flow) {
            unknown += 1;
            tracing::warn!(job = %exec.job_id, flow = %exec.flow, status = %exec.status, "recovery: unfinished execution of a flow the config no longer has is left as it is");
        }
    }
    if until_resumed > 0 {
        tracing::info!(
            paused = until_resumed,
            "recovery: {until_resumed} paused until resumed stay so"
        );
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
    let admin = daemon.admin_addr();
    println!("flowd: admin listener on http://{admin}");
    match admin::console::missing() {
        None => println!("flowd: web console on http://{admin}/"),
        Some(reason) => {
            println!("flowd: no web console: {reason}");
            tracing::warn!("no web console: {reason}");
        }
    }
    let tokens = &daemon.shared().config.server.tokens;
    if tokens.is_empty() {
        println!(
            "flowd: no admin tokens are configured and a listener is not on loopback, so nobody can sign in: add [[server.tokens]] to the config"
        );
        tracing::warn!("no admin tokens are configured: the admin API answers only /healthz");
    }
    if let Some(token) = daemon.local_token() {
        // stdout only, as Jupyter does: the log may be shipped elsewhere; the terminal is
        // the operator's own.
        println!(
            "flowd: no admin tokens are configured; sign in to the console (or call the API) with this local operator token, valid until the daemon stops:\nflowd:     {token}"
        );
    }
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
