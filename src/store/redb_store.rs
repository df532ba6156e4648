//! The redb store. One writer thread owns every write transaction and commits whatever
//! has queued up while the previous commit was syncing (group commit): under load many
//! executions share one fsync, alone a write commits at once. Pruning (retention) goes
//! through the same thread, each batch in a transaction of its own. Readers open their own
//! read transactions and never wait for the writer.

use super::model::{Attempt, Execution, JobId, ListQuery, LogKey, LogQuery, LogRow, PayloadKey, StepRow, Write};
use super::tables::{
    ATTEMPTS, BY_FLOW, BY_FLOW_STATUS, BY_STATUS, EXECUTIONS, INACTIVE_FLOWS, LOGS, LOGS_BY_JOB, PAYLOADS, SCHEDULES,
    STEPS,
};
use super::{PruneFuture, Pruned, Store, StoreError, WriteFuture};
use crate::status::ExecutionStatus;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableError, WriteTransaction};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// The most requests one transaction takes; the rest wait for the next commit.
const MAX_BATCH: usize = 4096;

/// Log records one prune may delete on their own, per execution it may delete.
const SWEEP_PER_EXECUTION: usize = 16;

/// What the writer thread is asked to do.
enum Request {
    Write(WriteRequest),
    Prune(PruneRequest),
}

struct WriteRequest {
    writes: Vec<Encoded>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

struct PruneRequest {
    cutoff: SystemTime,
    max_executions: usize,
    done: oneshot::Sender<Result<Pruned, StoreError>>,
}

/// Upper bounds of the batch-size histogram in [`WriterStats::batches`]; the last bucket
/// takes larger batches.
pub const BATCH_BUCKETS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024];

/// Group commits of writes and the write requests they carried, since the store opened
/// (prune transactions are not counted).
#[derive(Debug, Clone, Copy, Default)]
pub struct WriterStats {
    pub commits: u64,
    pub requests: u64,
    /// Commits by the number of requests they carried, per bucket of [`BATCH_BUCKETS`]
    /// and one more for larger ones (not cumulative).
    pub batches: [u64; BATCH_BUCKETS.len() + 1],
}

/// What the writer thread counts, read by [`Store::stats`].
#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    requests: AtomicU64,
    batches: [AtomicU64; BATCH_BUCKETS.len() + 1],
}

pub struct RedbStore {
    db: Arc<Database>,
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    max_payload: usize,
    counters: Arc<Counters>,
    path: PathBuf,
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

fn status_code(s: ExecutionStatus) -> u8 {
    match s {
        ExecutionStatus::Pending => 0,
        ExecutionStatus::Queued => 1,
        ExecutionStatus::Running => 2,
        ExecutionStatus::Paused => 3,
        ExecutionStatus::Success => 4,
        ExecutionStatus::PartiallyExecuted => 5,
        ExecutionStatus::Failed => 6,
        ExecutionStatus::Rejected => 7,
    }
}

/// Codes of the statuses that are not final, for recovery.
const UNFINISHED: [u8; 4] = [0, 1, 2, 3];

/// `text` as serde_json writes it inside a string. Its escaping maps each character on its
/// own, so a stored record (written by [`json`]) whose message contains `text` holds these
/// bytes; the converse need not hold (another field may), hence the full check after.
fn escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).expect("a string serializes");
    quoted[1..quoted.len() - 1].to_string()
}

/// Whether the stored record `bytes` may hold `needle`: serde_json writes UTF-8 only, so a
/// record that is not is left to decoding to report.
fn holds(bytes: &[u8], needle: &str) -> bool {
    std::str::from_utf8(bytes).map_or(true, |text| text.contains(needle))
}

/// Job ids read off an index, newest first.
type IdIter = Box<dyn Iterator<Item = Result<u128, StoreError>>>;

/// Merges index ranges that are each newest first into one newest-first sequence (an
/// execution has one status, so the ranges of several statuses never share an id).
fn newest_first(mut ranges: Vec<IdIter>) -> IdIter {
    if ranges.len() == 1 {
        return ranges.pop().expect("one range");
    }
    let mut ranges: Vec<_> = ranges.into_iter().map(Iterator::peekable).collect();
    Box::new(std::iter::from_fn(move || {
        let mut newest: Option<(usize, u128)> = None;
        for (i, r) in ranges.iter_mut().enumerate() {
            match r.peek() {
                Some(Ok(id)) if newest.is_none_or(|(_, n)| *id > n) => newest = Some((i, *id)),
                Some(Ok(_)) | None => {}
                Some(Err(_)) => return r.next(),
            }
        }
        newest.and_then(|(i, _)| ranges[i].next())
    }))
}

/// The key just before `k` in the logs table's order, if any.
fn next_below(k: LogKey) -> Option<LogKey> {
    if k.seq > 0 {
        return Some(LogKey { seq: k.seq - 1, ..k });
    }
    if k.job > 0 {
        return Some(LogKey {
            job: k.job - 1,
            seq: u32::MAX,
            ..k
        });
    }
    k.time.checked_sub(1).map(|time| LogKey {
        time,
        job: u128::MAX,
        seq: u32::MAX,
    })
}

/// The key just after `k` in the logs table's order, if any.
fn next_above(k: LogKey) -> Option<LogKey> {
    if k.seq < u32::MAX {
        return Some(LogKey { seq: k.seq + 1, ..k });
    }
    if k.job < u128::MAX {
        return Some(LogKey {
            job: k.job + 1,
            seq: 0,
            ..k
        });
    }
    k.time.checked_add(1).map(|time| LogKey { time, job: 0, seq: 0 })
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn decode<T: serde::de::DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        detail: e.to_string(),
    })
}

impl RedbStore {
    /// Opens (or creates) `dir/flowd.redb`. `max_payload` caps every stored payload.
    pub fn open(dir: &Path, max_payload: usize) -> Result<RedbStore, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: dir.display().to_string(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        let path = dir.join("flowd.redb");
        if !path.exists() {
            create_atomically(dir, &path).map_err(|e| open_err(e.to_string()))?;
        }
        let db = open_repairing(&path).map_err(|e| open_err(e.to_string()))?;
        create_tables(&db)?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel::<Request>();
        let counters = Arc::new(Counters::default());
        let writer = {
            let (db, counters) = (db.clone(), counters.clone());
            std::thread::Builder::new()
                .name("flowd-store-writer".into())
                .spawn(move || writer_loop(&db, rx, &counters))
                .map_err(|e| open_err(e.to_string()))?
        };
        Ok(RedbStore {
            db,
            tx: Some(tx),
            writer: Some(writer),
            max_payload,
            counters,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A write with its records already encoded, on the caller's task: the one writer thread
/// only inserts bytes.
enum Encoded {
    Execution {
        id: u128,
        flow: String,
        status: u8,
        bytes: Vec<u8>,
    },
    FlowActive {
        flow: String,
        active: bool,
    },
    LastFire {
        flow: String,
        at: u64,
    },
    Attempt {
        key: (u128, u32),
        bytes: Vec<u8>,
    },
    Step {
        key: (u128, u32, u32),
        bytes: Vec<u8>,
    },
    Payload {
        key: (u128, u32, u32, u8),
        bytes: Vec<u8>,
    },
    Log {
        time: u64,
        job: u128,
        bytes: Vec<u8>,
    },
}

/// Encodes `writes`, refusing a payload over `max_payload` bytes.
fn encode(writes: Vec<Write>, max_payload: usize) -> Result<Vec<Encoded>, StoreError> {
    let mut out = Vec::with_capacity(writes.len());
    for w in writes {
        match w {
            Write::Execution(e) => out.push(Encoded::Execution {
                id: e.job_id.0,
                status: status_code(e.status),
                bytes: json(&e),
                flow: e.flow,
            }),
            Write::FlowActive { flow, active } => out.push(Encoded::FlowActive { flow, active }),
            Write::LastFire { flow, at } => out.push(Encoded::LastFire { flow, at: nanos(at) }),
            Write::Attempt { job_id, row } => out.push(Encoded::Attempt {
                key: (job_id.0, row.attempt),
                bytes: json(&row),
            }),
            Write::Step { job_id, row } => out.push(Encoded::Step {
                key: (job_id.0, row.attempt, row.index),
                bytes: json(&row),
            }),
            Write::Payload { key, value } => {
                let bytes = json(&value);
                if bytes.len() > max_payload {
                    let kind = match key.kind {
                        super::PayloadKind::Trigger => "trigger",
                        super::PayloadKind::Config => "config",
                        super::PayloadKind::Output => "output",
                    };
                    return Err(StoreError::PayloadTooLarge {
                        kind,
                        size: bytes.len(),
                        max: max_payload,
                    });
                }
                out.push(Encoded::Payload {
                    key: (key.job_id.0, key.attempt, key.step, key.kind.code()),
                    bytes,
                });
            }
            Write::Logs(rows) => {
                for row in rows {
                    out.push(Encoded::Log {
                        time: nanos(row.time),
                        job: row.job_id.0,
                        bytes: json(&row),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("store records serialize")
}

/// Every table, opened in one write transaction.
struct Tables<'txn> {
    executions: Table<'txn, u128, &'static [u8]>,
    inactive: Table<'txn, &'static str, ()>,
    schedules: Table<'txn, &'static str, u64>,
    attempts: Table<'txn, (u128, u32), &'static [u8]>,
    steps: Table<'txn, (u128, u32, u32), &'static [u8]>,
    payloads: Table<'txn, (u128, u32, u32, u8), &'static [u8]>,
    logs: Table<'txn, (u64, u128, u32), &'static [u8]>,
    logs_by_job: Table<'txn, (u128, u64, u32), ()>,
    by_flow: Table<'txn, (&'static str, u128), ()>,
    by_status: Table<'txn, (u8, u128), ()>,
    by_flow_status: Table<'txn, (&'static str, u8, u128), ()>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Tables<'txn>, StoreError> {
        Ok(Tables {
            executions: txn.open_table(EXECUTIONS).map_err(db_err)?,
            inactive: txn.open_table(INACTIVE_FLOWS).map_err(db_err)?,
            schedules: txn.open_table(SCHEDULES).map_err(db_err)?,
            attempts: txn.open_table(ATTEMPTS).map_err(db_err)?,
            steps: txn.open_table(STEPS).map_err(db_err)?,
            payloads: txn.open_table(PAYLOADS).map_err(db_err)?,
            logs: txn.open_table(LOGS).map_err(db_err)?,
            logs_by_job: txn.open_table(LOGS_BY_JOB).map_err(db_err)?,
            by_flow: txn.open_table(BY_FLOW).map_err(db_err)?,
            by_status: txn.open_table(BY_STATUS).map_err(db_err)?,
            by_flow_status: txn.open_table(BY_FLOW_STATUS).map_err(db_err)?,
        })
    }
}

/// Creates every table, so readers never meet a missing one.
///
/// A database written before `BY_FLOW_STATUS` existed lacks it: the index is rebuilt
/// from the executions here, once, in the transaction that creates it (so a crash midway
/// leaves no partial index), rather than having readers fall back to a slower scan.
fn create_tables(db: &Database) -> Result<(), StoreError> {
    let missing = match db.begin_read().map_err(db_err)?.open_table(BY_FLOW_STATUS) {
        Ok(_) => false,
        Err(TableError::TableDoesNotExist(_)) => true,
        Err(e) => return Err(db_err(e)),
    };
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut tables = Tables::open(&txn)?;
        if missing {
            for item in tables.executions.iter().map_err(db_err)? {
                let (id, row) = item.map_err(db_err)?;
                let head: ExecutionHead = decode("executions", row.value())?;
                tables
                    .by_flow_status
                    .insert((head.flow.as_str(), status_code(head.status), id.value()), ())
                    .map_err(db_err)?;
            }
        }
    }
    txn.commit().map_err(db_err)
}

/// Opens the database at `path`. One not closed cleanly (flowd was killed, the machine
/// stopped) is checked and repaired first, which takes time in proportion to its size: the
/// log says so, and how far it got, rather than leaving the start-up silent.
fn open_repairing(path: &Path) -> Result<Database, redb::DatabaseError> {
    let started = std::time::Instant::now();
    let shown = Arc::new(AtomicU64::new(0));
    let seen = shown.clone();
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let where_ = path.display().to_string();
    let db = redb::Builder::new()
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
        self.tx.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn writer_loop(db: &Database, rx: mpsc::Receiver<Request>, counters: &Counters) {
    let mut seq: u32 = 0;
    // A prune met while gathering a batch waits here for the batch to commit.
    let mut held: Option<Request> = None;
    loop {
        let first = match held.take() {
            Some(r) => r,
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => return,
            },
        };
        let first = match first {
            Request::Write(w) => w,
            Request::Prune(p) => {
                let _ = p.done.send(prune(db, p.cutoff, p.max_executions));
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Request::Write(w)) => batch.push(w),
                Ok(prune) => {
                    held = Some(prune);
                    break;
                }
                Err(_) => break,
            }
        }
        let result = apply(db, &batch, &mut seq);
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters.requests.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let bucket = BATCH_BUCKETS
            .iter()
            .position(|b| batch.len() as u64 <= *b)
            .unwrap_or(BATCH_BUCKETS.len());
        counters.batches[bucket].fetch_add(1, Ordering::Relaxed);
        for r in batch {
            let _ = r.done.send(result.clone());
        }
    }
}

/// Applies a batch in one durable transaction.
fn apply(db: &Database, batch: &[WriteRequest], seq: &mut u32) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut tables = Tables::open(&txn)?;
        for w in batch.iter().flat_map(|r| &r.writes) {
            match w {
                Encoded::Execution {
                    id,
                    flow,
                    status,
                    bytes,
                } => {
                    let old = tables.executions.insert(*id, bytes.as_slice()).map_err(db_err)?;
                    let old = match old {
                        Some(old) => Some(decode::<ExecutionHead>("executions", old.value())?),
                        None => None,
                    };
                    match old {
                        Some(old) if status_code(old.status) == *status => {}
                        Some(old) => {
                            let s = status_code(old.status);
                            tables.by_status.remove((s, *id)).map_err(db_err)?;
                            tables.by_status.insert((*status, *id), ()).map_err(db_err)?;
                            tables
                                .by_flow_status
                                .remove((old.flow.as_str(), s, *id))
                                .map_err(db_err)?;
                            tables
                                .by_flow_status
                                .insert((flow.as_str(), *status, *id), ())
                                .map_err(db_err)?;
                        }
                        // A new execution: its flow never changes, so it is indexed once.
                        None => {
                            tables.by_status.insert((*status, *id), ()).map_err(db_err)?;
                            tables.by_flow.insert((flow.as_str(), *id), ()).map_err(db_err)?;
                            tables
                                .by_flow_status
                                .insert((flow.as_str(), *status, *id), ())
                                .map_err(db_err)?;
                        }
                    }
                }
                Encoded::FlowActive { flow, active } => {
                    if *active {
                        tables.inactive.remove(flow.as_str()).map_err(db_err)?;
                    } else {
                        tables.inactive.insert(flow.as_str(), ()).map_err(db_err)?;
                    }
                }
                Encoded::LastFire { flow, at } => {
                    tables.schedules.insert(flow.as_str(), *at).map_err(db_err)?;
                }
                Encoded::Attempt { key, bytes } => {
                    tables.attempts.insert(*key, bytes.as_slice()).map_err(db_err)?;
                }
                Encoded::Step { key, bytes } => {
                    tables.steps.insert(*key, bytes.as_slice()).map_err(db_err)?;
                }
                Encoded::Payload { key, bytes } => {
                    tables.payloads.insert(*key, bytes.as_slice()).map_err(db_err)?;
                }
                Encoded::Log { time, job, bytes } => {
                    *seq = seq.wrapping_add(1);
                    tables
                        .logs
                        .insert((*time, *job, *seq), bytes.as_slice())
                        .map_err(db_err)?;
                    tables.logs_by_job.insert((*job, *time, *seq), ()).map_err(db_err)?;
                }
            }
        }
    }
    txn.commit().map_err(db_err)
}

/// The part of an execution row pruning needs.
#[derive(Deserialize)]
struct ExecutionHead {
    flow: String,
    status: ExecutionStatus,
}

/// One prune batch (see [`Store::prune`]) in one durable transaction.
fn prune(db: &Database, cutoff: SystemTime, max_executions: usize) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut tables = Tables::open(&txn)?;

        // Job ids are creation times, so the old executions are a prefix of the table.
        // Unfinished ones are passed over each time; recovery keeps them few.
        let mut doomed = Vec::new();
        for item in tables
            .executions
            .range(..JobId::lower_bound(cutoff).0)
            .map_err(db_err)?
        {
            if doomed.len() >= max_executions {
                break;
            }
            let (id, row) = item.map_err(db_err)?;
            let head: ExecutionHead = decode("executions", row.value())?;
            if head.status.is_final() {
                doomed.push((id.value(), head));
            }
        }
        for (id, head) in &doomed {
            let id = *id;
            tables.executions.remove(id).map_err(db_err)?;
            tables
                .by_status
                .remove((status_code(head.status), id))
                .map_err(db_err)?;
            tables.by_flow.remove((head.flow.as_str(), id)).map_err(db_err)?;
            tables
                .by_flow_status
                .remove((head.flow.as_str(), status_code(head.status), id))
                .map_err(db_err)?;
            tables
                .attempts
                .retain_in((id, 0)..=(id, u32::MAX), |_, _| false)
                .map_err(db_err)?;
            tables
                .steps
                .retain_in((id, 0, 0)..=(id, u32::MAX, u32::MAX), |_, _| false)
                .map_err(db_err)?;
            tables
                .payloads
                .retain_in((id, 0, 0, 0)..=(id, u32::MAX, u32::MAX, u8::MAX), |_, _| false)
                .map_err(db_err)?;
            let mut records = Vec::new();
            for item in tables
                .logs_by_job
                .range((id, 0, 0)..=(id, u64::MAX, u32::MAX))
                .map_err(db_err)?
            {
                let (_, t, seq) = item.map_err(db_err)?.0.value();
                records.push((t, seq));
            }
            for (t, seq) in records {
                tables.logs_by_job.remove((id, t, seq)).map_err(db_err)?;
                if tables.logs.remove((t, id, seq)).map_err(db_err)?.is_some() {
                    pruned.log_records += 1;
                }
            }
        }
        pruned.executions = doomed.len();

        // Then old records left over on their own, oldest first, except those of an
        // execution that is not final. The scan stops after examining four times the
        // limit, so many kept records cannot hold the writer.
        let limit = max_executions.saturating_mul(SWEEP_PER_EXECUTION);
        let mut unfinished: HashMap<u128, bool> = HashMap::new();
        let mut records = Vec::new();
        let old = tables.logs.range((0, 0, 0)..(nanos(cutoff), 0, 0)).map_err(db_err)?;
        for item in old.take(limit.saturating_mul(4)) {
            if records.len() >= limit {
                break;
            }
            let (t, job, seq) = item.map_err(db_err)?.0.value();
            let keep = match unfinished.get(&job) {
                Some(keep) => *keep,
                None => {
                    let mut keep = false;
                    for code in UNFINISHED {
                        keep |= tables.by_status.get((code, job)).map_err(db_err)?.is_some();
                    }
                    unfinished.insert(job, keep);
                    keep
                }
            };
            if !keep {
                records.push((t, job, seq));
            }
        }
        for (t, job, seq) in records {
            tables.logs.remove((t, job, seq)).map_err(db_err)?;
            tables.logs_by_job.remove((job, t, seq)).map_err(db_err)?;
            pruned.log_records += 1;
        }
    }
    txn.commit().map_err(db_err)?;
    Ok(pruned)
}

impl Store for RedbStore {
    fn write(&self, writes: Vec<Write>) -> WriteFuture<'_> {
        Box::pin(async move {
            let writes = encode(writes, self.max_payload)?;
            let (done, wait) = oneshot::channel();
            self.tx
                .as_ref()
                .ok_or(StoreError::Closed)?
                .send(Request::Write(WriteRequest { writes, done }))
                .map_err(|_| StoreError::Closed)?;
            wait.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
            batches: std::array::from_fn(|i| self.counters.batches[i].load(Ordering::Relaxed)),
        }
    }

    fn prune(&self, cutoff: SystemTime, max_executions: usize) -> PruneFuture<'_> {
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            self.tx
                .as_ref()
                .ok_or(StoreError::Closed)?
                .send(Request::Prune(PruneRequest {
                    cutoff,
                    max_executions,
                    done,
                }))
                .map_err(|_| StoreError::Closed)?;
            wait.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn execution(&self, id: JobId) -> Result<Option<Execution>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(EXECUTIONS).map_err(db_err)?;
        match t.get(id.0).map_err(db_err)? {
            Some(v) => Ok(Some(decode("executions", v.value())?)),
            None => Ok(None),
        }
    }

    fn inactive_flows(&self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(INACTIVE_FLOWS).map_err(db_err)?;
        let mut out = std::collections::BTreeSet::new();
        for item in t.iter().map_err(db_err)? {
            out.insert(item.map_err(db_err)?.0.value().to_string());
        }
        Ok(out)
    }

    fn last_fire(&self, flow: &str) -> Result<Option<SystemTime>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(SCHEDULES).map_err(db_err)?;
        Ok(t.get(flow)
            .map_err(db_err)?
            .map(|v| UNIX_EPOCH + std::time::Duration::from_nanos(v.value())))
    }

    fn attempts(&self, id: JobId) -> Result<Vec<Attempt>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(ATTEMPTS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.range((id.0, 0)..=(id.0, u32::MAX)).map_err(db_err)? {
            let (_, v) = item.map_err(db_err)?;
            out.push(decode("attempts", v.value())?);
        }
        Ok(out)
    }

    fn steps(&self, id: JobId) -> Result<Vec<StepRow>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(STEPS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.range((id.0, 0, 0)..=(id.0, u32::MAX, u32::MAX)).map_err(db_err)? {
            let (_, v) = item.map_err(db_err)?;
            out.push(decode("steps", v.value())?);
        }
        Ok(out)
    }

    fn payload(&self, key: PayloadKey) -> Result<Option<Value>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(PAYLOADS).map_err(db_err)?;
        match t
            .get((key.job_id.0, key.attempt, key.step, key.kind.code()))
            .map_err(db_err)?
        {
            Some(v) => Ok(Some(decode("payloads", v.value())?)),
            None => Ok(None),
        }
    }

    fn list(&self, q: &ListQuery) -> Result<Vec<Execution>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let executions = r.open_table(EXECUTIONS).map_err(db_err)?;
        let lo = q.from.map_or(0, |t| JobId::lower_bound(t).0);
        let mut hi =
            q.to.map_or(u128::MAX, |t| JobId::lower_bound(t).0.saturating_add(1 << 80));
        if let Some(before) = q.before {
            hi = hi.min(before.0);
        }
        if lo >= hi {
            return Ok(Vec::new());
        }
        let limit = if q.limit == 0 { usize::MAX } else { q.limit };
        let mut codes: Vec<u8> = q.statuses.iter().map(|s| status_code(*s)).collect();
        codes.sort_unstable();
        codes.dedup();
        // The narrowest index the query allows, read newest first and lazily, so a page
        // costs what it returns (and what the index cannot filter), not the index's size.
        // Every row is still checked in full.
        let ids: IdIter = match (&q.flow, codes.is_empty()) {
            (Some(flow), false) => {
                let t = r.open_table(BY_FLOW_STATUS).map_err(db_err)?;
                let mut ranges = Vec::new();
                for c in codes {
                    let range = t
                        .range((flow.as_str(), c, lo)..(flow.as_str(), c, hi))
                        .map_err(db_err)?;
                    ranges.push(Box::new(range.rev().map(|i| i.map(|(k, _)| k.value().2).map_err(db_err))) as IdIter);
                }
                newest_first(ranges)
            }
            (Some(flow), true) => {
                let t = r.open_table(BY_FLOW).map_err(db_err)?;
                let range = t.range((flow.as_str(), lo)..(flow.as_str(), hi)).map_err(db_err)?;
                Box::new(range.rev().map(|i| i.map(|(k, _)| k.value().1).map_err(db_err)))
            }
            (None, false) => {
                let t = r.open_table(BY_STATUS).map_err(db_err)?;
                let mut ranges = Vec::new();
                for c in codes {
                    let range = t.range((c, lo)..(c, hi)).map_err(db_err)?;
                    ranges.push(Box::new(range.rev().map(|i| i.map(|(k, _)| k.value().1).map_err(db_err))) as IdIter);
                }
                newest_first(ranges)
            }
            (None, true) => {
                let range = executions.range(lo..hi).map_err(db_err)?;
                let mut rows = Vec::new();
                for item in range.rev() {
                    let (_, v) = item.map_err(db_err)?;
                    let e: Execution = decode("executions", v.value())?;
                    if q.keeps(&e) {
                        rows.push(e);
                        if rows.len() >= limit {
                            break;
                        }
                    }
                }
                return Ok(rows);
            }
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(v) = executions.get(id?).map_err(db_err)? {
                let e: Execution = decode("executions", v.value())?;
                if q.keeps(&e) {
                    out.push(e);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    fn logs(&self, q: &LogQuery) -> Result<Vec<(LogKey, LogRow)>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let logs = r.open_table(LOGS).map_err(db_err)?;
        let mut lo = LogKey {
            time: q.from.map_or(0, nanos),
            job: 0,
            seq: 0,
        };
        let mut hi = LogKey {
            time: q.to.map_or(u64::MAX, nanos),
            job: u128::MAX,
            seq: u32::MAX,
        };
        if let Some(job) = q.job_id {
            (lo.job, hi.job) = (job.0, job.0);
        }
        // The cursor is exclusive: the next page starts past it in the query's order.
        match q.after {
            Some(c) if q.newest_first => match next_below(c) {
                Some(below) => hi = hi.min(below),
                None => return Ok(Vec::new()),
            },
            Some(c) => match next_above(c) {
                Some(above) => lo = lo.max(above),
                None => return Ok(Vec::new()),
            },
            None => {}
        }
        if lo > hi {
            return Ok(Vec::new());
        }
        let limit = if q.limit == 0 { usize::MAX } else { q.limit };
        let mut out = Vec::new();
        let needle = q.contains.as_deref().map(escaped);
        let mut take = |key: LogKey, bytes: &[u8]| -> Result<bool, StoreError> {
            // A record whose bytes lack the escaped substring cannot match: only the rest
            // is decoded (and checked in full).
            if let Some(n) = &needle
                && !holds(bytes, n)
            {
                return Ok(true);
            }
            let row: LogRow = decode("logs", bytes)?;
            if q.keeps(&row) {
                out.push((key, row));
            }
            Ok(out.len() < limit)
        };
        if let Some(job) = q.job_id {
            // One job's records through its index, still in time order.
            let by_job = r.open_table(LOGS_BY_JOB).map_err(db_err)?;
            let range = by_job
                .range((job.0, lo.time, 0)..=(job.0, hi.time, u32::MAX))
                .map_err(db_err)?;
            let keys = range.map(|i| i.map(|(k, _)| k.value()).map_err(db_err));
            let keys: Box<dyn Iterator<Item = _>> = if q.newest_first {
                Box::new(keys.rev())
            } else {
                Box::new(keys)
            };
            for k in keys {
                let (_, time, seq) = k?;
                let key = LogKey { time, job: job.0, seq };
                if key < lo || key > hi {
                    continue;
                }
                if let Some(v) = logs.get((time, job.0, seq)).map_err(db_err)?
                    && !take(key, v.value())?
                {
                    break;
                }
            }
            return Ok(out);
        }
        let range = logs
            .range((lo.time, lo.job, lo.seq)..=(hi.time, hi.job, hi.seq))
            .map_err(db_err)?;
        let items: Box<dyn Iterator<Item = _>> = if q.newest_first {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        for item in items {
            let (k, v) = item.map_err(db_err)?;
            let (time, job, seq) = k.value();
            if !take(LogKey { time, job, seq }, v.value())? {
                break;
            }
        }
        Ok(out)
    }

    fn unfinished(&self) -> Result<Vec<Execution>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let by_status = r.open_table(BY_STATUS).map_err(db_err)?;
        let executions = r.open_table(EXECUTIONS).map_err(db_err)?;
        let mut ids = Vec::new();
        for code in UNFINISHED {
            for item in by_status.range((code, 0)..=(code, u128::MAX)).map_err(db_err)? {
                ids.push(item.map_err(db_err)?.0.value().1);
            }
        }
        ids.sort_unstable();
        let mut out = Vec::new();
        for id in ids {
            if let Some(v) = executions.get(id).map_err(db_err)? {
                out.push(decode("executions", v.value())?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::time::Duration;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    fn execution(job_id: JobId, flow: &str, status: ExecutionStatus, created_at: SystemTime) -> Execution {
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
    fn assert_indexes_agree(db: &Database) {
        let r = db.begin_read().unwrap();
        let (mut flow, mut status, mut both) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for item in r.open_table(EXECUTIONS).unwrap().iter().unwrap() {
            let (id, v) = item.unwrap();
            let head: ExecutionHead = decode("executions", v.value()).unwrap();
            let (id, code) = (id.value(), status_code(head.status));
            flow.insert((head.flow.clone(), id));
            status.insert((code, id));
            both.insert((head.flow, code, id));
        }
        let keys = |t: redb::ReadOnlyTable<_, ()>| -> BTreeSet<_> {
            t.iter().unwrap().map(|i| i.unwrap().0.value()).collect()
        };
        let by_flow: BTreeSet<(String, u128)> = r
            .open_table(BY_FLOW)
            .unwrap()
            .iter()
            .unwrap()
            .map(|i| {
                let (k, _) = i.unwrap();
                let (f, id) = k.value();
                (f.to_string(), id)
            })
            .collect();
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
        assert_eq!(by_flow, flow, "BY_FLOW");
        assert_eq!(keys(r.open_table(BY_STATUS).unwrap()), status, "BY_STATUS");
        assert_eq!(by_flow_status, both, "BY_FLOW_STATUS");
    }

    /// What `q` must answer, worked out from every row.
    fn expected(store: &RedbStore, q: &ListQuery) -> Vec<JobId> {
        let all = store.list(&ListQuery::default()).unwrap();
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
                    let got: Vec<JobId> = store.list(&q).unwrap().iter().map(|e| e.job_id).collect();
                    assert_eq!(got, expected(store, &q), "{q:?}");
                    checked += got.len();
                    // The next page starts below the last id of this one.
                    if let Some(last) = got.last() {
                        q.before = Some(*last);
                        let next: Vec<JobId> = store.list(&q).unwrap().iter().map(|e| e.job_id).collect();
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
