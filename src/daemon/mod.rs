//! `flowd serve`: loads the config, its connectors and flows, opens the store, recovers
//! what a previous run left unfinished, and serves the trigger listener until SIGTERM or
//! SIGINT; then it stops accepting, lets running executions finish for the grace period
//! and exits (anything unfinished resumes on the next start).

mod dispatch;
mod http;
mod scheduler;

pub use dispatch::Dispatcher;

use crate::config::{DaemonConfig, Flow, TriggerKind};
use crate::engine::Executor;
use crate::loader;
use crate::store::{RedbStore, Store};
use anyhow::{Context as _, anyhow};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The loaded flows, by name and by webhook path.
#[derive(Default)]
pub struct FlowSet {
    pub by_name: HashMap<String, Arc<Flow>>,
    pub by_path: HashMap<String, Arc<Flow>>,
}

impl FlowSet {
    fn new(flows: Vec<Flow>) -> anyhow::Result<FlowSet> {
        let mut set = FlowSet::default();
        for flow in flows {
            let flow = Arc::new(flow);
            if let TriggerKind::Http { path, .. } = &flow.trigger.kind
                && let Some(other) = set.by_path.insert(path.clone(), flow.clone())
            {
                return Err(anyhow!(
                    "flows \"{}\" and \"{}\" both listen on {path}",
                    other.name,
                    flow.name
                ));
            }
            set.by_name.insert(flow.name.clone(), flow);
        }
        Ok(set)
    }
}

/// What every request and task of the daemon shares.
pub struct Shared {
    pub config: DaemonConfig,
    flows: RwLock<Arc<FlowSet>>,
    pub dispatcher: Dispatcher,
    pub stopping: CancellationToken,
}

impl Shared {
    pub fn flows(&self) -> Arc<FlowSet> {
        self.flows.read().expect("flows lock").clone()
    }
}

/// Runs the daemon until a signal stops it.
pub async fn serve(config: DaemonConfig) -> anyhow::Result<()> {
    let (registry, mut errors) = loader::load_registry(&config)?;
    let flows = match loader::load_flows(&registry, &config).await {
        Ok(f) => f,
        Err(e) => {
            errors.extend(e);
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(anyhow!("{errors}"));
    }
    let flows = FlowSet::new(flows)?;
    let store = RedbStore::open(&config.server.data_dir, config.limits.max_payload as usize)
        .context("opening the data directory")?;
    let store: Arc<dyn Store> = Arc::new(store);
    let executor = Arc::new(Executor::new(Arc::new(registry), config.environment.clone()).with_store(store.clone()));
    let stopping = CancellationToken::new();
    let dispatcher = Dispatcher::new(executor, config.server.workers, stopping.clone());
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding the trigger listener to {}", config.server.listen))?;
    let local = listener.local_addr()?;
    let shared = Arc::new(Shared {
        config,
        flows: RwLock::new(Arc::new(flows)),
        dispatcher,
        stopping: stopping.clone(),
    });

    let signal = shutdown_signal()?;
    recover(&shared, store.as_ref())?;
    let schedules: Vec<_> = shared
        .flows()
        .by_name
        .values()
        .filter(|f| matches!(f.trigger.kind, TriggerKind::Schedule { .. }))
        .map(|f| scheduler::spawn(shared.clone(), f.clone()))
        .collect();
    let retention = crate::store::retention::spawn(
        store.clone(),
        shared.config.retention,
        std::time::Duration::from_secs(3600),
    );

    // Tests and scripts wait for this line to know the port.
    println!("flowd: trigger listener on http://{local}");
    tracing::info!(%local, flows = shared.flows().by_name.len(), "trigger listener ready");

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        continue;
                    }
                };
                let shared = shared.clone();
                let service = service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, std::convert::Infallible>(http::handle(shared, req).await) }
                });
                let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            name = &mut signal => {
                tracing::info!(signal = name, "shutting down: no new requests; running executions may finish");
                break;
            }
        }
    }
    drop(listener);
    stopping.cancel();
    retention.abort();
    for s in &schedules {
        s.abort();
    }
    let grace = shared.config.server.shutdown_grace;
    let drained = shared.dispatcher.drain(grace).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), graceful.shutdown()).await;
    if drained {
        tracing::info!("every running execution finished");
    } else {
        tracing::warn!(grace = %crate::config::units::format_duration(grace), "executions still running after the grace period resume on the next start");
    }
    Ok(())
}

/// Hands every unfinished execution of a known flow back to the dispatcher.
fn recover(shared: &Shared, store: &dyn Store) -> anyhow::Result<()> {
    let flows = shared.flows();
    for exec in store.unfinished()? {
        match flows.by_name.get(&exec.flow) {
            Some(flow) => shared.dispatcher.recover(flow.clone(), exec.job_id),
            None => {
                tracing::warn!(job = %exec.job_id, flow = %exec.flow, "unfinished execution of an unknown flow is left as it is")
            }
        }
    }
    Ok(())
}

/// Installs the handlers at once (a signal that arrives before its handler would kill
/// the process), and resolves to the first signal's name.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
