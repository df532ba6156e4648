//! Starts executions fairly and within limits. Every flow has a queue; a dispatcher loop
//! takes from the queues in turn (round robin, so one flow's flood never starves another)
//! while fewer than `server.workers` run in all, honouring each throttled flow's
//! `max_concurrency` and `rate`, and rejecting what waited past its `max_wait`. Queued
//! executions are stored as such, so a restart queues them again in order; one not
//! started when shutdown begins stays in the store for the next start. Each execution
//! runs under the daemon's lease on it, and a throttled one starts only once the store
//! grants it a place among its flow's running executions across every daemon.

use super::leases::Leases;
use crate::config::{Flow, Throttle};
use crate::engine::{Accepted, ContinueError, ExecutionStatus, Executor, Hold};
use crate::store::{ClaimError, JobId, Slot, Store, StoreError};
use crate::sync::Lock as _;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Becomes true when a submitted execution has finished (or will not start).
#[derive(Clone)]
pub struct Done(watch::Receiver<bool>);

impl Done {
    pub fn is_done(&self) -> bool {
        *self.0.borrow()
    }

    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|d| *d).await;
    }
}

/// What an item in a queue runs.
enum Work {
    /// Just accepted: stored `pending` or `queued`.
    Fresh(Box<Accepted>),
    /// Found unfinished in the store at start-up, or a retry or resume stored just now.
    Recover(JobId),
    /// A parked timed pause that is due (or was woken): it ends now and the run goes on.
    Resume(JobId),
}

impl Work {
    fn job(&self) -> JobId {
        match self {
            Work::Fresh(a) => a.job_id,
            Work::Recover(j) | Work::Resume(j) => *j,
        }
    }
}

/// Why a run ended before its execution did.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Continue(#[from] ContinueError),
    #[error("flowd failed on this execution: {0}")]
    Panic(String),
}

crate::store_errors_into!(Stop);

impl Stop {
    /// The run's lease was lost: another daemon owns the execution now.
    fn lost_lease(&self) -> bool {
        matches!(self, Stop::Store(e) | Stop::Continue(ContinueError::Store(e)) if e.is_fenced())
    }

    /// The database did not answer a read the run needed: nothing is wrong with the
    /// execution, and it can go on once the database answers again.
    fn unavailable(&self) -> bool {
        matches!(self, Stop::Store(e) | Stop::Continue(ContinueError::Store(e)) if e.is_unavailable())
    }

    /// Whether the execution is ended `failed` for it. A store that closed (shutdown)
    /// leaves it to the next start, a lost lease to the daemon that took it over, a
    /// database that did not answer to whichever daemon takes it over once its lease
    /// lapses; a resume that found it no longer paused, or gone, has nothing to end.
    fn ends_it(&self) -> bool {
        match self {
            Stop::Store(e) | Stop::Continue(ContinueError::Store(e))
                if e.is_closed() || e.is_fenced() || e.is_unavailable() =>
            {
                false
            }
            Stop::Store(_) | Stop::Panic(_) | Stop::Continue(ContinueError::Store(_)) => true,
            Stop::Continue(_) => false,
        }
    }
}

/// What a panicked task panicked with.
fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

struct Item {
    work: Work,
    /// Since when it waits: its acceptance for one that has run no step yet (`fresh`).
    since: Instant,
    /// It has run no step of its attempt since it was accepted (here, or by a daemon
    /// whose lease on it expired): `max_wait` may reject it.
    fresh: bool,
    done: watch::Sender<bool>,
    /// The lease it is held under, once claimed (an accepted execution's from its
    /// acceptance; others are claimed when they start).
    hold: Option<Hold>,
}

struct FlowQueue {
    flow: Arc<Flow>,
    waiting: VecDeque<Item>,
    /// Places promised to requests still being stored.
    reserved: usize,
    running: usize,
    /// With a rate: when the next execution may start.
    next_start: Instant,
}

impl FlowQueue {
    fn throttle(&self) -> Option<&Throttle> {
        self.flow.throttle.as_ref()
    }

    fn can_start(&self, now: Instant) -> bool {
        !self.waiting.is_empty()
            && match self.throttle() {
                None => true,
                Some(t) => self.running < t.max_concurrency as usize && now >= self.next_start,
            }
    }
}

#[derive(Default)]
struct State {
    queues: Vec<FlowQueue>,
    index: HashMap<String, usize>,
    cursor: usize,
    running: usize,
}

impl State {
    fn queue(&mut self, flow: &Arc<Flow>) -> &mut FlowQueue {
        let i = match self.index.get(&flow.name) {
            Some(i) => *i,
            None => {
                self.queues.push(FlowQueue {
                    flow: flow.clone(),
                    waiting: VecDeque::new(),
                    reserved: 0,
                    running: 0,
                    next_start: Instant::now(),
                });
                self.index.insert(flow.name.clone(), self.queues.len() - 1);
                self.queues.len() - 1
            }
        };
        let q = &mut self.queues[i];
        // A reloaded flow's new limits apply from now on.
        q.flow = flow.clone();
        q
    }
}

/// What the dispatcher holds at one moment (for `/metrics`).
pub struct Load {
    pub flows: Vec<FlowLoad>,
    pub workers: usize,
}

pub struct FlowLoad {
    pub flow: String,
    pub waiting: usize,
    pub running: usize,
}

/// A place in a throttled flow's queue, held while the request is being stored.
pub struct Reservation {
    dispatcher: Dispatcher,
    flow: Arc<Flow>,
    used: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.used {
            self.dispatcher.state.locked().queue(&self.flow).reserved -= 1;
        }
    }
}

#[derive(Clone)]
pub struct Dispatcher {
    /// Replaced on reload; running executions keep the one they started with.
    executor: Arc<Mutex<Arc<Executor>>>,
    workers: usize,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    tasks: TaskTracker,
    stopping: CancellationToken,
    /// The daemon's leases: each execution runs under one (none: a dispatcher of its own).
    leases: Option<Arc<Leases>>,
}

impl Dispatcher {
    pub fn new(
        executor: Arc<Executor>,
        workers: u32,
        stopping: CancellationToken,
        leases: Option<Arc<Leases>>,
    ) -> Dispatcher {
        let d = Dispatcher {
            executor: Arc::new(Mutex::new(executor)),
            workers: workers as usize,
            state: Arc::default(),
            wake: Arc::new(Notify::new()),
            tasks: TaskTracker::new(),
            stopping,
            leases,
        };
        let looper = d.clone();
        // Tracked with the executions, so draining also waits for the loop (and its
        // handle on the executor and store) to end.
        d.tasks.spawn(async move { looper.run_loop().await });
        d
    }

    pub fn executor(&self) -> Arc<Executor> {
        self.executor.locked().clone()
    }

    /// New executions (and recoveries) use `executor` from now on.
    pub fn set_executor(&self, executor: Arc<Executor>) {
        *self.executor.locked() = executor;
    }

    /// Holds a place in `flow`'s queue, or says in how many seconds to try again.
    pub fn reserve(&self, flow: &Arc<Flow>) -> Result<Reservation, u64> {
        let mut state = self.state.locked();
        let q = state.queue(flow);
        if let Some(t) = q.throttle() {
            let held = q.waiting.len() + q.reserved;
            if held >= t.queue_capacity as usize {
                // Roughly when the queue has room again.
                let per_second = t.rate.unwrap_or(f64::INFINITY).min(t.max_concurrency as f64).max(0.01);
                return Err(((held as f64 / per_second).ceil() as u64).clamp(1, 3600));
            }
        }
        q.reserved += 1;
        drop(state);
        Ok(Reservation {
            dispatcher: self.clone(),
            flow: flow.clone(),
            used: false,
        })
    }

    /// Whether an execution of `flow` submitted now would start at once (no throttle, a
    /// worker free), rather than wait in a queue where it must be stored to be kept.
    pub fn would_start_now(&self, flow: &Arc<Flow>) -> bool {
        let mut state = self.state.locked();
        let running = state.running;
        state.queue(flow).throttle().is_none() && running < self.workers
    }

    /// Queues an accepted execution.
    pub fn submit(&self, mut reservation: Reservation, accepted: Accepted) -> Done {
        reservation.used = true;
        let hold = match (&self.leases, accepted.lease()) {
            (Some(leases), Some(lease)) => Some(leases.hold(lease.clone())),
            _ => None,
        };
        let mut state = self.state.locked();
        let q = state.queue(&reservation.flow);
        q.reserved -= 1;
        let (tx, rx) = watch::channel(false);
        q.waiting.push_back(Item {
            work: Work::Fresh(Box::new(accepted)),
            since: Instant::now(),
            fresh: true,
            done: tx,
            hold,
        });
        drop(state);
        self.dispatch();
        self.wake.notify_one();
        Done(rx)
    }

    /// Queues an accepted execution once every one of `after` is done.
    pub fn submit_after(&self, reservation: Reservation, accepted: Accepted, after: Vec<Done>) -> Done {
        if after.iter().all(Done::is_done) {
            return self.submit(reservation, accepted);
        }
        // Renewed while it waits, so no other daemon takes it over meanwhile.
        if let (Some(leases), Some(lease)) = (&self.leases, accepted.lease()) {
            leases.hold(lease.clone());
        }
        let (tx, rx) = watch::channel(false);
        let this = self.clone();
        self.tasks.spawn(async move {
            for d in after {
                tokio::select! {
                    _ = d.wait() => {}
                    _ = this.stopping.cancelled() => return,
                }
            }
            let inner = this.submit(reservation, accepted);
            inner.wait().await;
            let _ = tx.send(true);
        });
        Done(rx)
    }

    /// Queues an execution the store holds unfinished (claimed when it starts).
    pub fn recover(&self, flow: Arc<Flow>, job: JobId) {
        self.recover_held(flow, job, None);
    }

    /// Queues an execution the store holds unfinished, under `hold` when it is claimed
    /// already (taken over).
    pub fn recover_held(&self, flow: Arc<Flow>, job: JobId, hold: Option<Hold>) {
        self.requeue(flow, job, hold, None);
    }

    /// Queues a taken-over execution that was `queued` since its acceptance at
    /// `accepted` (it ran no step): its `max_wait` counts from then, not from now.
    pub fn recover_queued(&self, flow: Arc<Flow>, job: JobId, hold: Hold, accepted: SystemTime) {
        self.requeue(flow, job, Some(hold), Some(accepted));
    }

    fn requeue(&self, flow: Arc<Flow>, job: JobId, hold: Option<Hold>, accepted: Option<SystemTime>) {
        // The same moment on the monotonic clock (now, when it lies ahead or too far back).
        let since = accepted
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .and_then(|ago| Instant::now().checked_sub(ago))
            .unwrap_or_else(Instant::now);
        let mut state = self.state.locked();
        let (tx, _) = watch::channel(false);
        state.queue(&flow).waiting.push_back(Item {
            work: Work::Recover(job),
            since,
            fresh: accepted.is_some(),
            done: tx,
            hold,
        });
        drop(state);
        self.dispatch();
        self.wake.notify_one();
    }

    async fn run_loop(&self) {
        loop {
            let wake_at = self.dispatch();
            let sleep = async {
                match wake_at {
                    Some(t) => tokio::time::sleep_until(t.min(later(Instant::now(), FAR)).into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = sleep => {}
                _ = self.stopping.cancelled() => return,
            }
        }
    }

    /// Starts what may start now; returns when something may become due.
    fn dispatch(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut state = self.state.locked();
        // Past their max_wait: rejected, not run.
        for q in &mut state.queues {
            let Some(max_wait) = q.throttle().map(|t| t.max_wait) else {
                continue;
            };
            while q
                .waiting
                .front()
                .is_some_and(|i| now.duration_since(i.since) >= max_wait)
            {
                let item = q.waiting.pop_front().expect("checked");
                self.reject(q.flow.clone(), item, max_wait);
            }
        }
        while state.running < self.workers && !state.queues.is_empty() {
            let n = state.queues.len();
            let Some(i) = (0..n)
                .map(|k| (state.cursor + k) % n)
                .find(|i| state.queues[*i].can_start(now))
            else {
                break;
            };
            state.cursor = (i + 1) % n;
            state.running += 1;
            let q = &mut state.queues[i];
            q.running += 1;
            if let Some(rate) = q.throttle().and_then(|t| t.rate) {
                q.next_start = later(q.next_start.max(now), interval(rate));
            }
            let item = q.waiting.pop_front().expect("can_start checked");
            self.start(q.flow.clone(), item);
        }
        // The next moment something may change without a wake-up: a rate allowance or
        // a max_wait running out.
        state
            .queues
            .iter()
            .filter(|q| !q.waiting.is_empty())
            .flat_map(|q| {
                let t = q.throttle();
                let rate = t.and_then(|t| t.rate).map(|_| q.next_start);
                let expiry = t.and_then(|t| q.waiting.front().map(|i| later(i.since, t.max_wait)));
                rate.into_iter().chain(expiry)
            })
            .min()
    }

    fn start(&self, flow: Arc<Flow>, item: Item) {
        let this = self.clone();
        self.tasks.spawn(async move {
            let Item {
                work,
                done,
                hold,
                since,
                fresh,
            } = item;
            let executor = this.executor();
            let job = work.job();
            let hold = match (hold, &this.leases) {
                (Some(h), _) => Some(h),
                (None, None) => None,
                (None, Some(leases)) => match leases.claim(job).await {
                    Ok(Some(h)) => Some(h),
                    Ok(None) => {
                        tracing::info!(job = %job, flow = %flow.name, "execution is held by another daemon: it runs there");
                        this.not_started(&flow, done);
                        return;
                    }
                    Err(e) => {
                        tracing::error!(job = %job, flow = %flow.name, error = %e, "could not claim the execution: it is left for a daemon that can");
                        this.not_started(&flow, done);
                        return;
                    }
                },
            };
            if hold.as_ref().is_some_and(|h| h.lost.is_cancelled()) {
                // Lost while it waited: the daemon that took it over runs it.
                this.not_started(&flow, done);
                return;
            }
            // A throttled flow's place among its running executions, across every daemon
            // sharing the store.
            let store = executor.store().cloned();
            let gated = match (&flow.throttle, &hold, &store) {
                (Some(t), Some(h), Some(store)) => {
                    match this.gate(store, &flow, t, h, since, fresh).await {
                        Gate::Go => true,
                        Gate::TooLong => {
                            let why = format!(
                                "waited in the throttle queue longer than max_wait ({})",
                                crate::config::units::format_duration(t.max_wait)
                            );
                            match h.clone().scope(executor.reject_waiting(&flow, job, &why)).await {
                                Ok(_) => tracing::warn!(job = %job, flow = %flow.name, "execution rejected: {why}"),
                                Err(e) => tracing::error!(job = %job, flow = %flow.name, error = %e, "rejecting an execution failed"),
                            }
                            let _ = store.free_slot(&h.lease).await;
                            if let Some(leases) = &this.leases {
                                leases.release(job).await;
                            }
                            this.not_started(&flow, done);
                            return;
                        }
                        Gate::Stop => {
                            let _ = store.free_slot(&h.lease).await;
                            this.not_started(&flow, done);
                            return;
                        }
                    }
                }
                _ => false,
            };
            // The execution runs in a task of its own, so that a panic in it stops only
            // it: it is ended `failed` below rather than met again at every start. Boxed,
            // so the spawn moves a pointer rather than the whole run's state machine.
            let run = {
                let (executor, flow, hold) = (executor.clone(), flow.clone(), hold.clone());
                tokio::spawn(Box::pin(async move {
                    let run = async {
                        match work {
                            Work::Fresh(accepted) => executor.run(&flow, *accepted).await.map_err(Stop::from),
                            Work::Recover(job) => executor.recover(&flow, job).await.map_err(Stop::from),
                            Work::Resume(job) => executor.resume(&flow, job).await.map_err(Stop::from),
                        }
                    };
                    match hold {
                        Some(hold) => hold.scope(run).await,
                        None => run.await,
                    }
                }))
            };
            let result = run.await.unwrap_or_else(|e| Err(Stop::Panic(panic_message(e))));
            if gated && let (Some(store), Some(h)) = (&store, &hold)
                && let Err(e) = store.free_slot(&h.lease).await
            {
                tracing::warn!(job = %job, flow = %flow.name, error = %e, "could not give up the throttle place; it frees when the lease ends");
            }
            let parked = match &result {
                Ok(r) if r.status == ExecutionStatus::Paused => {
                    let due = r.resume_at.map(crate::time_format::rfc3339);
                    tracing::info!(job = %job, flow = %flow.name, due = due.as_deref().unwrap_or("when resumed"), "execution paused");
                    r.resume_at
                }
                // A success is a debug record: the store holds every execution, and a
                // line for each cost the daemon about 6% of its executions a second.
                Ok(r) if r.status == ExecutionStatus::Success => {
                    tracing::debug!(job = %job, flow = %flow.name, status = %r.status, "execution finished");
                    None
                }
                Ok(r) => {
                    tracing::info!(job = %job, flow = %flow.name, status = %r.status, "execution finished");
                    None
                }
                Err(stop) if stop.lost_lease() => {
                    tracing::warn!(job = %job, flow = %flow.name, error = %stop, "execution stopped here: this daemon lost its lease; the daemon that took it over runs it on");
                    None
                }
                Err(stop) if stop.unavailable() => {
                    tracing::warn!(job = %job, flow = %flow.name, error = %stop, "execution stopped here: the database did not answer; its lease is given up, and it is taken over (here or by another daemon) once the database answers");
                    None
                }
                Err(stop) => {
                    tracing::error!(job = %job, flow = %flow.name, error = %stop, "execution stopped");
                    if stop.ends_it() {
                        this.abandon(&executor, &flow, job, &stop.to_string(), hold.clone()).await;
                    }
                    None
                }
            };
            {
                let mut state = this.state.locked();
                state.running -= 1;
                state.queue(&flow).running -= 1;
            }
            match parked {
                // Not ended: whoever waits for its end (an overlap queue) waits on.
                Some(at) => this.park(flow, job, at, done, executor, hold),
                None => {
                    if let Some(leases) = &this.leases {
                        leases.release(job).await;
                    }
                    let _ = done.send(true);
                }
            }
            this.wake.notify_one();
        });
    }

    /// Waits for a place among `flow`'s running executions across the daemons sharing
    /// the store (see [`Store::take_slot`]), asking again as the store says. Only a
    /// `fresh` execution (queued since its acceptance) is rejected past `max_wait`; one
    /// recovered may have run steps already, and waits on.
    async fn gate(
        &self,
        store: &Arc<dyn Store>,
        flow: &Flow,
        t: &Throttle,
        hold: &Hold,
        since: Instant,
        fresh: bool,
    ) -> Gate {
        let mut failing = false;
        loop {
            if fresh && since.elapsed() >= t.max_wait {
                return Gate::TooLong;
            }
            let wait = match store
                .take_slot(&hold.lease, &flow.name, t.max_concurrency, t.rate.map(interval))
                .await
            {
                Ok(Slot::Granted) => return Gate::Go,
                Ok(Slot::Wait(d)) if fresh => d.min(GATE_POLL).min(t.max_wait.saturating_sub(since.elapsed())),
                Ok(Slot::Wait(d)) => d.min(GATE_POLL),
                Err(ClaimError::Lost(_)) => return Gate::Stop,
                Err(e) => {
                    if !failing {
                        tracing::warn!(flow = %flow.name, error = %e, "could not ask the store for a throttle place; asking again");
                    }
                    failing = true;
                    GATE_RETRY
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = hold.lost.cancelled() => return Gate::Stop,
                _ = self.stopping.cancelled() => return Gate::Stop,
            }
        }
    }

    /// An item that did not start after all (another daemon holds it): its place frees.
    fn not_started(&self, flow: &Arc<Flow>, done: watch::Sender<bool>) {
        {
            let mut state = self.state.locked();
            state.running -= 1;
            state.queue(flow).running -= 1;
        }
        let _ = done.send(true);
        self.wake.notify_one();
    }

    /// Ends `job` `failed` after flowd could not run it on (see [`Executor::abandon`]),
    /// contained like a run: should that fail too, the execution stays as it is stored.
    /// Under the run's lease, so it cannot end what another daemon took over.
    async fn abandon(&self, executor: &Arc<Executor>, flow: &Arc<Flow>, job: JobId, why: &str, hold: Option<Hold>) {
        let (executor, flow, why) = (executor.clone(), flow.clone(), why.to_string());
        let ended = tokio::spawn(async move {
            let abandon = executor.abandon(&flow, job, &why);
            match hold {
                Some(hold) if hold.lost.is_cancelled() => Ok(()),
                Some(hold) => hold.scope(abandon).await,
                None => abandon.await,
            }
        })
        .await;
        match ended {
            Ok(Ok(_)) => tracing::warn!(job = %job, "execution ended failed: flowd could not run it on"),
            // A held webhook's acceptance goes out with a later write: when that is the
            // one refused, nothing of the execution is stored and there is nothing to end.
            Ok(Err(ContinueError::NotFound(_))) => {
                tracing::warn!(job = %job, "the stopped execution is not in the store, so it was not ended failed: its first write was refused, or the store cannot show its last writes")
            }
            Ok(Err(e)) => {
                tracing::error!(job = %job, error = %e, "the stopped execution could not be recorded as failed")
            }
            Err(e) => {
                tracing::error!(job = %job, error = %panic_message(e), "the stopped execution could not be recorded as failed")
            }
        }
    }

    /// Waits out a long timed pause without a worker (or until a resume wakes it), then
    /// queues the rest of the run. Not tracked with the running executions: shutdown does
    /// not wait for it, and the pause, stored with its due time, is picked up on the next
    /// start.
    fn park(
        &self,
        flow: Arc<Flow>,
        job: JobId,
        at: SystemTime,
        done: watch::Sender<bool>,
        executor: Arc<Executor>,
        hold: Option<Hold>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = executor.pauses().wait(job, at) => {}
                _ = this.stopping.cancelled() => return,
            }
            let mut state = this.state.locked();
            state.queue(&flow).waiting.push_back(Item {
                work: Work::Resume(job),
                since: Instant::now(),
                fresh: false,
                done,
                hold,
            });
            drop(state);
            this.dispatch();
            this.wake.notify_one();
        });
    }

    fn reject(&self, flow: Arc<Flow>, item: Item, max_wait: Duration) {
        let this = self.clone();
        self.tasks.spawn(async move {
            let job = item.work.job();
            let why = format!(
                "waited in the throttle queue longer than max_wait ({})",
                crate::config::units::format_duration(max_wait)
            );
            let executor = this.executor();
            let reject = executor.reject_waiting(&flow, job, &why);
            let rejected = match item.hold {
                Some(hold) => hold.scope(reject).await,
                None => reject.await,
            };
            match rejected {
                Ok(_) => tracing::warn!(job = %job, flow = %flow.name, "execution rejected: {why}"),
                Err(e) => tracing::error!(job = %job, flow = %flow.name, error = %e, "rejecting an execution failed"),
            }
            if let Some(leases) = &this.leases {
                leases.release(job).await;
            }
            let _ = item.done.send(true);
        });
    }

    /// Each flow's waiting and running executions now (flows that had any), and the
    /// worker cap.
    pub fn load(&self) -> Load {
        let state = self.state.locked();
        let flows = state
            .queues
            .iter()
            .map(|q| FlowLoad {
                flow: q.flow.name.clone(),
                waiting: q.waiting.len(),
                running: q.running,
            })
            .collect();
        Load {
            flows,
            workers: self.workers,
        }
    }

    /// Waits for every running execution, at most `grace`; true when all finished.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}

/// What waiting for a throttle place came to.
enum Gate {
    Go,
    /// A fresh execution waited past `max_wait`.
    TooLong,
    /// Shutdown, or the lease was lost: it does not start here.
    Stop,
}

/// The longest a waiter sleeps between two asks for a throttle place (the store says
/// how long, by its place in line).
const GATE_POLL: Duration = Duration::from_secs(1);
/// How long a waiter sleeps after a failed ask.
const GATE_RETRY: Duration = Duration::from_millis(500);

/// The longest wait the dispatcher schedules: a later moment is re-checked then.
const FAR: Duration = Duration::from_secs(24 * 3600);

/// The time between two starts at `rate` per second (config bounds the rate; a value
/// no duration holds waits as long as one can).
fn interval(rate: f64) -> Duration {
    Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::MAX)
}

/// `t + d`, or [`FAR`] from `t` when that is past what an `Instant` holds.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or_else(|| t + FAR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DaemonConfig, SourceFile};
    use crate::engine::Admission;
    use crate::plugin::{Registry, Runtime, TriggerEvent};

    #[test]
    fn a_database_that_did_not_answer_ends_no_execution_and_a_failed_read_does() {
        use crate::store::ReadError;
        let stops = |e: StoreError| [Stop::Store(e.clone()), Stop::Continue(ContinueError::Store(e))];
        for stop in stops(ReadError::Unavailable("no connection in time".into()).into()) {
            assert!(stop.unavailable() && !stop.ends_it() && !stop.lost_lease(), "{stop}");
        }
        for stop in stops(ReadError::Backend("relation does not exist".into()).into()) {
            assert!(!stop.unavailable() && stop.ends_it(), "{stop}");
        }
    }

    fn executor() -> Arc<Executor> {
        let config = DaemonConfig::builtin();
        let runtime = Arc::new(Runtime::new(&config).expect("a runtime"));
        let (registry, _) = Registry::load(runtime, &config);
        Arc::new(Executor::new(Arc::new(registry), "test"))
    }

    fn flow(text: &str) -> Arc<Flow> {
        let source = SourceFile::new("t.toml", text);
        Arc::new(Flow::parse(&source, &DaemonConfig::builtin()).expect("a valid flow"))
    }

    /// A rate whose interval no `Duration` holds (config bounds it; the dispatcher must not
    /// panic on it anyway: a panic there would hold its lock and stop every flow).
    #[tokio::test]
    async fn a_rate_too_small_for_a_duration_starts_one_and_holds_the_next() {
        let mut f = flow(
            "[flow]\nname = \"slow\"\nthrottle = { max_concurrency = 5 }\n[trigger.manual]\n[[steps]]\nname = \"p\"\npause = \"1ms\"\n",
        );
        Arc::get_mut(&mut f).unwrap().throttle.as_mut().unwrap().rate = Some(1e-20);
        let executor = executor();
        let d = Dispatcher::new(executor.clone(), 4, CancellationToken::new(), None);
        let mut done = Vec::new();
        for _ in 0..2 {
            let reservation = d.reserve(&f).expect("room in the queue");
            let Admission::Accepted(a) = executor
                .admit(&f, TriggerEvent::Manual(serde_json::json!({})))
                .await
                .unwrap()
            else {
                panic!("accepted")
            };
            done.push(d.submit(reservation, *a));
        }
        tokio::time::timeout(Duration::from_secs(30), done.remove(0).wait())
            .await
            .expect("the first one ran");
        assert!(!done[0].is_done(), "the second waits for its turn at the rate");
        let load = d.load();
        assert_eq!(load.flows[0].waiting, 1);
        // The lock was never poisoned: the dispatcher still answers.
        assert!(d.reserve(&f).is_ok());
    }
}
