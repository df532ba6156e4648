//! The PostgreSQL server of the tests: `$FLOWD_TEST_POSTGRES` (as `.ci/run` sets it from
//! `scripts/postgres.sh`), else the server that script starts (installing it if needed).
//! Each test makes a database of its own and drops it when done.

use flowd::store::{
    Attempt, ClaimError, Execution, JobId, Lease, ListQuery, LogKey, LogQuery, LogRow, PayloadKey, PostgresStore,
    Pruned, ReadError, StepRow, Store, StoreFuture, Write, WriteError,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// The server's URL (its `postgres` database), starting the server once if need be.
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("FLOWD_TEST_POSTGRES")
            && !url.trim().is_empty()
        {
            return url.trim().to_string();
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run scripts/postgres.sh");
        assert!(out.status.success(), "scripts/postgres.sh failed: {:?}", out.status);
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{db}")
}

/// Runs `sql` on the server's `postgres` database, on a thread of its own (so it works
/// from sync tests and from inside a runtime alike).
fn admin(sql: String) {
    let url = server_url().to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connecting to the test server {url}: {e}"));
            let task = tokio::spawn(conn);
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            drop(client);
            let _ = task.await;
        })
    })
    .join()
    .unwrap();
}

/// A database of one test's own, dropped (with any connection still open) when this is.
pub struct Database {
    pub name: String,
    pub url: String,
}

impl Database {
    pub fn create() -> Database {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "flowd_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        admin(format!("CREATE DATABASE {name}"));
        Database {
            url: with_database(server_url(), &name),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        admin(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// A PostgreSQL store in a database of its own, which goes with it.
pub struct Scratch {
    store: PostgresStore,
    _db: Database,
}

impl Scratch {
    pub async fn new(max_payload: usize) -> Scratch {
        let db = Database::create();
        let store = PostgresStore::open(&db.url, max_payload, 8)
            .await
            .expect("open the store");
        Scratch { store, _db: db }
    }
}

impl Store for Scratch {
    fn write(&self, writes: Vec<Write>) -> StoreFuture<'_, Result<(), WriteError>> {
        self.store.write(writes)
    }
    fn execution(&self, id: JobId) -> StoreFuture<'_, Result<Option<Execution>, ReadError>> {
        self.store.execution(id)
    }
    fn attempts(&self, id: JobId) -> StoreFuture<'_, Result<Vec<Attempt>, ReadError>> {
        self.store.attempts(id)
    }
    fn steps(&self, id: JobId) -> StoreFuture<'_, Result<Vec<StepRow>, ReadError>> {
        self.store.steps(id)
    }
    fn payload(&self, key: PayloadKey) -> StoreFuture<'_, Result<Option<Value>, ReadError>> {
        self.store.payload(key)
    }
    fn list<'a>(&'a self, q: &'a ListQuery) -> StoreFuture<'a, Result<Vec<Execution>, ReadError>> {
        self.store.list(q)
    }
    fn histogram<'a>(
        &'a self,
        q: &'a ListQuery,
        edges: &'a [SystemTime],
    ) -> StoreFuture<'a, Result<Vec<[u64; 8]>, ReadError>> {
        self.store.histogram(q, edges)
    }
    fn oldest(&self) -> StoreFuture<'_, Result<Option<Execution>, ReadError>> {
        self.store.oldest()
    }
    fn logs<'a>(&'a self, q: &'a LogQuery) -> StoreFuture<'a, Result<Vec<(LogKey, LogRow)>, ReadError>> {
        self.store.logs(q)
    }
    fn inactive_flows(&self) -> StoreFuture<'_, Result<BTreeSet<String>, ReadError>> {
        self.store.inactive_flows()
    }
    fn last_fire<'a>(&'a self, flow: &'a str) -> StoreFuture<'a, Result<Option<SystemTime>, ReadError>> {
        self.store.last_fire(flow)
    }
    fn unfinished(&self) -> StoreFuture<'_, Result<Vec<Execution>, ReadError>> {
        self.store.unfinished()
    }
    fn prune(&self, cutoff: SystemTime, max: usize) -> StoreFuture<'_, Result<Pruned, WriteError>> {
        self.store.prune(cutoff, max)
    }
    fn claim<'a>(&'a self, job: JobId, owner: &'a str, ttl: Duration) -> StoreFuture<'a, Result<Lease, ClaimError>> {
        self.store.claim(job, owner, ttl)
    }
    fn release(&self, lease: Lease) -> StoreFuture<'_, Result<(), ClaimError>> {
        self.store.release(lease)
    }
    fn operator_state(&self) -> StoreFuture<'_, Result<Option<flowd::store::OperatorState>, ReadError>> {
        self.store.operator_state()
    }
    fn announce_reload(&self) -> StoreFuture<'_, Result<Option<u64>, WriteError>> {
        self.store.announce_reload()
    }
    fn ask_wake(&self, job: JobId, due: SystemTime) -> StoreFuture<'_, Result<bool, WriteError>> {
        self.store.ask_wake(job, due)
    }
    fn forget_wakes(&self, jobs: Vec<JobId>) -> StoreFuture<'_, Result<(), WriteError>> {
        self.store.forget_wakes(jobs)
    }
    fn renew<'a>(
        &'a self,
        owner: &'a str,
        leases: &'a [Lease],
        ttl: Duration,
    ) -> StoreFuture<'a, Result<Vec<Lease>, ClaimError>> {
        self.store.renew(owner, leases, ttl)
    }
    fn take_over<'a>(
        &'a self,
        owner: &'a str,
        ttl: Duration,
        flows: &'a [String],
        limit: usize,
    ) -> StoreFuture<'a, Result<Vec<(Execution, Lease)>, ClaimError>> {
        self.store.take_over(owner, ttl, flows, limit)
    }
    fn take_slot<'a>(
        &'a self,
        lease: &'a Lease,
        flow: &'a str,
        max_concurrency: u32,
        interval: Option<Duration>,
    ) -> StoreFuture<'a, Result<flowd::store::Slot, ClaimError>> {
        self.store.take_slot(lease, flow, max_concurrency, interval)
    }
    fn free_slot<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, Result<(), ClaimError>> {
        self.store.free_slot(lease)
    }
    fn render_metrics(&self, out: &mut String) {
        self.store.render_metrics(out)
    }
}
