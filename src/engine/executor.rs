//! The executor: what every execution of a daemon (or a local run) shares — the loaded
//! connectors, the environment, the store, whoever observes it, the timed pauses. How an
//! event becomes an execution is in [`super::accept`], how one runs in [`super::run`].

use super::Observer;
use super::report::ExecutionReport;
use crate::plugin::{ErrorKind, Failure, Registry, World};
use crate::store::Store;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub struct Executor {
    pub(super) registry: Arc<Registry>,
    pub(super) environment: String,
    pub(super) store: Option<Arc<dyn Store>>,
    /// Told of accepted executions, ended steps and ended executions (the daemon's
    /// `/metrics`, `flowd run --count`).
    pub(super) observer: Option<Arc<dyn Observer>>,
    /// Timed pauses waited out here, which a resume may end early.
    pub(super) pauses: Arc<super::Pauses>,
    /// A timed pause due later than this is not waited out by the run: the run returns
    /// the execution `paused` and its caller (the daemon's dispatcher) resumes it when
    /// due, so a long pause holds no worker. `None`: every pause is waited out in the run.
    pub(super) park_after: Option<Duration>,
    /// Who claims each accepted execution, and for how long (a daemon sharing its store).
    pub(super) claim_as: Option<(String, Duration)>,
}

impl Executor {
    pub fn new(registry: Arc<Registry>, environment: impl Into<String>) -> Executor {
        Executor {
            registry,
            environment: environment.into(),
            store: None,
            observer: None,
            pauses: Arc::default(),
            park_after: None,
            claim_as: None,
        }
    }

    /// Claims every execution it accepts for `owner` for `ttl`, in the acceptance's own
    /// transaction (see [`super::Accepted::lease`]), so no other daemon sharing the store
    /// takes it over while its owner holds it.
    pub fn claim_as(mut self, owner: impl Into<String>, ttl: Duration) -> Executor {
        self.claim_as = Some((owner.into(), ttl));
        self
    }

    /// Returns executions paused for longer than `after` instead of waiting them out (see
    /// [`Executor::parks`]).
    pub fn park_pauses_after(mut self, after: Duration) -> Executor {
        self.park_after = Some(after);
        self
    }

    /// Whether a pause due at `at` is left to the caller rather than waited out here.
    pub fn parks(&self, at: SystemTime) -> bool {
        self.park_after
            .is_some_and(|after| at.duration_since(SystemTime::now()).is_ok_and(|left| left > after))
    }

    /// Where this executor's timed pauses are waited out (and woken).
    pub fn pauses(&self) -> &Arc<super::Pauses> {
        &self.pauses
    }

    /// Shares `pauses` (every executor of a daemon waits out its timed pauses there).
    pub fn with_pauses(mut self, pauses: Arc<super::Pauses>) -> Executor {
        self.pauses = pauses;
        self
    }

    /// Tells `observer` of every accepted execution, ended step and ended execution.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Executor {
        self.observer = Some(observer);
        self
    }

    pub(super) fn observe_end(&self, report: &ExecutionReport) {
        if let Some(o) = &self.observer
            && report.status.is_final()
        {
            o.execution_ended(&report.flow, report.status);
        }
    }

    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// Records every execution in `store`, each transition before it is acted upon.
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Executor {
        self.store = Some(store);
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether the connector named `name` may act outside its sandbox (an unknown one is
    /// assumed to: its step fails anyway).
    pub(super) fn reaches_out(&self, name: &str) -> bool {
        self.registry.get(name).is_none_or(|c| c.reaches_out())
    }

    pub(super) fn connector(&self, name: &str, world: World) -> Result<Arc<crate::plugin::Connector>, Failure> {
        let c = self
            .registry
            .get(name)
            .ok_or_else(|| Failure::new(ErrorKind::Host, format!("connector \"{name}\" is not loaded")))?;
        if c.world() != world {
            return Err(Failure::new(
                ErrorKind::Host,
                format!("connector \"{name}\" does not implement {}", world.wit_name()),
            ));
        }
        Ok(c.clone())
    }
}
