//! The one writer thread: it owns every write transaction and commits whatever queued up
//! while the previous commit was syncing (group commit), so under load many executions
//! share one sync and alone a write commits at once; prune batches go through it too,
//! each in a transaction of its own. A batch is made durable by the write-ahead log
//! (`wal`) and committed to redb in memory; every [`CHECKPOINT_AFTER`] (or when the log
//! is full, or idle) a durable redb commit takes over and the log starts over. Records
//! are encoded on the caller's task: the thread only inserts bytes.

use super::encoded::Encoded;
use super::names::Names;
use super::packing::{self, Place};
use super::tables::{Tables, WAL_APPLIED};
use super::wal::{self, Record, Wal};
use super::{Db, nanos, rows, status_code, write_err};
use crate::store::{Pruned, SHARED_ATTEMPT, WriteError};
use redb::ReadableTable;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;

/// The most requests one transaction takes; the rest wait for the next commit.
const MAX_BATCH: usize = 4096;

/// How long batches stay in the write-ahead log before a durable commit of the database
/// takes them over: the longest replay at open, and what redb holds in memory meanwhile.
///
/// On the peer shape at 10 connections, 50 ms did as well as 250 ms or better (in three
/// of five paired runs ~20% more executions and half the p99; this machine's noise is of
/// that size too), and it bounds the replay and what redb holds in memory more tightly.
pub(super) const CHECKPOINT_AFTER: Duration = Duration::from_millis(50);

/// What the writer thread is asked to do.
pub(super) enum Request {
    Write(WriteRequest),
    Prune(PruneRequest),
}

pub(super) struct WriteRequest {
    pub(super) writes: Vec<Encoded>,
    pub(super) done: oneshot::Sender<Result<(), WriteError>>,
}

pub(super) struct PruneRequest {
    pub(super) cutoff: SystemTime,
    pub(super) max_executions: usize,
    pub(super) done: oneshot::Sender<Result<Pruned, WriteError>>,
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

/// What the writer thread counts, read by [`RedbStore::writer_stats`].
#[derive(Default)]
pub(super) struct Counters {
    pub(super) commits: AtomicU64,
    pub(super) requests: AtomicU64,
    pub(super) batches: [AtomicU64; BATCH_BUCKETS.len() + 1],
}

pub(super) fn writer_loop(db: &Db, mut wal: Wal, rx: mpsc::Receiver<Request>, counters: &Counters) {
    let mut seq: u32 = 0;
    let mut checkpointed = Instant::now();
    // A prune met while gathering a batch waits here for the batch to commit.
    let mut held: Option<Request> = None;
    loop {
        let first = match held.take() {
            Some(r) => r,
            // Batches only the log holds are checkpointed once writes pause.
            None if !wal.is_empty() => match rx.recv_timeout(CHECKPOINT_AFTER.saturating_sub(checkpointed.elapsed())) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    checkpoint(db, &mut wal, &mut checkpointed);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => break,
            },
        };
        let first = match first {
            Request::Write(w) => w,
            Request::Prune(p) => {
                let pruned = super::prune::prune(db, p.cutoff, p.max_executions, wal.last_seq());
                // Its commit is durable, and so is every batch before it.
                if pruned.is_ok() {
                    wal.checkpointed(wal.last_seq());
                    checkpointed = Instant::now();
                }
                let _ = p.done.send(pruned);
                continue;
            }
        };
        // A batch takes what already queued and never waits for more: a wait for more
        // writers (PostgreSQL's commit_delay) cost every webhook its length in latency
        // and, at 10 connections, throughput with it, for fewer commits but no less CPU.
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
        for request in &mut batch {
            for w in &mut request.writes {
                if let Encoded::Log { seq: s, .. } = w {
                    seq = seq.wrapping_add(1);
                    *s = seq;
                }
            }
        }
        let results = commit(db, &mut wal, &batch, &mut checkpointed);
        // Only an applied request's names were inserted: a refused one's stay pending,
        // carried again by the next write that refers to them.
        if let Ok(each) = &results {
            let applied = || {
                batch
                    .iter()
                    .zip(each)
                    .filter(|(_, r)| r.is_ok())
                    .flat_map(|(r, _)| &r.writes)
            };
            db.names.stored(applied().filter_map(|w| match w {
                Encoded::Name((id, _)) => Some(*id),
                _ => None,
            }));
            db.shared.stored(applied());
        }
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters.requests.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let bucket = BATCH_BUCKETS
            .iter()
            .position(|b| batch.len() as u64 <= *b)
            .unwrap_or(BATCH_BUCKETS.len());
        counters.batches[bucket].fetch_add(1, Ordering::Relaxed);
        for (i, r) in batch.into_iter().enumerate() {
            let result = match &results {
                Ok(each) => each[i].clone(),
                Err(e) => Err(e.clone()),
            };
            let _ = r.done.send(result);
        }
    }
    // A clean close leaves everything in the database and the log empty.
    if wal.is_empty() || checkpoint(db, &mut wal, &mut checkpointed) {
        wal.close();
    }
}

/// A durable commit of the database that takes over every batch in the log; whether it
/// succeeded (if not, the log keeps them and the next checkpoint tries again).
fn checkpoint(db: &Db, wal: &mut Wal, checkpointed: &mut Instant) -> bool {
    let seq = wal.last_seq();
    let done = (|| -> Result<(), WriteError> {
        let txn = db.begin_write().map_err(write_err)?;
        txn.open_table(super::tables::META)
            .map_err(write_err)?
            .insert(WAL_APPLIED, seq)
            .map_err(write_err)?;
        txn.commit().map_err(write_err)
    })();
    match done {
        Ok(()) => {
            wal.checkpointed(seq);
            *checkpointed = Instant::now();
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "a checkpoint of the database failed; the write-ahead log keeps its batches");
            false
        }
    }
}

/// Why `request` may not apply to what `tables` hold now: a fire time already taken.
fn refusal(tables: &mut Tables, request: &WriteRequest) -> Result<Option<WriteError>, WriteError> {
    for w in &request.writes {
        if let Encoded::Fire { flow, at } = w
            && let Some(last) = tables.schedules()?.get(flow.as_str()).map_err(write_err)?
            && last.value() >= nanos(*at)
        {
            return Ok(Some(WriteError::AlreadyFired {
                flow: flow.clone(),
                at: *at,
            }));
        }
    }
    Ok(None)
}

/// Applies a batch in one transaction and makes it durable: through the log, or (when a
/// checkpoint is due, the log is full or cannot be written) by a durable commit of the
/// database. Per request, whether it applied (a request refused on its own leaves the
/// others to commit).
fn commit(
    db: &Db,
    wal: &mut Wal,
    batch: &[WriteRequest],
    checkpointed: &mut Instant,
) -> Result<Vec<Result<(), WriteError>>, WriteError> {
    let seq = wal.next_seq();
    // A batch the checkpoint is due with goes to the database durably: no log record.
    let due = checkpointed.elapsed() >= CHECKPOINT_AFTER;
    let mut txn = db.begin_write().map_err(write_err)?;
    let mut results = Vec::with_capacity(batch.len());
    let mut body = Vec::new();
    let durable = {
        let mut tables = Tables::new(&txn);
        for request in batch {
            if let Some(refused) = refusal(&mut tables, request)? {
                results.push(Err(refused));
                continue;
            }
            results.push(Ok(()));
            for w in &request.writes {
                apply(&mut tables, &db.names, w)?;
                if !due {
                    wal::encode(&mut body, w);
                }
            }
        }
        let durable = due || !wal.fits(body.len());
        // Which batch the database holds last matters only once it is durable: a commit
        // in memory is lost with a crash, and the durable commit after it (a checkpoint,
        // a prune) writes the number of the last batch it takes over.
        if durable {
            tables.meta()?.insert(WAL_APPLIED, seq).map_err(write_err)?;
        }
        durable
    };
    if !durable {
        txn.set_durability(redb::Durability::None).map_err(write_err)?;
    }
    txn.commit().map_err(write_err)?;
    if durable {
        wal.checkpointed(seq);
        *checkpointed = Instant::now();
        return Ok(results);
    }
    if let Err(e) = wal.append(seq, &body) {
        // The batch is committed in memory only: a durable commit of the database makes it
        // (and everything before it) durable without the log.
        tracing::warn!(error = %e, "writing the write-ahead log failed; committing to the database instead");
        wal.skipped(seq);
        if !checkpoint(db, wal, checkpointed) {
            return Err(WriteError::Backend(format!(
                "the write-ahead log could not be written ({e}), nor the database committed"
            )));
        }
    }
    Ok(results)
}

/// Applies again, in one durable transaction, the batches the log holds past the last one
/// the database does (`records`, read by [`Wal::open`]).
pub(super) fn replay(db: &redb::Database, names: &Names, records: &[Record]) -> Result<(), WriteError> {
    let Some(last) = records.last() else { return Ok(()) };
    let txn = db.begin_write().map_err(write_err)?;
    {
        let mut tables = Tables::new(&txn);
        for record in records {
            // A record's rows may refer to names it carries itself.
            for w in &record.writes {
                if let Encoded::Name((id, value)) = w {
                    names.restore(*id, value.clone());
                }
            }
            for w in &record.writes {
                apply(&mut tables, names, w)?;
            }
        }
        tables.meta()?.insert(WAL_APPLIED, last.seq).map_err(write_err)?;
    }
    txn.commit().map_err(write_err)
}

/// Inserts one write's bytes.
fn apply(tables: &mut Tables, names: &Names, w: &Encoded) -> Result<(), WriteError> {
    match w {
        Encoded::Name((id, value)) => {
            tables.names()?.insert(*id, &**value).map_err(write_err)?;
        }
        Encoded::Execution {
            id,
            flow,
            status,
            bytes,
        } => {
            let old = match tables.executions()?.insert(*id, bytes.as_slice()).map_err(write_err)? {
                Some(old) => Some(rows::head(names, old.value()).map_err(|e| WriteError::Backend(e.to_string()))?),
                None => None,
            };
            match old {
                Some(old) if status_code(old.status) == *status => {}
                Some(old) => {
                    let s = status_code(old.status);
                    tables.by_status()?.remove((s, *id)).map_err(write_err)?;
                    tables.by_status()?.insert((*status, *id), ()).map_err(write_err)?;
                    tables
                        .by_flow_status()?
                        .remove((old.flow.as_str(), s, *id))
                        .map_err(write_err)?;
                    tables
                        .by_flow_status()?
                        .insert((flow.as_str(), *status, *id), ())
                        .map_err(write_err)?;
                }
                // A new execution: its flow never changes, so it is indexed once.
                None => {
                    tables.by_status()?.insert((*status, *id), ()).map_err(write_err)?;
                    tables
                        .by_flow_status()?
                        .insert((flow.as_str(), *status, *id), ())
                        .map_err(write_err)?;
                }
            }
        }
        Encoded::FlowActive { flow, active } => {
            if *active {
                tables.inactive()?.remove(flow.as_str()).map_err(write_err)?;
            } else {
                tables.inactive()?.insert(flow.as_str(), ()).map_err(write_err)?;
            }
        }
        Encoded::LastFire { flow, at } => {
            tables.schedules()?.insert(flow.as_str(), *at).map_err(write_err)?;
        }
        Encoded::Fire { flow, at } => {
            tables
                .schedules()?
                .insert(flow.as_str(), nanos(*at))
                .map_err(write_err)?;
        }
        Encoded::Attempt { key, bytes } => {
            tables.attempts()?.insert(*key, bytes.as_slice()).map_err(write_err)?;
        }
        Encoded::Step { key, bytes } => {
            tables.steps()?.insert(*key, bytes.as_slice()).map_err(write_err)?;
        }
        Encoded::Payload { key, bytes } => {
            // A shared config is the same each time: written once, its page left
            // alone by every later execution.
            let shared = key.1 == SHARED_ATTEMPT;
            if !shared || tables.payloads()?.get(*key).map_err(write_err)?.is_none() {
                tables.payloads()?.insert(*key, bytes.as_slice()).map_err(write_err)?;
            }
        }
        Encoded::Log { time, job, seq, bytes } => {
            tables
                .logs()?
                .insert((*time, *job, *seq), bytes.as_slice())
                .map_err(write_err)?;
            tables
                .logs_by_job()?
                .insert((*job, *time, *seq), ())
                .map_err(write_err)?;
        }
        Encoded::Bundle { key, bytes } => {
            // Places are written once, so two bundles meet at one key only when
            // a later write starts at the same step: the two are merged.
            let merged = match tables.payloads()?.get(*key).map_err(write_err)? {
                Some(old) => {
                    let mut places: BTreeMap<Place, Vec<u8>> = packing::unpack_bundle(old.value())
                        .map_err(|e| WriteError::Backend(e.to_string()))?
                        .into_iter()
                        .collect();
                    let new = packing::unpack_bundle(bytes).map_err(|e| WriteError::Backend(e.to_string()))?;
                    places.extend(new);
                    Some(packing::pack_bundle(&places.into_iter().collect::<Vec<_>>()))
                }
                None => None,
            };
            let bytes = merged.as_deref().unwrap_or(bytes.as_slice());
            tables.payloads()?.insert(*key, bytes).map_err(write_err)?;
        }
    }
    Ok(())
}
