//! Durable executions: the [`Store`] the executor writes every transition to before it
//! acts on it and the API reads the execution log from, independent of any backend.
//!
//! - `model`: what is kept and asked: executions, attempts, steps, payloads, log records,
//!   the writes and the queries.
//! - `redb`: the embedded backend, the default.
//! - `retention`: pruning what is older than the retention, in bounded batches.

mod model;
pub mod redb;
pub mod retention;

pub use model::{
    Attempt, Execution, JobId, ListQuery, LogKey, LogQuery, LogRow, PayloadKey, PayloadKind, SHARED_ATTEMPT, StepRow,
    TryRow, Write,
};
pub use redb::{BATCH_BUCKETS, RedbStore, WriterStats};

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

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The embedded database's directory.
    pub dir: PathBuf,
    /// The largest payload stored (`limits.max_payload`).
    pub max_payload: usize,
}

impl StoreConfig {
    /// Where `config`'s daemon keeps its executions.
    pub fn of(config: &crate::config::DaemonConfig) -> StoreConfig {
        StoreConfig {
            dir: config.server.data_dir.clone(),
            max_payload: config.limits.max_payload as usize,
        }
    }
}

/// Opens the store `config` names.
pub fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, OpenError> {
    Ok(Arc::new(RedbStore::open(&config.dir, config.max_payload)?))
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
    /// The backend's own figures in the Prometheus text format, for `/metrics`.
    fn render_metrics(&self, _out: &mut String) {}
}
