//! The PostgreSQL backend: every write batch one transaction, reads straight from the
//! database through a pool of connections (tokio-postgres and deadpool), claims as rows
//! timed by the database's clock, so several daemons sharing one database agree on who
//! holds what. The schema is migrated on open (see `schema`).
//!
//! - `schema`: the migrations.
//! - `write`: write batches and retention.
//! - `query`: reads: one execution, the list, the logs, what recovery asks.
//! - `lease`: renewing leases and taking over expired ones.
//! - `throttle`: a throttled flow's places and rate, across daemons.
//! - `text`: U+0000, which PostgreSQL's text cannot hold, escaped and read back.

mod lease;
mod query;
mod schema;
mod text;
mod throttle;
mod write;

use crate::status::ExecutionStatus;
use crate::store::{
    Attempt, ClaimError, Execution, JobId, Lease, ListQuery, LogKey, LogQuery, LogRow, OpenError, PayloadKey, Pruned,
    ReadError, Slot, StepRow, Store, StoreFuture, Write, WriteError,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::NoTls;

/// How long a connection may take to open, and a caller may wait for a free one, before
/// the operation fails (the database is unreachable or overloaded).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a write under a lease paces its tries for a connection (doubling from the first
/// pause to the most), and how often it says it still waits.
const PATIENT_RETRY_FIRST: Duration = Duration::from_millis(50);
const PATIENT_RETRY_MOST: Duration = Duration::from_secs(1);
const PATIENT_WARN_EVERY: Duration = Duration::from_secs(30);

pub struct PostgresStore {
    pool: Pool,
    max_payload: usize,
    /// The database, for messages: host, port and name, never the password.
    name: String,
}

/// An execution status as the `status` columns hold it (the same codes as redb's).
/// These codes are in databases: never renumber them.
pub(super) const fn status_code(s: ExecutionStatus) -> i16 {
    s.code() as i16
}

/// Codes of the statuses that are not final.
pub(super) const UNFINISHED: [i16; 4] = [
    status_code(ExecutionStatus::Pending),
    status_code(ExecutionStatus::Queued),
    status_code(ExecutionStatus::Running),
    status_code(ExecutionStatus::Paused),
];

/// A job id as the `job_id` columns hold it.
pub(super) fn id(job: u128) -> Vec<u8> {
    job.to_be_bytes().to_vec()
}

pub(super) fn from_id(bytes: &[u8]) -> Result<u128, ReadError> {
    let b: [u8; 16] = bytes.try_into().map_err(|_| ReadError::Corrupt {
        table: "logs",
        detail: format!("a job id of {} bytes", bytes.len()),
    })?;
    Ok(u128::from_be_bytes(b))
}

/// Nanoseconds since the epoch, as a `bigint` (saturating: until the year 2262).
pub(super) fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

pub(super) fn time(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

/// What went wrong, with the server's own message when it gave one (tokio-postgres's
/// `Display` alone says only "db error").
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

pub(super) fn pool_describe(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Create) => {
            "no connection to the database in time (connecting took too long)".to_string()
        }
        deadpool_postgres::PoolError::Timeout(_) => "no connection to the database in time".to_string(),
        other => other.to_string(),
    }
}

/// A read's error: a connection that closed under it (the server went away, or the
/// network) says the database is unavailable.
pub(super) fn read_err(e: tokio_postgres::Error) -> ReadError {
    if e.is_closed() {
        ReadError::Unavailable(describe(&e))
    } else {
        ReadError::Backend(describe(&e))
    }
}

/// Whether the pool found no connection because the database did not answer in time
/// or could not be reached (rather than because the pool is closed).
fn unanswered(e: &deadpool_postgres::PoolError) -> bool {
    matches!(
        e,
        deadpool_postgres::PoolError::Timeout(_) | deadpool_postgres::PoolError::Backend(_)
    )
}

pub(super) fn write_err(e: tokio_postgres::Error) -> WriteError {
    WriteError::Backend(describe(&e))
}

/// The record a `jsonb` column holds (see `text`).
pub(super) fn decode<T: serde::de::DeserializeOwned>(table: &'static str, doc: &str) -> Result<T, ReadError> {
    text::from_doc(doc).map_err(|e| ReadError::Corrupt {
        table,
        detail: e.to_string(),
    })
}

/// A payload, as its `json` column keeps it: exactly as written.
pub(super) fn decode_payload(doc: &str) -> Result<Value, ReadError> {
    serde_json::from_str(doc).map_err(|e| ReadError::Corrupt {
        table: "payloads",
        detail: e.to_string(),
    })
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or key=value settings) with
    /// up to `pool_size` connections, and migrates its schema to this flowd's.
    pub async fn open(url: &str, max_payload: usize, pool_size: usize) -> Result<PostgresStore, OpenError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| OpenError::Database {
            path: "the PostgreSQL URL".into(),
            message: format!("it is not a connection URL: {e}"),
        })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("flowd");
        let name = where_(&config);
        let open_err = |message: String| OpenError::Database {
            path: name.clone(),
            message,
        };
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(WAIT_TIMEOUT))
            .build()
            .map_err(|e| open_err(e.to_string()))?;
        let store = PostgresStore {
            pool,
            max_payload,
            name: name.clone(),
        };
        store.migrate().await.map_err(open_err)?;
        Ok(store)
    }

    /// The database, as messages name it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Brings the schema to the newest version, each migration once; returns the version.
    pub async fn migrate(&self) -> Result<usize, String> {
        let mut client = self.pool.get().await.map_err(|e| pool_describe(&e))?;
        let tx = client.transaction().await.map_err(|e| describe(&e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::MIGRATION_LOCK])
            .await
            .map_err(|e| describe(&e))?;
        tx.batch_execute(schema::VERSION_TABLE)
            .await
            .map_err(|e| describe(&e))?;
        let row = tx
            .query_one("SELECT coalesce(max(version), 0) FROM flowd_schema_version", &[])
            .await
            .map_err(|e| describe(&e))?;
        let have = row.get::<_, i32>(0) as usize;
        let known = schema::MIGRATIONS.len();
        if have > known {
            return Err(format!(
                "its schema is version {have}, newer than this flowd knows ({known}): run a newer flowd"
            ));
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(have) {
            let version = (i + 1) as i32;
            tx.batch_execute(sql)
                .await
                .map_err(|e| format!("migration {version}: {}", describe(&e)))?;
            tx.execute("INSERT INTO flowd_schema_version (version) VALUES ($1)", &[&version])
                .await
                .map_err(|e| describe(&e))?;
        }
        tx.commit().await.map_err(|e| describe(&e))?;
        if have < known {
            tracing::info!(database = %self.name, from = have, to = known, "migrated the database's schema");
        }
        Ok(known)
    }

    /// How many rows each part of the store holds (exact: each table is scanned).
    pub async fn counts(&self) -> Result<crate::store::Counts, ReadError> {
        query::counts(self).await
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, String> {
        self.pool.get().await.map_err(|e| self.pool_error(&e))
    }

    /// A connection for a write outside a lease (an operator's action, a new request):
    /// one the database did not give in time is [`WriteError::Unavailable`], and
    /// nothing was sent.
    async fn client_for_write(&self) -> Result<deadpool_postgres::Object, WriteError> {
        self.client_or(WriteError::Unavailable, WriteError::Backend).await
    }

    /// A connection for a read: one the database did not give in time is
    /// [`ReadError::Unavailable`].
    async fn client_for_read(&self) -> Result<deadpool_postgres::Object, ReadError> {
        self.client_or(ReadError::Unavailable, ReadError::Backend).await
    }

    /// A connection, or the pool's error as `unavailable` when the database did not give
    /// one in time (asking again later may work) and as `backend` otherwise.
    async fn client_or<E>(
        &self,
        unavailable: fn(String) -> E,
        backend: fn(String) -> E,
    ) -> Result<deadpool_postgres::Object, E> {
        self.pool.get().await.map_err(|e| {
            let message = self.pool_error(&e);
            if unanswered(&e) {
                unavailable(message)
            } else {
                backend(message)
            }
        })
    }

    /// A connection for a write under a lease (of an execution this daemon runs): a
    /// database that stalls or is unreachable is waited out rather than failing the
    /// execution, whose end could not be recorded either. When it answers again the write
    /// goes through, or is refused as fenced if another daemon took the execution over
    /// meanwhile. Only a closed pool (shutdown) gives up.
    async fn client_waiting(&self) -> Result<deadpool_postgres::Object, String> {
        let started = std::time::Instant::now();
        let mut pause = PATIENT_RETRY_FIRST;
        let mut warned: Option<std::time::Instant> = None;
        loop {
            match self.pool.get().await {
                Ok(client) => {
                    if warned.is_some() {
                        tracing::info!(database = %self.name, waited = ?started.elapsed(), "the database answers again: the waiting writes go on");
                    }
                    return Ok(client);
                }
                Err(e) if unanswered(&e) => {
                    if warned.is_none_or(|w| w.elapsed() >= PATIENT_WARN_EVERY) {
                        tracing::warn!(database = %self.name, waited = ?started.elapsed(), error = %self.pool_error(&e), "a running execution's write waits for the database");
                        warned = Some(std::time::Instant::now());
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(PATIENT_RETRY_MOST);
                }
                Err(e) => return Err(self.pool_error(&e)),
            }
        }
    }

    fn pool_error(&self, e: &deadpool_postgres::PoolError) -> String {
        let s = self.pool.status();
        format!(
            "{} ({} of {} connections in use, {} waiting)",
            pool_describe(e),
            s.size.saturating_sub(s.available),
            s.max_size,
            s.waiting
        )
    }

    async fn claim_now(&self, job: JobId, owner: &str, ttl: Duration) -> Result<Lease, ClaimError> {
        let backend = |e: tokio_postgres::Error| ClaimError::Backend(describe(&e));
        let client = self.client().await.map_err(ClaimError::Backend)?;
        let ttl_ns = lease::ttl_ns(ttl);
        let job_bytes = id(job.0);
        // The database's clock decides expiry, so daemons on several machines agree.
        // A claim is granted when nobody else holds it unexpired; the fence stays for a
        // renewal by the holder and grows for anyone else.
        let grant = client
            .prepare_cached(&format!(
                "WITH now AS (SELECT {} AS ns)
                 INSERT INTO claims AS c (job_id, owner, fence, expires_ns)
                 SELECT $1, $2, 1, now.ns + $3 FROM now
                 ON CONFLICT (job_id) DO UPDATE SET
                     owner = EXCLUDED.owner,
                     fence = CASE WHEN c.owner = EXCLUDED.owner AND c.expires_ns > EXCLUDED.expires_ns - $3
                                  THEN c.fence ELSE c.fence + 1 END,
                     expires_ns = EXCLUDED.expires_ns
                 WHERE c.owner = EXCLUDED.owner OR c.expires_ns <= EXCLUDED.expires_ns - $3
                 RETURNING fence, expires_ns",
                lease::NOW_NS
            ))
            .await
            .map_err(backend)?;
        for _ in 0..3 {
            if let Some(row) = client
                .query_opt(&grant, &[&job_bytes, &owner, &ttl_ns])
                .await
                .map_err(backend)?
            {
                return Ok(Lease {
                    job,
                    owner: owner.to_string(),
                    fence: row.get::<_, i64>(0) as u64,
                    expires: time(row.get(1)),
                });
            }
            let held = client
                .query_opt("SELECT owner, expires_ns FROM claims WHERE job_id = $1", &[&job_bytes])
                .await
                .map_err(backend)?;
            if let Some(row) = held {
                return Err(ClaimError::Held {
                    job,
                    owner: row.get(0),
                    until: time(row.get(1)),
                });
            }
            // Released and deleted between the two statements: ask again.
        }
        Err(ClaimError::Backend(format!("the claim on {job} kept changing hands")))
    }

    async fn release_now(&self, lease: Lease) -> Result<(), ClaimError> {
        let client = self.client().await.map_err(ClaimError::Backend)?;
        // Expired now; the row and its fence stay, so the next claim gets a greater one.
        let n = client
            .execute(
                "UPDATE claims SET expires_ns = 0 WHERE job_id = $1 AND owner = $2 AND fence = $3",
                &[&id(lease.job.0), &lease.owner, &(lease.fence as i64)],
            )
            .await
            .map_err(|e| ClaimError::Backend(describe(&e)))?;
        if n == 1 {
            Ok(())
        } else {
            Err(ClaimError::Lost(lease.job))
        }
    }
}

/// `host:port/dbname` of a connection config, for messages (never its password).
fn where_(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
    format!("postgres {host}:{port}/{db}")
}

impl Store for PostgresStore {
    fn write(&self, writes: Vec<Write>) -> StoreFuture<'_, Result<(), WriteError>> {
        Box::pin(write::write(self, writes))
    }

    fn prune(&self, cutoff: SystemTime, max_executions: usize) -> StoreFuture<'_, Result<Pruned, WriteError>> {
        Box::pin(write::prune(self, cutoff, max_executions))
    }

    fn execution(&self, job: JobId) -> StoreFuture<'_, Result<Option<Execution>, ReadError>> {
        Box::pin(query::execution(self, job))
    }

    fn attempts(&self, job: JobId) -> StoreFuture<'_, Result<Vec<Attempt>, ReadError>> {
        Box::pin(query::rows(
            self,
            "attempts",
            "SELECT doc::text FROM attempts WHERE job_id = $1 ORDER BY attempt",
            job,
        ))
    }

    fn steps(&self, job: JobId) -> StoreFuture<'_, Result<Vec<StepRow>, ReadError>> {
        Box::pin(query::rows(
            self,
            "steps",
            "SELECT doc::text FROM steps WHERE job_id = $1 ORDER BY attempt, step",
            job,
        ))
    }

    fn payload(&self, key: PayloadKey) -> StoreFuture<'_, Result<Option<Value>, ReadError>> {
        Box::pin(query::payload(self, key))
    }

    fn histogram<'a>(
        &'a self,
        q: &'a ListQuery,
        edges: &'a [SystemTime],
    ) -> StoreFuture<'a, Result<Vec<[u64; 8]>, ReadError>> {
        Box::pin(query::histogram(self, q, edges))
    }

    fn oldest(&self) -> StoreFuture<'_, Result<Option<Execution>, ReadError>> {
        Box::pin(query::oldest(self))
    }

    fn list<'a>(&'a self, q: &'a ListQuery) -> StoreFuture<'a, Result<Vec<Execution>, ReadError>> {
        Box::pin(query::list(self, q))
    }

    fn logs<'a>(&'a self, q: &'a LogQuery) -> StoreFuture<'a, Result<Vec<(LogKey, LogRow)>, ReadError>> {
        Box::pin(query::logs(self, q))
    }

    fn inactive_flows(&self) -> StoreFuture<'_, Result<BTreeSet<String>, ReadError>> {
        Box::pin(query::inactive_flows(self))
    }

    fn last_fire<'a>(&'a self, flow: &'a str) -> StoreFuture<'a, Result<Option<SystemTime>, ReadError>> {
        Box::pin(query::last_fire(self, flow))
    }

    fn unfinished(&self) -> StoreFuture<'_, Result<Vec<Execution>, ReadError>> {
        Box::pin(query::unfinished(self))
    }

    fn claim<'a>(&'a self, job: JobId, owner: &'a str, ttl: Duration) -> StoreFuture<'a, Result<Lease, ClaimError>> {
        Box::pin(self.claim_now(job, owner, ttl))
    }

    fn release(&self, lease: Lease) -> StoreFuture<'_, Result<(), ClaimError>> {
        Box::pin(self.release_now(lease))
    }

    fn operator_state(&self) -> StoreFuture<'_, Result<Option<crate::store::OperatorState>, ReadError>> {
        Box::pin(async { query::operator_state(self).await.map(Some) })
    }

    fn announce_reload(&self) -> StoreFuture<'_, Result<Option<u64>, WriteError>> {
        Box::pin(async { write::announce_reload(self).await.map(Some) })
    }

    fn ask_wake(&self, job: JobId, due: SystemTime) -> StoreFuture<'_, Result<bool, WriteError>> {
        Box::pin(write::ask_wake(self, job, due))
    }

    fn forget_wakes(&self, jobs: Vec<JobId>) -> StoreFuture<'_, Result<(), WriteError>> {
        Box::pin(write::forget_wakes(self, jobs))
    }

    fn renew<'a>(
        &'a self,
        owner: &'a str,
        leases: &'a [Lease],
        ttl: Duration,
    ) -> StoreFuture<'a, Result<Vec<Lease>, ClaimError>> {
        Box::pin(lease::renew(self, owner, leases, ttl))
    }

    fn take_over<'a>(
        &'a self,
        owner: &'a str,
        ttl: Duration,
        flows: &'a [String],
        limit: usize,
    ) -> StoreFuture<'a, Result<Vec<(Execution, Lease)>, ClaimError>> {
        Box::pin(lease::take_over(self, owner, ttl, flows, limit))
    }

    fn take_slot<'a>(
        &'a self,
        lease: &'a Lease,
        flow: &'a str,
        max_concurrency: u32,
        interval: Option<Duration>,
    ) -> StoreFuture<'a, Result<Slot, ClaimError>> {
        Box::pin(throttle::take_slot(self, lease, flow, max_concurrency, interval))
    }

    fn free_slot<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, Result<(), ClaimError>> {
        Box::pin(throttle::free_slot(self, lease))
    }

    fn render_metrics(&self, out: &mut String) {
        let s = self.pool.status();
        for (name, help, value) in [
            (
                "flowd_store_pool_max",
                "Connections the PostgreSQL pool may open.",
                s.max_size,
            ),
            ("flowd_store_pool_size", "Connections the pool holds open.", s.size),
            (
                "flowd_store_pool_available",
                "Open connections not in use.",
                s.available,
            ),
            (
                "flowd_store_pool_waiting",
                "Store operations waiting for a connection.",
                s.waiting,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
    }
}
