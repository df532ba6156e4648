//! Durable executions: the [`Store`] the executor writes every transition to before it
//! acts on it and the API reads the execution log from, independent of any backend.
//!
//! - `model`: what is kept and asked: executions, attempts, steps, payloads, log records,
//!   the writes and the queries.
//! - `redb`: the embedded backend, the default.
//! - `postgres`: PostgreSQL, a database several daemons may share.
//! - `retention`: pruning what is older than the retention, in bounded batches.
//! - `copy`: moving a redb store into PostgreSQL.

pub mod copy;
mod model;
pub mod postgres;
pub mod redb;
pub mod retention;

pub use model::{
    Attempt, Counts, Execution, JobId, ListQuery, LogKey, LogQuery, LogRow, PayloadKey, PayloadKind, SHARED_ATTEMPT,
    StepRow, TryRow, Write,
};
pub use postgres::PostgresStore;
pub use redb::{BATCH_BUCKETS, RedbStore, Space, TableSpace, WriterStats};

use serde_json::Value;
use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What a store operation resolves to, later (a network database answers later).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the database {path}: {message}")]
    Database { path: String, message: String },
}

/// Why writes were not made durable (none of the batch was).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("a {kind} payload of {size} bytes is over the {max}-byte limit (limits.max_payload)")]
    PayloadTooLarge {
        kind: &'static str,
        size: usize,
        max: usize,
    },
    #[error("the store is closed")]
    Closed,
    #[error("the database refused the write: {0}")]
    Backend(String),
    /// No connection to the database in time (it stalls, or is unreachable): nothing was
    /// sent, so nothing was written, and asking again later may work.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The writer's lease on the execution expired and was claimed again: its writes are
    /// refused so that two owners never both record the execution.
    #[error("the lease of {owner} on execution {job} (fence {fence}) is no longer held: the write is refused")]
    Fenced { job: JobId, owner: String, fence: u64 },
    /// Another daemon took this fire time of the schedule first.
    #[error("fire time {} of flow \"{flow}\" is recorded already", crate::time_format::rfc3339(*.at))]
    AlreadyFired { flow: String, at: SystemTime },
}

/// Why a read found no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error("unreadable {table} record: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("the store is closed")]
    Closed,
    #[error("the database could not be read: {0}")]
    Backend(String),
    /// The database did not answer (unreachable, or no connection in time): nothing is
    /// known to be wrong with what was asked, and asking again later may work.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

/// Why a claim on an execution was not granted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClaimError {
    #[error("execution {job} is claimed by {owner} until {}", crate::time_format::rfc3339(*.until))]
    Held {
        job: JobId,
        owner: String,
        until: SystemTime,
    },
    #[error("the lease on execution {0} was lost (it expired and was claimed again)")]
    Lost(JobId),
    #[error("the database could not record the claim: {0}")]
    Backend(String),
}

/// A failed store operation, for callers that carry on the same way whichever it was.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// `From` a store operation's own error for an error enum that carries a [`StoreError`]
/// in its `Store` variant, so `?` takes either.
#[macro_export]
macro_rules! store_errors_into {
    ($t:ty) => {
        impl From<$crate::store::ReadError> for $t {
            fn from(e: $crate::store::ReadError) -> Self {
                <$t>::Store(e.into())
            }
        }
        impl From<$crate::store::WriteError> for $t {
            fn from(e: $crate::store::WriteError) -> Self {
                <$t>::Store(e.into())
            }
        }
    };
}

impl StoreError {
    /// The store was closed (shutdown): nothing is wrong with what was asked.
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            StoreError::Read(ReadError::Closed) | StoreError::Write(WriteError::Closed)
        )
    }

    /// The database did not answer: the operation may work when asked again later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Read(ReadError::Unavailable(_)) | StoreError::Write(WriteError::Unavailable(_))
        )
    }

    /// The write was refused because the writer no longer holds the execution's lease:
    /// another owner runs it now.
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Write(WriteError::Fenced { .. }))
    }
}

/// What one prune deleted, and whether more is past the cutoff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub executions: usize,
    /// Log records, whether they went with their execution or on their own.
    pub log_records: usize,
    /// The batch reached its bound: another call may delete more.
    pub more: bool,
}

/// A time-bounded claim on one execution: while it holds, its owner alone runs the
/// execution (a retry or resume being accepted, a run, a timed pause waited out). Each
/// grant carries a fence that grows with every new claim of the same execution, so a
/// backend shared by several daemons can refuse the writes of an owner whose lease
/// expired and was granted to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job: JobId,
    pub owner: String,
    pub fence: u64,
    pub expires: SystemTime,
}

/// What operators changed that every daemon sharing a store acts on: the flows they
/// deactivated (schedules disabled among them) and how many reloads were asked of all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorState {
    pub inactive: BTreeSet<String>,
    /// Grows by one with every [`Store::announce_reload`].
    pub reloads: u64,
    /// Timed pauses a resume was asked of through [`Store::ask_wake`], not yet woken:
    /// each execution with the due time of the pause asked of.
    pub wakes: Vec<(JobId, SystemTime)>,
}

/// What a request for a place among a throttled flow's running executions got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// It may start: the place is its own until [`Store::free_slot`] (or its lease ends).
    Granted,
    /// Not yet (the flow runs its most, its rate allows none now, or an older execution
    /// waits for a place too): ask again in about this long.
    Wait(Duration),
}

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub backend: Backend,
    /// The largest payload stored (`limits.max_payload`).
    pub max_payload: usize,
}

/// Which database keeps the executions.
#[derive(Clone, PartialEq, Eq)]
pub enum Backend {
    /// The embedded database in this directory, with a page cache of at most
    /// `cache_size` bytes.
    Redb { dir: PathBuf, cache_size: usize },
    /// A PostgreSQL database; `url` was read from the environment variable `url_env`.
    Postgres {
        url: String,
        url_env: String,
        pool_size: usize,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Redb { dir, cache_size } => f
                .debug_struct("Redb")
                .field("dir", dir)
                .field("cache_size", cache_size)
                .finish(),
            // The URL may hold a password: only where it came from is shown.
            Backend::Postgres { url_env, pool_size, .. } => f
                .debug_struct("Postgres")
                .field("url_env", url_env)
                .field("pool_size", pool_size)
                .finish_non_exhaustive(),
        }
    }
}

impl StoreConfig {
    /// The embedded store in `dir`.
    pub fn redb(dir: PathBuf, max_payload: usize) -> StoreConfig {
        StoreConfig {
            backend: Backend::Redb {
                dir,
                cache_size: crate::config::DEFAULT_REDB_CACHE as usize,
            },
            max_payload,
        }
    }

    /// Where `config`'s daemon keeps its executions.
    pub fn of(config: &crate::config::DaemonConfig) -> StoreConfig {
        let backend = match &config.store {
            crate::config::StoreSection::Redb { cache_size } => Backend::Redb {
                dir: config.server.data_dir.clone(),
                cache_size: *cache_size as usize,
            },
            crate::config::StoreSection::Postgres {
                url_env,
                url,
                pool_size,
                ..
            } => Backend::Postgres {
                url: url.clone(),
                url_env: url_env.clone(),
                pool_size: *pool_size as usize,
            },
        };
        StoreConfig {
            backend,
            max_payload: config.limits.max_payload as usize,
        }
    }
}

/// Opens the store `config` names (a PostgreSQL database is migrated first).
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, OpenError> {
    match &config.backend {
        Backend::Redb { dir, cache_size } => Ok(Arc::new(RedbStore::open_with_cache(
            dir,
            config.max_payload,
            *cache_size,
        )?)),
        Backend::Postgres { url, pool_size, .. } => Ok(Arc::new(
            PostgresStore::open(url, config.max_payload, *pool_size).await?,
        )),
    }
}

/// Where executions are recorded. Writes are durable when their future resolves; reads
/// see every write that resolved before they began. Several daemons may share a store
/// whose backend allows it; they coordinate through claims (see [`Lease`]).
pub trait Store: Send + Sync + 'static {
    /// Applies `writes` in one transaction: all durable when it resolves, or none.
    fn write(&self, writes: Vec<Write>) -> StoreFuture<'_, Result<(), WriteError>>;
    fn execution(&self, id: JobId) -> StoreFuture<'_, Result<Option<Execution>, ReadError>>;
    /// Every attempt of an execution, in order.
    fn attempts(&self, id: JobId) -> StoreFuture<'_, Result<Vec<Attempt>, ReadError>>;
    /// Every step row of every attempt, by attempt then index.
    fn steps(&self, id: JobId) -> StoreFuture<'_, Result<Vec<StepRow>, ReadError>>;
    fn payload(&self, key: PayloadKey) -> StoreFuture<'_, Result<Option<Value>, ReadError>>;
    /// Executions matching `q`, newest first, at most `q.limit`; a page is the same
    /// whatever is inserted meanwhile (job ids grow with time, the cursor is an id).
    fn list<'a>(&'a self, q: &'a ListQuery) -> StoreFuture<'a, Result<Vec<Execution>, ReadError>>;
    /// Executions matching `q` (its `before` and `limit` aside) per status, in the buckets
    /// `[edges[i], edges[i + 1])` of their creation time as their job ids hold it (in
    /// milliseconds, as [`Store::list`] filters by time): per bucket one count per status,
    /// in [`crate::status::ExecutionStatus::ALL`]'s order. Never more than the list would
    /// show; a backend should count off its indexes rather than read every row.
    fn histogram<'a>(
        &'a self,
        q: &'a ListQuery,
        edges: &'a [SystemTime],
    ) -> StoreFuture<'a, Result<Vec<[u64; 8]>, ReadError>>;
    /// The oldest execution kept.
    fn oldest(&self) -> StoreFuture<'_, Result<Option<Execution>, ReadError>>;
    /// Log records matching `q` with their keys, oldest first (or newest first).
    fn logs<'a>(&'a self, q: &'a LogQuery) -> StoreFuture<'a, Result<Vec<(LogKey, LogRow)>, ReadError>>;
    /// The flows an operator deactivated.
    fn inactive_flows(&self) -> StoreFuture<'_, Result<BTreeSet<String>, ReadError>>;
    /// When `flow`'s schedule last fired (its scheduled time).
    fn last_fire<'a>(&'a self, flow: &'a str) -> StoreFuture<'a, Result<Option<SystemTime>, ReadError>>;
    /// Executions not in a final status, oldest first: what recovery picks up.
    fn unfinished(&self) -> StoreFuture<'_, Result<Vec<Execution>, ReadError>>;
    /// Deletes a bounded batch of what is older than `cutoff`: up to `max_executions`
    /// executions in a final status (with their attempts, steps, payloads and log
    /// records), and log records of their own, none of an execution that is not final.
    /// Unfinished executions are kept however old: recovery still needs them. Says
    /// whether more may remain; each batch is its own transaction.
    fn prune(&self, cutoff: SystemTime, max_executions: usize) -> StoreFuture<'_, Result<Pruned, WriteError>>;
    /// Claims `job` for `owner` for `ttl`, unless another owner holds an unexpired claim.
    /// A claim `owner` already holds is renewed (same fence).
    fn claim<'a>(&'a self, job: JobId, owner: &'a str, ttl: Duration) -> StoreFuture<'a, Result<Lease, ClaimError>>;
    /// Gives a claim up before it expires.
    fn release(&self, lease: Lease) -> StoreFuture<'_, Result<(), ClaimError>>;
    /// What operators changed for every daemon sharing this store, read in one go (each
    /// daemon polls it); `None` for a backend one daemon has to itself.
    fn operator_state(&self) -> StoreFuture<'_, Result<Option<OperatorState>, ReadError>> {
        Box::pin(async { Ok(None) })
    }
    /// Asks every daemon sharing this store to reload its own config files; the new
    /// count of [`OperatorState::reloads`] (`None` for a backend one daemon has to itself).
    fn announce_reload(&self) -> StoreFuture<'_, Result<Option<u64>, WriteError>> {
        Box::pin(async { Ok(None) })
    }
    /// Asks whichever daemon sharing this store waits out `job`'s timed pause due at `due`
    /// to end it now (each reads [`OperatorState::wakes`] and wakes its own); false for
    /// a backend one daemon has to itself (nobody else waits it out).
    fn ask_wake(&self, _job: JobId, _due: SystemTime) -> StoreFuture<'_, Result<bool, WriteError>> {
        Box::pin(async { Ok(false) })
    }
    /// Forgets the wake requests of `jobs` (their pauses were woken).
    fn forget_wakes(&self, _jobs: Vec<JobId>) -> StoreFuture<'_, Result<(), WriteError>> {
        Box::pin(async { Ok(()) })
    }
    /// Extends each of `leases` (all `owner`'s) by `ttl` from now, while its fence is
    /// still the execution's (one with no claim yet, its acceptance not yet stored, is
    /// claimed as it will be); returns those renewed (the others were claimed again).
    fn renew<'a>(
        &'a self,
        owner: &'a str,
        leases: &'a [Lease],
        ttl: Duration,
    ) -> StoreFuture<'a, Result<Vec<Lease>, ClaimError>>;
    /// Claims for `owner` up to `limit` unfinished executions of `flows` that nobody
    /// holds (never claimed, released, or their lease expired), oldest first, each with
    /// a fence greater than any before; executions paused until resumed are left (no
    /// one runs them until a resume). Several callers at once never get the same one.
    fn take_over<'a>(
        &'a self,
        owner: &'a str,
        ttl: Duration,
        flows: &'a [String],
        limit: usize,
    ) -> StoreFuture<'a, Result<Vec<(Execution, Lease)>, ClaimError>>;
    /// A place for `lease`'s execution among `flow`'s running executions across every
    /// daemon sharing the store: granted while fewer than `max_concurrency` hold one,
    /// `interval` (one over the rate) has passed since the last grant, and no older
    /// execution of the flow asked in the last moments without getting one (so the
    /// oldest waiting goes first). A place held under a lease that ended is free again.
    /// A backend one process owns may grant at once: that process's dispatcher counts.
    fn take_slot<'a>(
        &'a self,
        lease: &'a Lease,
        flow: &'a str,
        max_concurrency: u32,
        interval: Option<Duration>,
    ) -> StoreFuture<'a, Result<Slot, ClaimError>>;
    /// Gives up the place taken under `lease` (its run ended or parked), or stops waiting
    /// for one; a place its execution's next holder took (after a take-over) stays.
    fn free_slot<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, Result<(), ClaimError>>;
    /// The backend's own figures in the Prometheus text format, for `/metrics`.
    fn render_metrics(&self, _out: &mut String) {}
}
