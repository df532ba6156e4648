//! Durable executions: the [`Store`] the executor writes every transition to before it
//! acts on it, and its redb implementation. The executor sees only the trait, so another
//! backend (PostgreSQL, for several nodes) can be added without touching it.

mod model;
mod redb_store;
pub mod retention;
mod tables;

pub use model::{
    Attempt, Execution, JobId, ListQuery, LogKey, LogQuery, LogRow, PayloadKey, PayloadKind, StepRow, TryRow, Write,
};
pub use redb_store::{BATCH_BUCKETS, RedbStore, WriterStats};

use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {message}")]
    Open { path: String, message: String },
    #[error("database error: {0}")]
    Db(String),
    #[error("a {kind} payload of {size} bytes is over the {max}-byte limit (limits.max_payload)")]
    PayloadTooLarge {
        kind: &'static str,
        size: usize,
        max: usize,
    },
    #[error("the store's writer has stopped")]
    Closed,
    #[error("unreadable {table} record: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

pub type WriteFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;
pub type PruneFuture<'a> = Pin<Box<dyn Future<Output = Result<Pruned, StoreError>> + Send + 'a>>;

/// What one prune deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub executions: usize,
    /// Log records, whether they went with their execution or on their own.
    pub log_records: usize,
}

/// Where executions are recorded.
pub trait Store: Send + Sync + 'static {
    /// Applies `writes` in one transaction; resolves once they are durable.
    fn write(&self, writes: Vec<Write>) -> WriteFuture<'_>;
    fn execution(&self, id: JobId) -> Result<Option<Execution>, StoreError>;
    /// Every attempt of an execution, in order.
    fn attempts(&self, id: JobId) -> Result<Vec<Attempt>, StoreError>;
    /// Every step row of every attempt, by attempt then index.
    fn steps(&self, id: JobId) -> Result<Vec<StepRow>, StoreError>;
    fn payload(&self, key: PayloadKey) -> Result<Option<Value>, StoreError>;
    /// Executions matching `q`, newest first.
    fn list(&self, q: &ListQuery) -> Result<Vec<Execution>, StoreError>;
    /// Log records matching `q` with their keys, oldest first (or newest first).
    fn logs(&self, q: &LogQuery) -> Result<Vec<(LogKey, LogRow)>, StoreError>;
    /// The flows an operator deactivated.
    fn inactive_flows(&self) -> Result<std::collections::BTreeSet<String>, StoreError>;
    /// When `flow`'s schedule last fired (its scheduled time).
    fn last_fire(&self, flow: &str) -> Result<Option<std::time::SystemTime>, StoreError>;
    /// Executions not in a final status, oldest first: what recovery picks up.
    fn unfinished(&self) -> Result<Vec<Execution>, StoreError>;
    /// Deletes up to `max_executions` executions created before `cutoff` that are in a
    /// final status, with their steps, payloads and log records, then up to
    /// `16 * max_executions` other log records older than `cutoff` (but none of an
    /// execution that is not final), in one transaction. Unfinished executions are kept
    /// however old: recovery still needs them.
    fn prune(&self, cutoff: SystemTime, max_executions: usize) -> PruneFuture<'_>;
    /// Durable commits and write requests so far (their ratio is the group-commit batch).
    fn stats(&self) -> WriterStats;
}
