//! What the engine does when the store fails, on any backend: a wrapper fails the Nth
//! write, and an execution whose transition cannot be recorded stops there (no further
//! step runs, nothing more is written), then recovery on the healthy store finishes it
//! without running a step whose success is stored.

use flowd::engine::{ExecutionStatus, Executor, Observer, StepStatus};
use flowd::plugin::TriggerEvent;
use flowd::store::{
    Attempt, ClaimError, Execution, JobId, Lease, ListQuery, LogKey, LogQuery, LogRow, PayloadKey, Pruned, ReadError,
    StepRow, Store, StoreFuture, Write, WriteError,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A store that fails its `fail_at`th write (counting from 1), and every later one too
/// when `sticky` (a store that went away) or only that one (a passing fault).
struct Faulty {
    inner: Arc<dyn Store>,
    fail_at: usize,
    sticky: bool,
    writes: AtomicUsize,
    /// Writes attempted after the failed one.
    after: AtomicUsize,
    /// When set, each `renew` waits at its start until the test lets it go.
    renew_gate: Option<Arc<RenewGate>>,
}

/// A heartbeat caught on its way to the store: `entered` when a renewal starts, which
/// then waits for `go`.
#[derive(Default)]
struct RenewGate {
    entered: tokio::sync::Notify,
    go: tokio::sync::Notify,
}

impl Faulty {
    fn new(inner: Arc<dyn Store>, fail_at: usize, sticky: bool) -> Faulty {
        Faulty {
            inner,
            fail_at,
            sticky,
            writes: AtomicUsize::new(0),
            after: AtomicUsize::new(0),
            renew_gate: None,
        }
    }
}

impl Store for Faulty {
    fn write(&self, writes: Vec<Write>) -> StoreFuture<'_, Result<(), WriteError>> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n > self.fail_at {
            self.after.fetch_add(1, Ordering::SeqCst);
        }
        if n == self.fail_at || (self.sticky && n > self.fail_at) {
            return Box::pin(async { Err(WriteError::Backend("injected fault".into())) });
        }
        self.inner.write(writes)
    }
    fn execution(&self, id: JobId) -> StoreFuture<'_, Result<Option<Execution>, ReadError>> {
        self.inner.execution(id)
    }
    fn attempts(&self, id: JobId) -> StoreFuture<'_, Result<Vec<Attempt>, ReadError>> {
        self.inner.attempts(id)
    }
    fn steps(&self, id: JobId) -> StoreFuture<'_, Result<Vec<StepRow>, ReadError>> {
        self.inner.steps(id)
    }
    fn payload(&self, key: PayloadKey) -> StoreFuture<'_, Result<Option<Value>, ReadError>> {
        self.inner.payload(key)
    }
    fn list<'a>(&'a self, q: &'a ListQuery) -> StoreFuture<'a, Result<Vec<Execution>, ReadError>> {
        self.inner.list(q)
    }
    fn histogram<'a>(
        &'a self,
        q: &'a ListQuery,
        edges: &'a [SystemTime],
    ) -> StoreFuture<'a, Result<Vec<[u64; 8]>, ReadError>> {
        self.inner.histogram(q, edges)
    }
    fn oldest(&self) -> StoreFuture<'_, Result<Option<Execution>, ReadError>> {
        self.inner.oldest()
    }
    fn logs<'a>(&'a self, q: &'a LogQuery) -> StoreFuture<'a, Result<Vec<(LogKey, LogRow)>, ReadError>> {
        self.inner.logs(q)
    }
    fn inactive_flows(&self) -> StoreFuture<'_, Result<BTreeSet<String>, ReadError>> {
        self.inner.inactive_flows()
    }
    fn last_fire<'a>(&'a self, flow: &'a str) -> StoreFuture<'a, Result<Option<SystemTime>, ReadError>> {
        self.inner.last_fire(flow)
    }
    fn unfinished(&self) -> StoreFuture<'_, Result<Vec<Execution>, ReadError>> {
        self.inner.unfinished()
    }
    fn prune(&self, cutoff: SystemTime, max: usize) -> StoreFuture<'_, Result<Pruned, WriteError>> {
        self.inner.prune(cutoff, max)
    }
    fn claim<'a>(&'a self, job: JobId, owner: &'a str, ttl: Duration) -> StoreFuture<'a, Result<Lease, ClaimError>> {
        self.inner.claim(job, owner, ttl)
    }
    fn release(&self, lease: Lease) -> StoreFuture<'_, Result<(), ClaimError>> {
        self.inner.release(lease)
    }
    fn renew<'a>(
        &'a self,
        owner: &'a str,
        leases: &'a [Lease],
        ttl: Duration,
    ) -> StoreFuture<'a, Result<Vec<Lease>, ClaimError>> {
        let gate = self.renew_gate.clone();
        Box::pin(async move {
            if let Some(gate) = gate {
                gate.entered.notify_one();
                gate.go.notified().await;
            }
            self.inner.renew(owner, leases, ttl).await
        })
    }
    fn take_over<'a>(
        &'a self,
        owner: &'a str,
        ttl: Duration,
        flows: &'a [String],
        limit: usize,
    ) -> StoreFuture<'a, Result<Vec<(Execution, Lease)>, ClaimError>> {
        self.inner.take_over(owner, ttl, flows, limit)
    }
    fn take_slot<'a>(
        &'a self,
        lease: &'a Lease,
        flow: &'a str,
        max_concurrency: u32,
        interval: Option<Duration>,
    ) -> StoreFuture<'a, Result<flowd::store::Slot, ClaimError>> {
        self.inner.take_slot(lease, flow, max_concurrency, interval)
    }
    fn free_slot<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, Result<(), ClaimError>> {
        self.inner.free_slot(lease)
    }
}

/// Counts the steps that ended, by name.
#[derive(Default)]
struct Ended(Mutex<Vec<String>>);

impl Observer for Ended {
    fn step_ended(&self, _flow: &str, step: &str, status: StepStatus, _d: Duration, _fuel: u64) {
        if status.ran() {
            self.0.lock().unwrap().push(step.to_string());
        }
    }
}

impl Ended {
    fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

const FLOW: &str = r#"
[flow]
name = "four"
[trigger.manual]
[[steps]]
name = "one"
connector = "echo"
[[steps]]
name = "two"
connector = "echo"
[[steps]]
name = "wait"
pause = "10ms"
[[steps]]
name = "three"
connector = "echo"
"#;

async fn setup() -> (crate::support::Setup, flowd::loader::Setup) {
    let setup = crate::support::Setup::new("");
    setup.flow("four", FLOW);
    let config = flowd::config::DaemonConfig::load(&setup.config()).unwrap();
    let loaded = flowd::loader::load(&config, &[], flowd::loader::Purpose::Offline)
        .await
        .map_err(|f| f.errors.to_string())
        .unwrap();
    (setup, loaded)
}

/// How many writes one healthy run of the flow makes.
async fn writes_of_a_healthy_run(
    flow: &flowd::config::Flow,
    registry: Arc<flowd::plugin::Registry>,
    store: Arc<dyn Store>,
) -> usize {
    let faulty = Arc::new(Faulty::new(store, usize::MAX, false));
    let executor = Executor::new(registry, "test").with_store(faulty.clone());
    let report = executor.execute(flow, TriggerEvent::Manual(json!({}))).await.unwrap();
    assert_eq!(report.status, ExecutionStatus::Success);
    faulty.writes.load(Ordering::SeqCst)
}

/// A flow of four steps and a pause, run with each of its writes failing in turn (once,
/// then from then on) on stores from `fresh`.
pub async fn a_transition_that_cannot_be_recorded_stops_there_and_recovers<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Store>>,
{
    let (_dir, loaded) = setup().await;
    let flowd::loader::Setup { registry, flows } = loaded;
    let registry = Arc::new(registry);
    let flow = flows.by_name["four"].clone();
    let total = writes_of_a_healthy_run(&flow, registry.clone(), fresh().await).await;
    assert!(
        total >= 4,
        "a run of four steps with a pause writes at least four times, not {total}"
    );
    for sticky in [false, true] {
        for fail_at in 1..=total {
            let what = format!("write {fail_at} of {total} failing (sticky: {sticky})");
            let inner = fresh().await;
            let faulty = Arc::new(Faulty::new(inner.clone(), fail_at, sticky));
            let ended = Arc::new(Ended::default());
            let executor = Executor::new(registry.clone(), "test")
                .with_store(faulty.clone())
                .with_observer(ended.clone());
            let result = executor.execute(&flow, TriggerEvent::Manual(json!({}))).await;
            let err = match result {
                Err(e) => e,
                Ok(r) => panic!("{what}: the run ended {} as if recorded", r.status),
            };
            assert!(err.to_string().contains("injected fault"), "{what}: {err}");
            assert_eq!(
                faulty.after.load(Ordering::SeqCst),
                0,
                "{what}: written on after the failure"
            );
            let ran_before = ended.names();

            // What the store holds is the state before the failed transition.
            let unfinished = inner.unfinished().await.unwrap();
            if fail_at == 1 {
                // not even accepted: nothing stored, nothing ran
                assert!(unfinished.is_empty(), "{what}: {unfinished:?}");
                assert!(ran_before.is_empty(), "{what}: {ran_before:?}");
                continue;
            }
            assert_eq!(unfinished.len(), 1, "{what}");
            let job = unfinished[0].job_id;
            let stored_success: BTreeSet<String> = inner
                .steps(job)
                .await
                .unwrap()
                .into_iter()
                .filter(|s| s.status == StepStatus::Success)
                .map(|s| s.name)
                .collect();

            // Recovery on the healthy store: finishes, and runs no step stored as done.
            let ended_again = Arc::new(Ended::default());
            let healthy = Executor::new(registry.clone(), "test")
                .with_store(inner.clone())
                .with_observer(ended_again.clone());
            let report = healthy.recover(&flow, job).await.unwrap();
            assert_eq!(report.status, ExecutionStatus::Success, "{what}");
            for name in ended_again.names() {
                assert!(
                    !stored_success.contains(&name),
                    "{what}: step {name} ran again though its success was stored"
                );
            }
            let done = inner.execution(job).await.unwrap().unwrap();
            assert_eq!(done.status, ExecutionStatus::Success, "{what}");
            let steps = inner.steps(job).await.unwrap();
            assert_eq!(steps.len(), 4, "{what}: {steps:?}");
            assert!(
                steps.iter().all(|s| s.status == StepStatus::Success),
                "{what}: {steps:?}"
            );
            assert!(inner.unfinished().await.unwrap().is_empty(), "{what}");
        }
    }
}

/// A lease given up (its run ended) while the heartbeat's renewal of it was on its way to
/// the store stays given up: another daemon claims the execution at once, rather than a
/// lease's time later.
pub async fn a_lease_given_up_while_the_heartbeat_renews_it_stays_given_up(store: Arc<dyn Store>) {
    let gate = Arc::new(RenewGate::default());
    let mut faulty = Faulty::new(store.clone(), usize::MAX, false);
    faulty.renew_gate = Some(gate.clone());
    let ttl = Duration::from_secs(60);
    let leases = Arc::new(flowd::daemon::leases::Leases::new(Arc::new(faulty), "one".into(), ttl));
    let job = JobId::new();
    let kept = JobId::new();
    let hold = leases.claim(job).await.unwrap().expect("nobody holds it");
    let other = leases.claim(kept).await.unwrap().expect("nobody holds it");
    let beat = tokio::spawn({
        let leases = leases.clone();
        async move { leases.beat().await }
    });
    gate.entered.notified().await;
    leases.release(job).await;
    gate.go.notify_one();
    beat.await.unwrap();
    match store.claim(job, "two", ttl).await {
        Ok(lease) => assert!(lease.fence > hold.lease.fence, "{lease:?} after {:?}", hold.lease),
        Err(e) => panic!("a lease given up during a heartbeat came back with it: {e:?}"),
    }
    // the lease still held was renewed, and is still this daemon's alone
    match store.claim(kept, "two", ttl).await {
        Err(ClaimError::Held { owner, .. }) => assert_eq!(owner, "one"),
        other => panic!("a lease the heartbeat renewed was granted to another daemon: {other:?}"),
    }
    assert!(!other.lost.is_cancelled());
}
