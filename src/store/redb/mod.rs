//! The embedded backend: one redb file under the data directory. One writer thread owns
//! every write transaction and commits in groups (see `writer`); readers open their own
//! read transactions through `Db::read`, which waits for the writer only to commit a batch
//! it already answered (see `query`); retention runs in bounded
//! batches through the writer (see `prune`). Claims live in this process's memory: one
//! daemon holds the file at a time (redb locks it).
//!
//! - `tables`: every table, typed, in one place.
//! - `rows`, `names`, `packing`: how rows, repeated strings and payloads lie on disk.
//! - `writer`, `query`, `prune`: writes, reads, retention.
//! - `export`: the whole store read out, for a copy into another backend.
//! - `space`: where the file's bytes go, per table.

mod encoded;
mod export;
mod names;
mod packing;
mod prune;
mod query;
mod rows;
mod space;
mod tables;
mod wal;
mod writer;

pub use export::{Export, Page, Part};
pub use space::{Space, TableSpace};
pub use writer::{BATCH_BUCKETS, WriterStats};

use crate::status::ExecutionStatus;
use crate::store::{
    Attempt, ClaimError, Execution, JobId, Lease, ListQuery, LogKey, LogQuery, LogRow, OpenError, PayloadKey, Pruned,
    ReadError, Slot, StepRow, Store, StoreFuture, Write, WriteError,
};
use encoded::encode;
use redb::{Database, ReadableDatabase, ReadableTable, TableError};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tables::Tables;
use tables::{BY_FLOW_STATUS, LEGACY_BY_FLOW};
use tokio::sync::oneshot;
use writer::{Counters, PruneRequest, Request, WriteRequest, writer_loop};

pub struct RedbStore {
    db: Arc<Db>,
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    max_payload: usize,
    counters: Arc<Counters>,
    path: PathBuf,
    /// Who holds which execution, until when.
    claims: Mutex<Claims>,
}

/// Claims of this process's executions. A released claim is forgotten (so they do not
/// pile up); fences come from one counter for all executions, so the next claim of an
/// execution still gets a greater fence than any before.
#[derive(Default)]
struct Claims {
    held: HashMap<JobId, Lease>,
    last_fence: u64,
}

impl Claims {
    fn next_fence(&mut self) -> u64 {
        self.last_fence += 1;
        self.last_fence
    }
}

/// The database with the names its rows refer to (read once at open, then kept in step
/// with what is written), and the payload bundle read last.
struct Db {
    file: Database,
    names: names::Names,
    shared: encoded::SharedConfigs,
    last_bundle: packing::LastBundle,
    unseen: writer::Unseen,
}

impl Db {
    /// A read transaction that sees every write answered so far. Readers take theirs
    /// here, not from the file: the writer answers a batch before it commits it.
    fn read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        self.unseen.wait();
        self.file.begin_read()
    }
}

fn write_err(e: impl std::fmt::Display) -> WriteError {
    WriteError::Backend(e.to_string())
}

fn read_err(e: impl std::fmt::Display) -> ReadError {
    ReadError::Backend(e.to_string())
}

/// An execution status as the status indexes key it. These codes are on disk: never
/// renumber them.
const fn status_code(s: ExecutionStatus) -> u8 {
    s.code()
}

/// Codes of the statuses that are not final: what recovery scans for.
const UNFINISHED: [u8; 4] = [
    status_code(ExecutionStatus::Pending),
    status_code(ExecutionStatus::Queued),
    status_code(ExecutionStatus::Running),
    status_code(ExecutionStatus::Paused),
];

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn decode<T: serde::de::DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, ReadError> {
    serde_json::from_slice(bytes).map_err(|e| ReadError::Corrupt {
        table,
        detail: e.to_string(),
    })
}

/// The part of an execution row the indexes and pruning need.
#[derive(Deserialize)]
struct ExecutionHead {
    flow: String,
    status: ExecutionStatus,
}

impl RedbStore {
    /// Opens (or creates) `dir/flowd.redb` with the default page cache
    /// ([`crate::config::DEFAULT_REDB_CACHE`]). `max_payload` caps every stored payload.
    pub fn open(dir: &Path, max_payload: usize) -> Result<RedbStore, OpenError> {
        RedbStore::open_with_cache(dir, max_payload, crate::config::DEFAULT_REDB_CACHE as usize)
    }

    /// [`RedbStore::open`] with a page cache of at most `cache_size` bytes: what the
    /// daemon's memory holds of the file beyond the pages the OS caches.
    pub fn open_with_cache(dir: &Path, max_payload: usize, cache_size: usize) -> Result<RedbStore, OpenError> {
        let open_err = |message: String| OpenError::Database {
            path: dir.display().to_string(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        let path = dir.join("flowd.redb");
        let wal_path = dir.join("flowd.wal");
        if !path.exists() {
            // A log without its database holds batches of a database that is gone: a new
            // one must not take them for its own.
            match std::fs::remove_file(&wal_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(open_err(e.to_string())),
                _ => {}
            }
            create_atomically(dir, &path).map_err(|e| open_err(e.to_string()))?;
        }
        let db = open_repairing(&path, cache_size).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => open_err(
                "it is in use: a running `flowd serve` or an offline command has it open; \
                 stop it, or ask the running daemon through its admin API instead"
                    .into(),
            ),
            e => open_err(e.to_string()),
        })?;
        let names = create_tables(&db).map_err(|e| open_err(e.to_string()))?;
        let wal = open_wal(&db, &names, &wal_path).map_err(open_err)?;
        let db = Arc::new(Db {
            file: db,
            names,
            shared: Default::default(),
            last_bundle: Default::default(),
            unseen: Default::default(),
        });
        let (tx, rx) = mpsc::channel::<Request>();
        db.unseen.hang_doorbell(tx.clone());
        let counters = Arc::new(Counters::default());
        let writer = {
            let (db, counters) = (db.clone(), counters.clone());
            std::thread::Builder::new()
                .name("flowd-store-writer".into())
                .spawn(move || writer_loop(&db, wal, rx, &counters, writer::CHECKPOINT_AFTER))
                .map_err(|e| open_err(e.to_string()))?
        };
        Ok(RedbStore {
            db,
            tx: Some(tx),
            writer: Some(writer),
            max_payload,
            counters,
            path,
            claims: Mutex::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Grants the claims of a batch and checks its fences, before it is sent to the
    /// writer: one process owns the database, so its claims live in memory.
    fn check_claims(&self, writes: &[Write]) -> Result<(), WriteError> {
        let mut claims = crate::sync::Lock::locked(&self.claims);
        for w in writes {
            // A new execution: no claim of it can be older than its fence 1.
            if let Write::Claim { job, owner, ttl } = w {
                claims.last_fence = claims.last_fence.max(1);
                claims.held.entry(*job).or_insert_with(|| Lease {
                    job: *job,
                    owner: owner.clone(),
                    fence: 1,
                    expires: crate::time_format::after(SystemTime::now(), *ttl),
                });
            }
        }
        for w in writes {
            if let Write::Fence { job, owner, fence } = w {
                let held = claims
                    .held
                    .get(job)
                    .is_some_and(|l| &l.owner == owner && l.fence == *fence);
                if !held {
                    return Err(WriteError::Fenced {
                        job: *job,
                        owner: owner.clone(),
                        fence: *fence,
                    });
                }
            }
        }
        Ok(())
    }

    /// Durable commits and write requests so far (their ratio is the group-commit batch).
    pub fn writer_stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            batches: std::array::from_fn(|i| self.counters.batches[i].load(Ordering::Relaxed)),
        }
    }

    /// Each table's entries, bytes and pages, and the file's allocated and total bytes.
    pub fn space(&self) -> Result<Space, ReadError> {
        let file_bytes = std::fs::metadata(&self.path).map_err(read_err)?.len();
        space::measure(&self.db, file_bytes)
    }

    /// Hands `request` to the writer thread.
    fn send(&self, request: Request) -> Result<(), WriteError> {
        self.tx
            .as_ref()
            .ok_or(WriteError::Closed)?
            .send(request)
            .map_err(|_| WriteError::Closed)
    }

    /// A read answered now, on the caller's thread: a point lookup costs microseconds.
    fn now<T: Send + 'static>(&self, read: impl FnOnce(&Db) -> T) -> StoreFuture<'_, T> {
        Box::pin(std::future::ready(read(&self.db)))
    }

    /// A read that may scan many records, on the blocking pool, so it never holds a
    /// runtime thread.
    fn scan<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Db) -> Result<T, ReadError> + Send + 'static,
    ) -> StoreFuture<'_, Result<T, ReadError>> {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || read(&db))
                .await
                .map_err(|e| ReadError::Backend(format!("the read task failed: {e}")))?
        })
    }
}

/// Creates every table, so readers never meet a missing one, and reads the names.
///
/// A database written before `BY_FLOW_STATUS` existed lacks it: the index is rebuilt
/// from the executions here, once, in the transaction that creates it (so a crash midway
/// leaves no partial index), rather than having readers fall back to a slower scan.
fn create_tables(db: &Database) -> Result<names::Names, WriteError> {
    let missing = match db.begin_read().map_err(write_err)?.open_table(BY_FLOW_STATUS) {
        Ok(_) => false,
        Err(TableError::TableDoesNotExist(_)) => true,
        Err(e) => return Err(write_err(e)),
    };
    let txn = db.begin_write().map_err(write_err)?;
    // `BY_FLOW_STATUS` holds what this older index did.
    txn.delete_table(LEGACY_BY_FLOW).map_err(write_err)?;
    let names = {
        let mut tables = Tables::new(&txn);
        let mut stored = Vec::new();
        for item in tables.names()?.iter().map_err(write_err)? {
            let (id, value) = item.map_err(write_err)?;
            stored.push((id.value(), value.value().to_vec()));
        }
        let names = names::Names::loaded(stored).map_err(|e| WriteError::Backend(e.to_string()))?;
        // Readers expect every table to exist.
        tables.open_all()?;
        drop(tables);
        if missing {
            let executions = txn.open_table(tables::EXECUTIONS).map_err(write_err)?;
            let mut by_flow_status = txn.open_table(tables::BY_FLOW_STATUS).map_err(write_err)?;
            for item in executions.iter().map_err(write_err)? {
                let (id, row) = item.map_err(write_err)?;
                let head = rows::head(&names, row.value()).map_err(|e| WriteError::Backend(e.to_string()))?;
                by_flow_status
                    .insert((head.flow.as_str(), status_code(head.status), id.value()), ())
                    .map_err(write_err)?;
            }
        }
        names
    };
    txn.commit().map_err(write_err)?;
    Ok(names)
}

/// Opens the write-ahead log at `path` and applies the batches it holds that the
/// database does not (those of a process that stopped between checkpoints).
fn open_wal(db: &Database, names: &names::Names, path: &Path) -> Result<wal::Wal, String> {
    let applied = db
        .begin_read()
        .map_err(|e| e.to_string())?
        .open_table(tables::META)
        .map_err(|e| e.to_string())?
        .get(tables::WAL_APPLIED)
        .map_err(|e| e.to_string())?
        .map_or(0, |v| v.value());
    let (wal, records) = wal::Wal::open(path, applied).map_err(|e| e.to_string())?;
    if let (Some(first), Some(last)) = (records.first(), records.last()) {
        writer::replay(db, names, &records).map_err(|e| format!("{}: {e}", path.display()))?;
        tracing::info!(
            path = %path.display(),
            batches = records.len(),
            "applied batches {}..={} of the write-ahead log that the database did not hold yet",
            first.seq,
            last.seq
        );
    }
    Ok(wal)
}

/// Opens the database at `path`. One not closed cleanly (flowd was killed, the machine
/// stopped) is checked and repaired first, which takes time in proportion to its size: the
/// log says so, and how far it got, rather than leaving the start-up silent.
fn open_repairing(path: &Path, cache_size: usize) -> Result<Database, redb::DatabaseError> {
    let started = std::time::Instant::now();
    let shown = Arc::new(AtomicU64::new(0));
    let seen = shown.clone();
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let where_ = path.display().to_string();
    let db = redb::Builder::new()
        .set_cache_size(cache_size)
        .set_repair_callback(move |session| {
            // Percent done, plus one so that 0 means "not started".
            let done = (session.progress() * 100.0) as u64 + 1;
            let last = seen.load(Ordering::Relaxed);
            if last == 0 {
                tracing::warn!(path = %where_, size = %crate::config::units::format_bytes(size), "the database was not closed cleanly (flowd was killed or the machine stopped): checking and repairing it before anything runs");
            }
            if last == 0 || done >= last + 10 {
                seen.store(done, Ordering::Relaxed);
                tracing::info!("repairing the database: {}% checked", done - 1);
            }
        })
        .create(path)?;
    if shown.load(Ordering::Relaxed) > 0 {
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "the database is repaired; nothing committed was lost"
        );
    }
    Ok(db)
}

/// A new database is built under a temporary name and renamed into place, so a crash
/// while it is being created leaves no half-written file where the database belongs
/// (found by the SIGKILL test: redb cannot open a file killed before its header is out).
fn create_atomically(dir: &Path, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = dir.join("flowd.redb.creating");
    let _ = std::fs::remove_file(&tmp);
    {
        let db = Database::create(&tmp)?;
        create_tables(&db)?;
    }
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it commits what is queued.
        self.db.unseen.take_doorbell();
        self.tx.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Store for RedbStore {
    fn write(&self, writes: Vec<Write>) -> StoreFuture<'_, Result<(), WriteError>> {
        Box::pin(async move {
            self.check_claims(&writes)?;
            let writes = encode(writes, self.max_payload, &self.db.names, &self.db.shared)?;
            let (done, wait) = oneshot::channel();
            self.send(Request::Write(WriteRequest { writes, done }))?;
            wait.await.map_err(|_| WriteError::Closed)?
        })
    }

    fn prune(&self, cutoff: SystemTime, max_executions: usize) -> StoreFuture<'_, Result<Pruned, WriteError>> {
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            self.send(Request::Prune(PruneRequest {
                cutoff,
                max_executions,
                done,
            }))?;
            wait.await.map_err(|_| WriteError::Closed)?
        })
    }

    fn execution(&self, id: JobId) -> StoreFuture<'_, Result<Option<Execution>, ReadError>> {
        self.now(move |db| query::execution(db, id))
    }

    fn attempts(&self, id: JobId) -> StoreFuture<'_, Result<Vec<Attempt>, ReadError>> {
        self.now(move |db| query::attempts(db, id))
    }

    fn steps(&self, id: JobId) -> StoreFuture<'_, Result<Vec<StepRow>, ReadError>> {
        self.now(move |db| query::steps(db, id))
    }

    fn payload(&self, key: PayloadKey) -> StoreFuture<'_, Result<Option<Value>, ReadError>> {
        self.now(move |db| query::payload(db, key))
    }

    fn list<'a>(&'a self, q: &'a ListQuery) -> StoreFuture<'a, Result<Vec<Execution>, ReadError>> {
        let q = q.clone();
        self.scan(move |db| query::list(db, &q))
    }

    fn histogram<'a>(
        &'a self,
        q: &'a ListQuery,
        edges: &'a [SystemTime],
    ) -> StoreFuture<'a, Result<Vec<[u64; 8]>, ReadError>> {
        let (q, edges) = (q.clone(), edges.to_vec());
        self.scan(move |db| query::histogram(db, &q, &edges))
    }

    fn oldest(&self) -> StoreFuture<'_, Result<Option<Execution>, ReadError>> {
        self.now(query::oldest)
    }

    fn logs<'a>(&'a self, q: &'a LogQuery) -> StoreFuture<'a, Result<Vec<(LogKey, LogRow)>, ReadError>> {
        let q = q.clone();
        self.scan(move |db| query::logs(db, &q))
    }

    fn inactive_flows(&self) -> StoreFuture<'_, Result<BTreeSet<String>, ReadError>> {
        self.now(query::inactive_flows)
    }

    fn last_fire<'a>(&'a self, flow: &'a str) -> StoreFuture<'a, Result<Option<SystemTime>, ReadError>> {
        self.now(move |db| query::last_fire(db, flow))
    }

    fn unfinished(&self) -> StoreFuture<'_, Result<Vec<Execution>, ReadError>> {
        self.scan(query::unfinished)
    }

    fn claim<'a>(&'a self, job: JobId, owner: &'a str, ttl: Duration) -> StoreFuture<'a, Result<Lease, ClaimError>> {
        let now = SystemTime::now();
        let expires = crate::time_format::after(now, ttl);
        let mut claims = crate::sync::Lock::locked(&self.claims);
        let fence = match claims.held.get(&job) {
            Some(held) if held.owner != owner && held.expires > now => Err(ClaimError::Held {
                job,
                owner: held.owner.clone(),
                until: held.expires,
            }),
            Some(held) if held.owner == owner && held.expires > now => Ok(held.fence),
            _ => Ok(claims.next_fence()),
        };
        let result = fence.map(|fence| {
            let lease = Lease {
                job,
                owner: owner.to_string(),
                fence,
                expires,
            };
            claims.held.insert(job, lease.clone());
            lease
        });
        Box::pin(std::future::ready(result))
    }

    fn release(&self, lease: Lease) -> StoreFuture<'_, Result<(), ClaimError>> {
        let mut claims = crate::sync::Lock::locked(&self.claims);
        let result = match claims.held.get(&lease.job) {
            Some(held) if held.owner == lease.owner && held.fence == lease.fence => {
                claims.held.remove(&lease.job);
                Ok(())
            }
            _ => Err(ClaimError::Lost(lease.job)),
        };
        Box::pin(std::future::ready(result))
    }

    fn renew<'a>(
        &'a self,
        owner: &'a str,
        leases: &'a [Lease],
        ttl: Duration,
    ) -> StoreFuture<'a, Result<Vec<Lease>, ClaimError>> {
        let expires = crate::time_format::after(SystemTime::now(), ttl);
        let mut claims = crate::sync::Lock::locked(&self.claims);
        let renewed = leases
            .iter()
            .filter_map(|lease| {
                // One not there yet (its acceptance is on its way) is held as it will be.
                let held = claims.held.entry(lease.job).or_insert_with(|| lease.clone());
                (held.owner == owner && held.fence == lease.fence).then(|| {
                    held.expires = expires;
                    held.clone()
                })
            })
            .collect();
        Box::pin(std::future::ready(Ok(renewed)))
    }

    fn take_over<'a>(
        &'a self,
        owner: &'a str,
        ttl: Duration,
        flows: &'a [String],
        limit: usize,
    ) -> StoreFuture<'a, Result<Vec<(Execution, Lease)>, ClaimError>> {
        Box::pin(async move {
            let unfinished = self
                .unfinished()
                .await
                .map_err(|e| ClaimError::Backend(e.to_string()))?;
            let now = SystemTime::now();
            let mut claims = crate::sync::Lock::locked(&self.claims);
            let mut taken = Vec::new();
            for exec in unfinished {
                if taken.len() >= limit {
                    break;
                }
                let until_resumed = exec.status == ExecutionStatus::Paused && exec.resume_at.is_none();
                if until_resumed || !flows.contains(&exec.flow) {
                    continue;
                }
                if claims.held.get(&exec.job_id).is_some_and(|held| held.expires > now) {
                    continue;
                }
                let fence = claims.next_fence();
                let lease = Lease {
                    job: exec.job_id,
                    owner: owner.to_string(),
                    fence,
                    expires: crate::time_format::after(now, ttl),
                };
                claims.held.insert(exec.job_id, lease.clone());
                taken.push((exec, lease));
            }
            Ok(taken)
        })
    }

    /// One process owns the database: its dispatcher's own counts are the limits.
    fn take_slot<'a>(
        &'a self,
        _lease: &'a Lease,
        _flow: &'a str,
        _max_concurrency: u32,
        _interval: Option<Duration>,
    ) -> StoreFuture<'a, Result<Slot, ClaimError>> {
        Box::pin(std::future::ready(Ok(Slot::Granted)))
    }

    fn free_slot<'a>(&'a self, _lease: &'a Lease) -> StoreFuture<'a, Result<(), ClaimError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn render_metrics(&self, out: &mut String) {
        let stats = self.writer_stats();
        out.push_str("# HELP flowd_store_commits_total Durable commits of the store's writer.\n");
        out.push_str("# TYPE flowd_store_commits_total counter\n");
        let _ = writeln!(out, "flowd_store_commits_total {}", stats.commits);
        out.push_str(
            "# HELP flowd_store_write_requests_total Write requests committed; per commit, the group-commit batch size.\n",
        );
        out.push_str("# TYPE flowd_store_write_requests_total counter\n");
        let _ = writeln!(out, "flowd_store_write_requests_total {}", stats.requests);
        out.push_str(
            "# HELP flowd_store_transactions_total Commits of the database's write transaction; each takes the durable commits since the one before, until a reader asks for them or a checkpoint.\n",
        );
        out.push_str("# TYPE flowd_store_transactions_total counter\n");
        let _ = writeln!(out, "flowd_store_transactions_total {}", stats.transactions);
        out.push_str("# HELP flowd_store_commit_batch_size Write requests per durable commit (group commit).\n");
        out.push_str("# TYPE flowd_store_commit_batch_size histogram\n");
        let mut cumulative = 0;
        for (i, n) in stats.batches.iter().enumerate() {
            cumulative += n;
            let le = BATCH_BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "flowd_store_commit_batch_size_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "flowd_store_commit_batch_size_sum {}", stats.requests);
        let _ = writeln!(out, "flowd_store_commit_batch_size_count {}", stats.commits);
    }
}

#[cfg(test)]
mod tests {
    use super::encoded::json;
    use super::query::{escaped, holds};
    use super::tables::{BY_STATUS, EXECUTIONS};
    use super::*;
    use crate::status::StepStatus;
    use crate::store::PayloadKind;
    use std::collections::BTreeSet;
    use std::time::Duration;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    /// Appends one batch that stores name `id` to the log in `dir`.
    fn logged_name(dir: &Path, seq: u64, id: u32, value: &[u8]) {
        let (mut wal, _) = wal::Wal::open(&dir.join("flowd.wal"), seq - 1).unwrap();
        let mut body = Vec::new();
        wal::encode(&mut body, &encoded::Encoded::Name((id, value.to_vec().into())));
        wal.append(seq, &body).unwrap();
    }

    #[test]
    fn batches_only_the_log_holds_are_applied_at_open_and_a_log_without_its_database_is_dropped() {
        // A log beside no database: a new database does not take its batches.
        let dir = tempfile::tempdir().unwrap();
        logged_name(dir.path(), 1, 0, b"ghost");
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.db.names.len(), 0);
        drop(store);
        // A clean close leaves the log empty.
        assert_eq!(std::fs::metadata(dir.path().join("flowd.wal")).unwrap().len(), 0);

        // The database holds no batch yet; the log holds batch 1 (a killed process).
        logged_name(dir.path(), 1, 0, b"kept");
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(&*store.db.names.value("test", 0).unwrap(), b"kept");
        drop(store);
        // Applied once: it is in the database, and its number is the database's.
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.db.names.len(), 1);
        let applied = store
            .db
            .read()
            .unwrap()
            .open_table(tables::META)
            .unwrap()
            .get(tables::WAL_APPLIED)
            .unwrap()
            .map(|v| v.value());
        assert_eq!(applied, Some(1));
        drop(store);
        // A log from another copy of the database (its batches start past this one's).
        logged_name(dir.path(), 5, 1, b"other");
        let err = RedbStore::open(dir.path(), 1 << 20).err().unwrap().to_string();
        assert!(err.contains("flowd.wal") && err.contains("start at batch 5"), "{err}");
        assert!(err.contains("holds batches up to 1 only"), "{err}");
    }

    fn wal_applied(store: &RedbStore) -> Option<u64> {
        let txn = store.db.read().unwrap();
        let meta = txn.open_table(tables::META).unwrap();
        meta.get(tables::WAL_APPLIED).unwrap().map(|v| v.value())
    }

    #[test]
    fn a_write_is_read_back_as_soon_as_it_is_answered_while_others_keep_the_writer_busy() {
        // Writers that only write keep batches coming, so the writer keeps its transaction
        // open across them; the reader reads each of its writes right after the answer.
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        let base = SystemTime::now() - DAY;
        let at = |thread: u64, i: u64| base + Duration::from_micros(thread * 1_000_000 + i);
        std::thread::scope(|s| {
            for thread in 1..=3 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..300 {
                        let t = at(thread, i);
                        block(store.write(vec![Write::Execution(execution(
                            JobId::at(t),
                            "w",
                            ExecutionStatus::Pending,
                            t,
                        ))]))
                        .unwrap();
                    }
                });
            }
            for i in 0..300 {
                let t = at(0, i);
                let job = JobId::at(t);
                block(store.write(vec![Write::Execution(execution(job, "r", ExecutionStatus::Running, t))])).unwrap();
                let row = block(store.execution(job)).unwrap();
                assert_eq!(row.map(|e| e.status), Some(ExecutionStatus::Running), "write {i}");
            }
        });
        let stats = store.writer_stats();
        assert!(stats.transactions <= stats.commits, "{stats:?}");
        assert_eq!(block(store.list(&ListQuery::default())).unwrap().len(), 1200);
    }

    #[test]
    fn only_durable_commits_say_which_logged_batch_the_database_holds_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        let before = wal_applied(&store).unwrap_or(0);
        // Batches committed in memory (the log makes them durable) do not write the number
        // (a crash loses them from the database, and the log brings them back), unless a
        // checkpoint came due with one.
        let now = SystemTime::now();
        let old = now - 100 * DAY;
        block(store.write(vec![Write::Execution(execution(
            JobId::at(old),
            "a",
            ExecutionStatus::Success,
            old,
        ))]))
        .unwrap();
        block(store.write(vec![Write::Execution(execution(
            JobId::new(),
            "a",
            ExecutionStatus::Pending,
            now,
        ))]))
        .unwrap();
        // A prune commits durably, taking over both: its number is the last of them, so
        // the log that starts over after it follows on at open.
        let pruned = block(store.prune(now - 50 * DAY, 10)).unwrap();
        assert_eq!(pruned.executions, 1);
        assert_eq!(wal_applied(&store), Some(before + 2));
        drop(store);
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(block(store.list(&ListQuery::default())).unwrap().len(), 1);
    }

    pub(super) fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    pub(super) fn execution(job_id: JobId, flow: &str, status: ExecutionStatus, created_at: SystemTime) -> Execution {
        Execution {
            job_id,
            project: "p".into(),
            flow: flow.into(),
            flow_version: "v1".into(),
            trigger_kind: "manual".into(),
            trigger_fingerprint: "f".into(),
            environment: "test".into(),
            status,
            attempt: 1,
            created_at,
            started_at: None,
            finished_at: None,
            steps_total: 1,
            steps_executed: 0,
            resume_at: None,
        }
    }

    /// Executions of flows a, b, c: half 100 days old, half an hour old, all pending.
    fn seed(store: &RedbStore) -> Vec<Execution> {
        let now = SystemTime::now();
        let rows: Vec<Execution> = (0..60u32)
            .map(|i| {
                let age = if i < 30 { 100 * DAY } else { Duration::from_secs(1800) };
                let t = now - age + Duration::from_secs(u64::from(i));
                let flow = ["a", "b", "c"][i as usize % 3];
                execution(JobId::at(t), flow, ExecutionStatus::Pending, t)
            })
            .collect();
        block(store.write(rows.iter().cloned().map(Write::Execution).collect())).expect("a write");
        rows
    }

    /// Moves every execution on to a status of its own: some stay unfinished.
    fn finish(store: &RedbStore, rows: &mut [Execution]) {
        const NEXT: [ExecutionStatus; 5] = [
            ExecutionStatus::Success,
            ExecutionStatus::Failed,
            ExecutionStatus::PartiallyExecuted,
            ExecutionStatus::Running,
            ExecutionStatus::Failed,
        ];
        for (i, e) in rows.iter_mut().enumerate() {
            e.status = NEXT[(i / 3) % NEXT.len()];
        }
        block(store.write(rows.iter().cloned().map(Write::Execution).collect())).expect("a write");
    }

    /// Every index holds exactly the entries the execution rows call for.
    fn assert_indexes_agree(db: &Db) {
        let r = db.read().unwrap();
        let (mut status, mut both) = (BTreeSet::new(), BTreeSet::new());
        for item in r.open_table(EXECUTIONS).unwrap().iter().unwrap() {
            let (id, v) = item.unwrap();
            let head = rows::head(&db.names, v.value()).unwrap();
            let (id, code) = (id.value(), status_code(head.status));
            status.insert((code, id));
            both.insert((head.flow, code, id));
        }
        let keys = |t: redb::ReadOnlyTable<_, ()>| -> BTreeSet<_> {
            t.iter().unwrap().map(|i| i.unwrap().0.value()).collect()
        };
        let by_flow_status: BTreeSet<(String, u8, u128)> = r
            .open_table(BY_FLOW_STATUS)
            .unwrap()
            .iter()
            .unwrap()
            .map(|i| {
                let (k, _) = i.unwrap();
                let (f, s, id) = k.value();
                (f.to_string(), s, id)
            })
            .collect();
        // The older flow index is gone (`BY_FLOW_STATUS` holds it).
        assert!(matches!(
            r.open_table(LEGACY_BY_FLOW),
            Err(TableError::TableDoesNotExist(_))
        ));
        assert_eq!(keys(r.open_table(BY_STATUS).unwrap()), status, "BY_STATUS");
        assert_eq!(by_flow_status, both, "BY_FLOW_STATUS");
    }

    /// What `q` must answer, worked out from every row.
    fn expected(store: &RedbStore, q: &ListQuery) -> Vec<JobId> {
        let all = block(store.list(&ListQuery::default())).unwrap();
        let rows = all
            .into_iter()
            .filter(|e| q.keeps(e) && q.before.is_none_or(|b| e.job_id < b))
            .map(|e| e.job_id);
        rows.take(if q.limit == 0 { usize::MAX } else { q.limit }).collect()
    }

    fn assert_lists_agree(store: &RedbStore) {
        use ExecutionStatus::{Failed, PartiallyExecuted, Running, Success};
        let mut checked = 0;
        for flow in [None, Some("a"), Some("b"), Some("zz")] {
            for statuses in [
                vec![],
                vec![Failed],
                vec![Success, Failed],
                vec![Running, PartiallyExecuted, Failed],
            ] {
                for limit in [0, 3] {
                    let mut q = ListQuery {
                        flow: flow.map(str::to_string),
                        statuses: statuses.clone(),
                        limit,
                        ..ListQuery::default()
                    };
                    let got: Vec<JobId> = block(store.list(&q)).unwrap().iter().map(|e| e.job_id).collect();
                    assert_eq!(got, expected(store, &q), "{q:?}");
                    checked += got.len();
                    // The next page starts below the last id of this one.
                    if let Some(last) = got.last() {
                        q.before = Some(*last);
                        let next: Vec<JobId> = block(store.list(&q)).unwrap().iter().map(|e| e.job_id).collect();
                        assert_eq!(next, expected(store, &q), "{q:?}");
                    }
                }
            }
        }
        assert!(checked > 0);
    }

    #[test]
    fn the_flow_status_index_follows_status_changes_and_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        let mut rows = seed(&store);
        assert_indexes_agree(&store.db);
        assert_lists_agree(&store);

        finish(&store, &mut rows);
        assert_indexes_agree(&store.db);
        assert_lists_agree(&store);
        // A status that stays the same re-indexes nothing and loses nothing.
        block(store.write(vec![Write::Execution(rows[0].clone())])).unwrap();
        assert_indexes_agree(&store.db);

        let old_final = rows[..30].iter().filter(|e| e.status.is_final()).count();
        let pruned = block(store.prune(SystemTime::now() - 50 * DAY, 1000)).unwrap();
        assert_eq!(pruned.executions, old_final);
        assert!(old_final > 0 && old_final < 30, "some old executions stay unfinished");
        assert_indexes_agree(&store.db);
        assert_lists_agree(&store);
    }

    #[test]
    fn a_message_substring_is_found_in_the_stored_bytes_however_it_is_escaped() {
        for message in [
            "plain",
            "say \"hi\"\tthen\\leave\n",
            "caf\u{e9} \u{1}ctrl",
            "日本語のログ",
        ] {
            let row = LogRow {
                time: SystemTime::now(),
                level: crate::plugin::Level::Info,
                job_id: JobId::new(),
                project: "p".into(),
                flow: "f".into(),
                flow_version: "v".into(),
                attempt: 1,
                step: None,
                connector: None,
                action: "run".into(),
                category: "c".into(),
                environment: "e".into(),
                message: message.into(),
            };
            let bytes = json(&row);
            let chars: Vec<char> = message.chars().collect();
            for i in 0..chars.len() {
                for j in i..=chars.len() {
                    let part: String = chars[i..j].iter().collect();
                    assert!(holds(&bytes, &escaped(&part)), "{part:?} of {message:?}");
                }
            }
        }
        assert!(!holds(&json(&"timed out"), &escaped("timed  out")));
    }

    /// A store as flowd wrote it before names: the rows of even executions JSON text (as
    /// before the binary rows), of odd ones binary format 1 (strings inline), written
    /// straight into the tables (indexes included), for `n` executions of flow `old`.
    fn write_json_store(dir: &Path, n: u32) -> Vec<(Execution, StepRow, LogRow)> {
        let db = Database::create(dir.join("flowd.redb")).unwrap();
        create_tables(&db).unwrap();
        // Whole milliseconds, as records keep times.
        let now = UNIX_EPOCH + Duration::from_millis(nanos(SystemTime::now()) / 1_000_000);
        let rows: Vec<_> = (0..n)
            .map(|i| {
                let t = now - 100 * DAY + Duration::from_secs(u64::from(i));
                let mut e = execution(JobId::at(t), "old", ExecutionStatus::Success, t);
                e.finished_at = Some(t + Duration::from_millis(3));
                let step = StepRow {
                    attempt: 1,
                    index: 0,
                    name: "s".into(),
                    kind: "connector".into(),
                    status: StepStatus::Success,
                    connector: Some(crate::status::ConnectorUse {
                        name: "transform".into(),
                        sha256: "0f".repeat(32),
                    }),
                    started_at: Some(t),
                    finished_at: Some(t),
                    duration: 0.001,
                    fuel_used: 12,
                    error: None,
                    note: None,
                    tries: Vec::new(),
                    reused_from: None,
                };
                let log = LogRow {
                    time: t,
                    level: crate::plugin::Level::Error,
                    job_id: e.job_id,
                    project: "p".into(),
                    flow: "old".into(),
                    flow_version: "v1".into(),
                    attempt: 1,
                    step: Some("s".into()),
                    connector: None,
                    action: "run".into(),
                    category: "c".into(),
                    environment: "test".into(),
                    message: format!("old \"record\" {i}"),
                };
                (e, step, log)
            })
            .collect();
        let txn = db.begin_write().unwrap();
        {
            let mut t = Tables::new(&txn);
            let mut by_flow = txn.open_table(LEGACY_BY_FLOW).unwrap();
            for (i, (e, step, log)) in rows.iter().enumerate() {
                by_flow.insert(("old", e.job_id.0), ()).unwrap();
                let id = e.job_id.0;
                let code = status_code(e.status);
                let form = |j: Vec<u8>, b: Vec<u8>| if i % 2 == 0 { j } else { b };
                t.executions()
                    .unwrap()
                    .insert(id, form(json(e), rows::inline(e)).as_slice())
                    .unwrap();
                t.by_status().unwrap().insert((code, id), ()).unwrap();
                t.by_flow_status().unwrap().insert(("old", code, id), ()).unwrap();
                let attempt = Attempt {
                    attempt: 1,
                    status: e.status,
                    started_at: Some(e.created_at),
                    finished_at: e.finished_at,
                    from_step: 0,
                };
                t.attempts()
                    .unwrap()
                    .insert((id, 1), form(json(&attempt), rows::inline(&attempt)).as_slice())
                    .unwrap();
                t.steps()
                    .unwrap()
                    .insert((id, 1, 0), form(json(step), rows::inline(step)).as_slice())
                    .unwrap();
                let ns = nanos(log.time);
                t.logs()
                    .unwrap()
                    .insert((ns, id, i as u32), form(json(log), rows::inline(log)).as_slice())
                    .unwrap();
                t.logs_by_job().unwrap().insert((id, ns, i as u32), ()).unwrap();
            }
        }
        txn.commit().unwrap();
        rows
    }

    #[test]
    fn names_numbered_for_a_refused_write_leave_the_store_readable_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        // Whole milliseconds, as times are stored.
        let t = UNIX_EPOCH + Duration::from_millis(nanos(SystemTime::now()) / 1_000_000);
        let fire = |at| Write::Fire { flow: "b".into(), at };
        let version = |v: &str| Execution {
            flow_version: v.into(),
            ..execution(JobId::new(), "b", ExecutionStatus::Pending, t)
        };
        let stored = {
            let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
            block(store.write(vec![fire(t), Write::Execution(version("v1"))])).unwrap();
            // The same fire time again, from new flow versions: refused, their names
            // numbered for them but not stored.
            for v in ["v2", "v3"] {
                assert!(matches!(
                    block(store.write(vec![fire(t), Write::Execution(version(v))])),
                    Err(WriteError::AlreadyFired { .. })
                ));
            }
            // "v2" is needed again and stored with this write; "v3" never is (a gap).
            let stored = [version("v2"), version("v4")];
            block(store.write(stored.iter().cloned().map(Write::Execution).collect())).unwrap();
            stored
        };
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        for e in &stored {
            assert_eq!(block(store.execution(e.job_id)).unwrap().as_ref(), Some(e));
        }
        // New names are numbered past the gap, and read back after another reopen.
        let newer = version("v5");
        block(store.write(vec![Write::Execution(newer.clone())])).unwrap();
        drop(store);
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(block(store.execution(newer.job_id)).unwrap(), Some(newer));
    }

    #[test]
    fn log_categories_a_connector_chooses_leave_the_names_table_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        // Whole milliseconds, as records keep times.
        let now = UNIX_EPOCH + Duration::from_millis(nanos(SystemTime::now()) / 1_000_000);
        let record = |at: SystemTime, job_id: JobId, i: u32, category: String| LogRow {
            time: at + Duration::from_millis(u64::from(i)),
            level: crate::plugin::Level::Info,
            job_id,
            project: "p".into(),
            flow: "f".into(),
            flow_version: "v1".into(),
            attempt: 1,
            step: Some("s".into()),
            connector: Some("log".into()),
            action: "run".into(),
            category,
            environment: "test".into(),
            message: format!("record {i}"),
        };
        // Records as older flowd versions wrote them: JSON text, format 1 (strings inline)
        // and format 2 (the category numbered with the flow's strings).
        let old_job = JobId::at(now - DAY);
        let old: Vec<LogRow> = (0..3)
            .map(|i| record(now - DAY, old_job, i, format!("old-{i}")))
            .collect();
        {
            let db = Database::create(dir.path().join("flowd.redb")).unwrap();
            let names = create_tables(&db).unwrap();
            let mut pending = Vec::new();
            let forms = [
                json(&old[0]),
                rows::inline(&old[1]),
                rows::log_format_2(&old[2], &names, &mut pending),
            ];
            let txn = db.begin_write().unwrap();
            {
                let mut t = Tables::new(&txn);
                for (id, value) in pending {
                    t.names().unwrap().insert(id, &*value).unwrap();
                }
                for (seq, (row, bytes)) in old.iter().zip(forms).enumerate() {
                    let (ns, seq) = (nanos(row.time), seq as u32);
                    t.logs()
                        .unwrap()
                        .insert((ns, old_job.0, seq), bytes.as_slice())
                        .unwrap();
                    t.logs_by_job().unwrap().insert((old_job.0, ns, seq), ()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let names = |store: &RedbStore| {
            let space = store.space().unwrap();
            let on_disk = space.tables.iter().find(|t| t.name == "names").map_or(0, |t| t.entries);
            (on_disk, store.db.names.len() as u64)
        };
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(names(&store), (1, 1), "the format 2 record's one name");
        // 20 executions of one flow version, each logging 100 records, every record in a
        // category of its own (as a connector logging `req-{n}` does).
        let mut new = Vec::new();
        let mut jobs = Vec::new();
        for j in 0..20u32 {
            let e = execution(
                JobId::at(now + Duration::from_secs(u64::from(j))),
                "f",
                ExecutionStatus::Success,
                now,
            );
            let records: Vec<LogRow> = (100 * j..100 * (j + 1))
                .map(|i| record(now, e.job_id, i, format!("req-{i}")))
                .collect();
            block(store.write(vec![Write::Execution(e.clone()), Write::Logs(records.clone())])).unwrap();
            jobs.push(e.job_id);
            new.extend(records);
        }
        assert_eq!(new.len(), 2000);
        // The execution's strings and the records' flow strings: two names, not 2,000.
        assert_eq!(names(&store), (3, 3));
        let check = |store: &RedbStore| {
            let logs =
                |q: LogQuery| -> Vec<LogRow> { block(store.logs(&q)).unwrap().into_iter().map(|(_, l)| l).collect() };
            let category = |c: &str| LogQuery {
                category: Some(c.into()),
                ..LogQuery::default()
            };
            for row in old.iter().chain(new.iter().step_by(97)) {
                assert_eq!(logs(category(&row.category)), vec![row.clone()], "{}", row.category);
            }
            assert!(logs(category("req-2000")).is_empty());
            // Through the job's index, and with the message prefilter.
            let q = LogQuery {
                job_id: Some(jobs[7]),
                ..category("req-742")
            };
            assert_eq!(logs(q), vec![new[742].clone()]);
            let q = LogQuery {
                job_id: Some(jobs[6]),
                ..category("req-742")
            };
            assert!(logs(q).is_empty());
            for (text, c, want) in [("record 1999", "req-1999", &new[1999]), ("record 2", "old-2", &old[2])] {
                let q = LogQuery {
                    contains: Some(text.into()),
                    ..category(c)
                };
                assert_eq!(logs(q), vec![want.clone()]);
            }
            let all = logs(LogQuery::default());
            assert_eq!(all.len(), 2003);
            assert_eq!(all[..3], old[..]);
            // The export (what `flowd store copy` moves) reads every form too.
            let mut at = Export::default();
            let mut exported = Vec::new();
            while let Some(page) = store.export_page(&mut at, 500).unwrap() {
                for w in page.writes {
                    if let Write::Logs(records) = w {
                        exported.extend(records);
                    }
                }
            }
            assert_eq!(exported, all);
        };
        check(&store);
        drop(store);
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(names(&store), (3, 3));
        check(&store);
    }

    #[test]
    fn rows_written_as_json_by_an_older_flowd_read_beside_binary_ones() {
        let dir = tempfile::tempdir().unwrap();
        let old = write_json_store(dir.path(), 20);
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        // Every old row reads as it was written.
        for (e, step, log) in &old {
            assert_eq!(block(store.execution(e.job_id)).unwrap().as_ref(), Some(e));
            assert_eq!(block(store.steps(e.job_id)).unwrap(), vec![step.clone()]);
            assert_eq!(block(store.attempts(e.job_id)).unwrap()[0].finished_at, e.finished_at);
            let q = LogQuery {
                job_id: Some(e.job_id),
                ..LogQuery::default()
            };
            assert_eq!(block(store.logs(&q)).unwrap()[0].1, *log);
        }
        // New rows (binary) beside them: the list, the indexes and the search take both.
        let mut new = seed(&store);
        finish(&store, &mut new);
        let newer = LogRow {
            job_id: new[59].job_id,
            time: SystemTime::now(),
            message: "new \"record\" 7".into(),
            ..old[7].2.clone()
        };
        block(store.write(vec![Write::Logs(vec![newer.clone()])])).unwrap();
        assert_indexes_agree(&store.db);
        assert_lists_agree(&store);
        let q = ListQuery {
            flow: Some("old".into()),
            ..ListQuery::default()
        };
        assert_eq!(block(store.list(&q)).unwrap().len(), 20);
        let search = |text: &str| {
            let q = LogQuery {
                contains: Some(text.into()),
                ..LogQuery::default()
            };
            let mut found: Vec<String> = block(store.logs(&q))
                .unwrap()
                .into_iter()
                .map(|(_, l)| l.message)
                .collect();
            found.sort();
            found
        };
        assert_eq!(search("\"record\" 7"), vec!["new \"record\" 7", "old \"record\" 7"]);
        assert_eq!(
            search("d\" 1"),
            (10..20)
                .chain([1])
                .map(|i| format!("old \"record\" {i}"))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
        // An old row rewritten (a status change) moves its indexes from the JSON row's.
        let mut changed = old[3].0.clone();
        changed.status = ExecutionStatus::Failed;
        block(store.write(vec![Write::Execution(changed.clone())])).unwrap();
        assert_eq!(block(store.execution(changed.job_id)).unwrap(), Some(changed));
        assert_indexes_agree(&store.db);
        // Pruning reads old and new rows alike.
        let pruned = block(store.prune(SystemTime::now() - 50 * DAY, 1000)).unwrap();
        assert_eq!(
            pruned.executions,
            20 + new[..30].iter().filter(|e| e.status.is_final()).count()
        );
        assert_indexes_agree(&store.db);
        assert_lists_agree(&store);
        // Reopened, the names written since read back from the names table.
        let kept: Vec<Execution> = new[30..]
            .iter()
            .map(|e| block(store.execution(e.job_id)).unwrap().expect("stored"))
            .collect();
        let mut step = old[1].1.clone();
        step.name = "a step named after the reopen".into();
        block(store.write(vec![Write::Step {
            job_id: kept[0].job_id,
            row: step.clone(),
        }]))
        .unwrap();
        drop(store);
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        for e in &kept {
            assert_eq!(block(store.execution(e.job_id)).unwrap().as_ref(), Some(e));
        }
        assert_eq!(block(store.steps(kept[0].job_id)).unwrap(), vec![step]);
        assert_indexes_agree(&store.db);
    }

    #[test]
    fn payloads_written_together_share_a_bundle_and_read_one_by_one() {
        use super::tables::PAYLOADS;
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        let job = JobId::new();
        let key = |attempt, step, kind| PayloadKey {
            job_id: job,
            attempt,
            step,
            kind,
        };
        let value = |i: u32| serde_json::json!({ "id": "ord-10042", "items": [{ "sku": "tea", "price": 4 }], "n": i });
        let put = |keys: Vec<(PayloadKey, Value)>| {
            block(
                store.write(
                    keys.into_iter()
                        .map(|(key, value)| Write::Payload {
                            key,
                            value: value.into(),
                            text: None,
                        })
                        .collect(),
                ),
            )
            .unwrap()
        };
        // Before bundles: a payload alone, as an older flowd wrote each.
        put(vec![(PayloadKey::trigger(job), value(0))]);
        // One write's payloads (the same place twice: the later one counts).
        put(vec![
            (key(1, 0, PayloadKind::Output), value(9)),
            (key(1, 0, PayloadKind::Config), value(1)),
            (key(1, 0, PayloadKind::Output), value(2)),
            (key(1, 1, PayloadKind::Output), value(3)),
        ]);
        // A later write starting at the same place: merged into that bundle.
        put(vec![
            (key(1, 0, PayloadKind::Output), value(4)),
            (key(1, 2, PayloadKind::Output), value(5)),
        ]);
        let shared = PayloadKey::shared_config("p", "f", "v", 0);
        put(vec![(shared, value(6)), (key(2, 0, PayloadKind::Output), value(7))]);
        let read = |k| block(store.payload(k)).unwrap();
        assert_eq!(read(PayloadKey::trigger(job)), Some(value(0)));
        assert_eq!(read(key(1, 0, PayloadKind::Config)), Some(value(1)));
        assert_eq!(read(key(1, 0, PayloadKind::Output)), Some(value(4)));
        assert_eq!(read(key(1, 1, PayloadKind::Output)), Some(value(3)));
        assert_eq!(read(key(1, 2, PayloadKind::Output)), Some(value(5)));
        assert_eq!(read(key(2, 0, PayloadKind::Output)), Some(value(7)));
        assert_eq!(read(shared), Some(value(6)));
        assert_eq!(read(key(1, 1, PayloadKind::Config)), None);
        assert_eq!(read(key(3, 0, PayloadKind::Output)), None);
        // A bundle read (and kept as the last unpacked) then merged with a later write:
        // the next read sees the merged bundle, not the one kept.
        assert_eq!(read(key(1, 1, PayloadKind::Output)), Some(value(3)));
        put(vec![
            (key(1, 0, PayloadKind::Output), value(8)),
            (key(1, 3, PayloadKind::Output), value(10)),
        ]);
        assert_eq!(read(key(1, 0, PayloadKind::Output)), Some(value(8)));
        assert_eq!(read(key(1, 3, PayloadKind::Output)), Some(value(10)));
        assert_eq!(read(key(1, 1, PayloadKind::Output)), Some(value(3)));
        let rows = |db: &Db| {
            let r = db.read().unwrap();
            let t = r.open_table(PAYLOADS).unwrap();
            t.range((job.0, 0, 0, 0)..=(job.0, u32::MAX, u32::MAX, u8::MAX))
                .unwrap()
                .count()
        };
        // The trigger alone, one bundle for attempt 1 and one row for attempt 2.
        assert_eq!(rows(&store.db), 3);
        // Pruning an execution takes its bundles with it.
        block(store.write(vec![Write::Execution(execution(
            job,
            "f",
            ExecutionStatus::Success,
            SystemTime::now() - 100 * DAY,
        ))]))
        .unwrap();
        block(store.prune(SystemTime::now() + DAY, 10)).unwrap();
        assert_eq!(rows(&store.db), 0);
        assert_eq!(read(key(1, 1, PayloadKind::Output)), None);
        assert_eq!(read(shared), Some(value(6)));
    }

    #[test]
    fn a_shared_config_is_encoded_again_only_until_a_commit_stored_it() {
        let dir = tempfile::tempdir().unwrap();
        let shared = PayloadKey::shared_config("p", "f", "v", 1);
        let config = |v: Value| Write::Payload {
            key: shared,
            value: v.into(),
            text: None,
        };
        let encoded = |store: &RedbStore, v: Value| {
            encode(vec![config(v)], usize::MAX, &store.db.names, &store.db.shared)
                .unwrap()
                .len()
        };
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        let v1 = serde_json::json!({"from": "steps.a"});
        assert_eq!(encoded(&store, v1.clone()), 1);
        // A refused write carrying it stored nothing: it is still encoded.
        let at = SystemTime::now();
        let fire = || Write::Fire { flow: "f".into(), at };
        block(store.write(vec![fire()])).unwrap();
        let refused = block(store.write(vec![fire(), config(v1.clone())]));
        assert!(matches!(refused, Err(WriteError::AlreadyFired { .. })), "{refused:?}");
        assert_eq!(encoded(&store, v1.clone()), 1);
        assert_eq!(block(store.payload(shared)).unwrap(), None);
        block(store.write(vec![config(v1.clone())])).unwrap();
        assert_eq!(encoded(&store, v1.clone()), 0);
        block(store.write(vec![config(v1.clone())])).unwrap();
        assert_eq!(block(store.payload(shared)).unwrap(), Some(v1.clone()));
        drop(store);
        // Reopened: encoded again, found stored and left as it is.
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(encoded(&store, v1.clone()), 1);
        block(store.write(vec![config(serde_json::json!({"other": true}))])).unwrap();
        assert_eq!(block(store.payload(shared)).unwrap(), Some(v1));
    }

    #[test]
    fn a_database_without_the_flow_status_index_gets_it_rebuilt_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
            let mut rows = seed(&store);
            finish(&store, &mut rows);
        }
        {
            // As an older flowd left it: every table but the new index.
            let db = Database::create(dir.path().join("flowd.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            assert!(txn.delete_table(BY_FLOW_STATUS).unwrap());
            txn.commit().unwrap();
        }
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_indexes_agree(&store.db);
        assert_lists_agree(&store);
    }
}
