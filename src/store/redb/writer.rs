//! The one writer thread: it owns every write transaction and commits whatever queued up
//! while the previous commit was syncing (group commit), so under load many executions
//! share one sync and alone a write commits at once; prune batches go through it too,
//! each in a transaction of its own. A batch is made durable by the write-ahead log
//! (`wal`) and applied to a redb transaction the writer keeps open: it is committed (in
//! memory) only when a reader asks for it ([`Unseen`]), and every [`CHECKPOINT_AFTER`]
//! (or when the log is full) a durable redb commit takes over and the log starts over.
//! Records are encoded on the caller's task: the thread only inserts bytes.

use super::encoded::Encoded;
use super::names::Names;
use super::packing::{self, Place};
use super::tables::{Tables, WAL_APPLIED};
use super::wal::{self, Record, Wal};
use super::{Db, nanos, rows, status_code, write_err};
use crate::store::{Pruned, SHARED_ATTEMPT, WriteError};
use crate::sync::Lock as _;
use redb::ReadableTable;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError, mpsc};
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
    /// A reader waits for the open transaction's commit ([`Unseen::wait`]).
    Commit,
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
    /// Commits of the database's write transaction that took batches, in memory or
    /// durable: one takes every batch since the one before, until a reader asks for
    /// them or a checkpoint is due.
    pub transactions: u64,
    /// Commits by the number of requests they carried, per bucket of [`BATCH_BUCKETS`]
    /// and one more for larger ones (not cumulative).
    pub batches: [u64; BATCH_BUCKETS.len() + 1],
}

/// What the writer thread counts, read by [`RedbStore::writer_stats`].
#[derive(Default)]
pub(super) struct Counters {
    pub(super) commits: AtomicU64,
    pub(super) requests: AtomicU64,
    pub(super) transactions: AtomicU64,
    pub(super) batches: [AtomicU64; BATCH_BUCKETS.len() + 1],
}

/// Whether batches already answered wait in the writer's open transaction, which no
/// read transaction sees until it commits. A reader that finds some asks for the commit
/// and waits for it: the writer commits after the batch in hand, or at once when idle
/// (the reader rings it with [`Request::Commit`]).
#[derive(Default)]
pub(super) struct Unseen {
    state: Mutex<UnseenState>,
    committed: Condvar,
    /// Wakes an idle writer; taken away when the store closes, so the channel can.
    doorbell: Mutex<Option<mpsc::Sender<Request>>>,
}

#[derive(Default)]
struct UnseenState {
    /// Answered batches are in the open transaction.
    held: bool,
    /// A reader waits for them.
    asked: bool,
}

impl Unseen {
    /// Returns once every answered write is visible to a new read transaction.
    pub(super) fn wait(&self) {
        let mut state = self.state.locked();
        while state.held {
            if !state.asked {
                state.asked = true;
                // An idle writer sleeps on its queue; one at work sees `asked` after its
                // batch. A closed store's writer has released everything on its way out.
                if let Some(bell) = &*self.doorbell.locked() {
                    let _ = bell.send(Request::Commit);
                }
            }
            state = self.committed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Readers ring the writer through `bell` from now on.
    pub(super) fn hang_doorbell(&self, bell: mpsc::Sender<Request>) {
        *self.doorbell.locked() = Some(bell);
    }

    /// Readers ring no more: the writer's channel closes once the store drops its sender.
    pub(super) fn take_doorbell(&self) {
        self.doorbell.locked().take();
    }

    fn hold(&self) {
        self.state.locked().held = true;
    }

    fn asked(&self) -> bool {
        self.state.locked().asked
    }

    /// The open transaction ended: committed, or lost to an error (its batches are then
    /// applied again with the next write, and readers do not wait for that).
    fn released(&self) {
        let mut state = self.state.locked();
        if state.held {
            *state = UnseenState::default();
            self.committed.notify_all();
        }
    }
}

struct ReleaseOnExit<'a>(&'a Unseen);

impl Drop for ReleaseOnExit<'_> {
    fn drop(&mut self) {
        self.0.released();
    }
}

/// The writer's transaction, kept open across batches while writes keep coming, and the
/// log bodies of the batches applied in it: they are answered and in the log, so a
/// transaction lost to an error has them applied again to the next one.
struct Open<'c> {
    txn: Option<redb::WriteTransaction>,
    batches: Vec<Vec<u8>>,
    counters: &'c Counters,
    /// Checkpoints that fail (a full disk fails every try until space is freed).
    checkpoints_failing: Failures,
    /// Batches refused whole (the database cannot take their writes).
    batches_failing: Failures,
}

/// Failures of one kind of database write: warned about when they start, then at most
/// once every [`WARN_EVERY`] (across runs of failures too), not once a try.
struct Failures {
    /// What is said when they start, while they last, and when one succeeds again.
    started: &'static str,
    still: &'static str,
    recovered: &'static str,
    /// Since when they fail, and how many tries; `None` while they succeed.
    since: Option<(Instant, u64)>,
    warned: Option<Instant>,
}

impl Failures {
    fn new(started: &'static str, still: &'static str, recovered: &'static str) -> Failures {
        Failures {
            started,
            still,
            recovered,
            since: None,
            warned: None,
        }
    }

    /// One more failure, `e`: warned about when it starts a run, or [`WARN_EVERY`] after
    /// the last warning.
    fn failed(&mut self, e: &WriteError) {
        let now = Instant::now();
        let first = self.since.is_none();
        let (since, tries) = self.since.get_or_insert((now, 0));
        *tries += 1;
        let (tries, lasting) = (*tries, Duration::from_secs(now.duration_since(*since).as_secs()));
        if self.warned.is_some_and(|w| now.duration_since(w) < WARN_EVERY) {
            return;
        }
        self.warned = Some(now);
        if first {
            tracing::warn!(error = %e, "{}{}", self.started, reopen_hint(e));
        } else {
            let lasting = crate::config::units::format_duration(lasting);
            tracing::warn!(error = %e, tries, "{} (failing for {lasting}){}", self.still, reopen_hint(e));
        }
    }

    /// A success: said if failures came before it.
    fn succeeded(&mut self) {
        if let Some((_, tries)) = self.since.take() {
            tracing::info!(tries, "{}", self.recovered);
        }
    }
}

/// How often writes that keep failing are warned about again.
const WARN_EVERY: Duration = Duration::from_secs(30);

// A failing checkpoint's warning names how often it is tried again.
const _: () = assert!(CHECKPOINT_AFTER.as_millis() == 50);

impl<'c> Open<'c> {
    fn new(counters: &'c Counters) -> Open<'c> {
        Open {
            txn: None,
            batches: Vec::new(),
            counters,
            checkpoints_failing: Failures::new(
                "a checkpoint of the database failed; the write-ahead log keeps its batches, and a checkpoint is tried again every 50ms",
                "checkpoints of the database still fail; the write-ahead log keeps their batches",
                "a checkpoint of the database succeeded again",
            ),
            batches_failing: Failures::new(
                "a write to the database failed: its requests were refused, and nothing of them is stored",
                "writes to the database still fail: their requests are refused",
                "writes to the database succeed again",
            ),
        }
    }

    /// The open transaction, or a new one with any lost batches applied again.
    fn take(&mut self, db: &Db) -> Result<redb::WriteTransaction, WriteError> {
        if let Some(txn) = self.txn.take() {
            return Ok(txn);
        }
        let txn = db.file.begin_write().map_err(write_err)?;
        if !self.batches.is_empty() {
            let mut tables = Tables::new(&txn);
            for body in &self.batches {
                for w in wal::decode(body).map_err(WriteError::Backend)? {
                    apply(&mut tables, &db.names, &w)?;
                }
            }
        }
        Ok(txn)
    }

    /// Whether nothing waits to be committed.
    fn is_idle(&self) -> bool {
        self.txn.is_none() && self.batches.is_empty()
    }

    /// Commits what the writer holds: in memory, or durably with `applied` recorded as
    /// the last batch the database holds (a checkpoint).
    fn commit(&mut self, db: &Db, applied: Option<u64>) -> Result<(), WriteError> {
        let idle = self.is_idle();
        if applied.is_none() && idle {
            return Ok(());
        }
        let done = (|| {
            let mut txn = self.take(db)?;
            match applied {
                Some(seq) => {
                    Tables::new(&txn).meta()?.insert(WAL_APPLIED, seq).map_err(write_err)?;
                }
                None => txn.set_durability(redb::Durability::None).map_err(write_err)?,
            }
            txn.commit().map_err(write_err)
        })();
        if done.is_ok() {
            self.batches.clear();
            if !idle {
                self.counters.transactions.fetch_add(1, Ordering::Relaxed);
            }
        }
        db.unseen.released();
        done
    }
}

/// The writer thread's loop: takes requests off `rx` until every sender is gone, with a
/// checkpoint `every` so often under load (and once writes pause that long).
pub(super) fn writer_loop(db: &Db, mut wal: Wal, rx: mpsc::Receiver<Request>, counters: &Counters, every: Duration) {
    let mut seq: u32 = 0;
    let mut checkpointed = Instant::now();
    // A prune met while gathering a batch waits here for the batch to commit.
    let mut held: Option<Request> = None;
    let mut open = Open::new(counters);
    // However the thread ends (a panic too), no reader waits for it.
    let _release = ReleaseOnExit(&db.unseen);
    loop {
        let first = match held.take() {
            Some(r) => r,
            None => match rx.try_recv() {
                // More writes wait: the open transaction takes them too.
                Ok(r) => r,
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {
                    // None waits. The open transaction stays open: a reader that wants
                    // its batches rings for the commit, and the checkpoint takes them.
                    if wal.is_empty() {
                        match rx.recv() {
                            Ok(r) => r,
                            Err(_) => break,
                        }
                    } else {
                        // Batches only the log holds are checkpointed once writes pause.
                        match rx.recv_timeout(every.saturating_sub(checkpointed.elapsed())) {
                            Ok(r) => r,
                            Err(mpsc::RecvTimeoutError::Timeout) => {
                                checkpoint(db, &mut wal, &mut checkpointed, &mut open);
                                continue;
                            }
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        }
                    }
                }
            },
        };
        let first = match first {
            Request::Write(w) => w,
            Request::Prune(p) => {
                // A prune's durable commit records the last batch as held: every batch
                // must be in the database before it.
                let pruned = open
                    .commit(db, None)
                    .and_then(|()| super::prune::prune(db, p.cutoff, p.max_executions, wal.last_seq()));
                // Its commit is durable, and so is every batch before it.
                if pruned.is_ok() {
                    wal.checkpointed(wal.last_seq());
                    checkpointed = Instant::now();
                }
                let _ = p.done.send(pruned);
                continue;
            }
            Request::Commit => {
                commit_for_readers(db, &mut open);
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
                Ok(other) => {
                    held = Some(other);
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
        let results = commit(db, &mut wal, &batch, (&mut checkpointed, every), &mut open);
        match &results {
            Ok(_) => open.batches_failing.succeeded(),
            Err(e) => open.batches_failing.failed(e),
        }
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
        if db.unseen.asked() {
            commit_for_readers(db, &mut open);
        }
    }
    // A clean close leaves everything in the database and the log empty.
    if (wal.is_empty() && open.is_idle()) || checkpoint(db, &mut wal, &mut checkpointed, &mut open) {
        wal.close();
    }
}

/// Commits the open transaction (in memory) for the readers waiting for its batches.
fn commit_for_readers(db: &Db, open: &mut Open<'_>) {
    if let Err(e) = open.commit(db, None) {
        tracing::warn!(error = %e, "a commit of the database failed; its batches are applied again with the next write");
    }
}

/// A durable commit of the database (with the open transaction, if any) that takes over
/// every batch in the log; whether it succeeded (if not, the log keeps them and the next
/// checkpoint tries again).
fn checkpoint(db: &Db, wal: &mut Wal, checkpointed: &mut Instant, open: &mut Open<'_>) -> bool {
    let seq = wal.last_seq();
    match open.commit(db, Some(seq)) {
        Ok(()) => {
            wal.checkpointed(seq);
            *checkpointed = Instant::now();
            open.checkpoints_failing.succeeded();
            true
        }
        Err(e) => {
            // The next try waits as long as the next checkpoint would: a failure that
            // repeats (a full disk) is not retried in a loop.
            *checkpointed = Instant::now();
            open.checkpoints_failing.failed(&e);
            false
        }
    }
}

/// What to do about `e`: after an I/O error (its own, or the one before it that it
/// reports) redb refuses every write until it is opened again.
fn reopen_hint(e: &WriteError) -> &'static str {
    let text = e.to_string();
    if text.contains("I/O error") {
        ". The database refuses every write after an I/O error until it is opened again: \
         make room (or mend the disk) and restart flowd; every acknowledged write is in the \
         write-ahead log and is applied again at start"
    } else {
        ""
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

/// Applies a batch to the open transaction and makes it durable: through the log (the
/// transaction then stays open for the next batch), or (when a checkpoint is due, the log
/// is full or cannot be written) by a durable commit of the database. Per request,
/// whether it applied (a request refused on its own leaves the others to commit).
fn commit(
    db: &Db,
    wal: &mut Wal,
    batch: &[WriteRequest],
    (checkpointed, every): (&mut Instant, Duration),
    open: &mut Open<'_>,
) -> Result<Vec<Result<(), WriteError>>, WriteError> {
    let seq = wal.next_seq();
    // A batch the checkpoint is due with goes to the database durably: no log record.
    let due = checkpointed.elapsed() >= every;
    // A failure below drops the transaction with the batch half applied; the batches
    // before it are applied again to the next one.
    let txn = open.take(db)?;
    let mut results = Vec::with_capacity(batch.len());
    let mut body = Vec::with_capacity(if due {
        0
    } else {
        batch.iter().flat_map(|r| &r.writes).map(wal::encoded_len).sum()
    });
    {
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
    }
    open.txn = Some(txn);
    if due || !wal.fits(body.len()) {
        open.commit(db, Some(seq))?;
        wal.checkpointed(seq);
        *checkpointed = Instant::now();
        return Ok(results);
    }
    if let Err(e) = wal.append(seq, &body) {
        // The batch is in the open transaction only: a durable commit of the database
        // makes it (and everything before it) durable without the log.
        tracing::warn!(error = %e, "writing the write-ahead log failed; committing to the database instead");
        wal.skipped(seq);
        if !checkpoint(db, wal, checkpointed, open) {
            return Err(WriteError::Backend(format!(
                "the write-ahead log could not be written ({e}), nor the database committed"
            )));
        }
        return Ok(results);
    }
    // Answered from here on, before readers can see it: they wait for the commit.
    open.batches.push(body);
    db.unseen.hold();
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

#[cfg(test)]
mod tests {
    use super::super::tables::EXECUTIONS;
    use super::super::tests::execution;
    use super::*;
    use crate::status::ExecutionStatus;
    use crate::store::{JobId, Write};
    use redb::ReadableDatabase as _;

    #[test]
    fn failures_are_warned_about_when_they_start_and_not_again_within_warn_every() {
        let e = WriteError::Backend("disk full".into());
        let mut f = Failures::new("started", "still", "recovered");
        f.failed(&e);
        let first = f.warned.expect("the first failure is warned about");
        f.failed(&e);
        assert_eq!(f.warned, Some(first), "not the second");
        assert_eq!(f.since.map(|(_, tries)| tries), Some(2));
        f.succeeded();
        assert!(f.since.is_none());
        // Failures that stop and start again within WARN_EVERY are counted, not warned
        // about again: a disk that takes every other write would warn at each.
        f.failed(&e);
        assert_eq!(f.warned, Some(first));
        f.warned = Some(Instant::now() - WARN_EVERY);
        f.failed(&e);
        assert!(f.warned.is_some_and(|w| w > first), "due again after WARN_EVERY");
        assert_eq!(f.since.map(|(_, tries)| tries), Some(2));
    }

    /// A database and its log in `dir`, as the store opens them, without the thread.
    fn parts(dir: &std::path::Path) -> (Db, Wal) {
        let file = redb::Database::create(dir.join("flowd.redb")).unwrap();
        let names = super::super::create_tables(&file).unwrap();
        let db = Db {
            file,
            names,
            shared: Default::default(),
            last_bundle: Default::default(),
            unseen: Default::default(),
        };
        let (wal, _) = Wal::open(&dir.join("flowd.wal"), 0).unwrap();
        (db, wal)
    }

    fn request(db: &Db, writes: Vec<Write>) -> WriteRequest {
        answered_request(db, writes).0
    }

    /// A request for `writes`, and where its answer arrives.
    fn answered_request(db: &Db, writes: Vec<Write>) -> (WriteRequest, oneshot::Receiver<Result<(), WriteError>>) {
        let (done, answered) = oneshot::channel();
        let writes = super::super::encoded::encode(writes, 1 << 20, &db.names, &db.shared).unwrap();
        (WriteRequest { writes, done }, answered)
    }

    /// [`commit`] with no checkpoint due.
    fn commit_now(
        db: &Db,
        wal: &mut Wal,
        batch: &[WriteRequest],
        open: &mut Open<'_>,
    ) -> Result<Vec<Result<(), WriteError>>, WriteError> {
        commit(db, wal, batch, (&mut Instant::now(), CHECKPOINT_AFTER), open)
    }

    fn stored(db: &Db, job: JobId) -> bool {
        let r = db.file.begin_read().unwrap();
        r.open_table(EXECUTIONS).unwrap().get(job.0).unwrap().is_some()
    }

    #[test]
    fn an_answered_batch_waits_in_the_open_transaction_and_a_reader_asks_for_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (db, mut wal) = parts(dir.path());
        let counters = Counters::default();
        let mut open = Open::new(&counters);
        let now = SystemTime::now();
        let job = JobId::at(now);
        let batch = [request(
            &db,
            vec![Write::Execution(execution(job, "f", ExecutionStatus::Pending, now))],
        )];
        let results = commit_now(&db, &mut wal, &batch, &mut open).unwrap();
        assert!(results[0].is_ok());
        // In the log and the open transaction, not yet in the database.
        assert!(open.txn.is_some());
        assert_eq!(wal.last_seq(), 1);
        assert!(!stored(&db, job));
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let r = db.read().unwrap();
                r.open_table(EXECUTIONS).unwrap().get(job.0).unwrap().is_some()
            });
            let end = Instant::now() + Duration::from_secs(10);
            while !db.unseen.asked() {
                assert!(Instant::now() < end, "the reader never asked");
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(!reader.is_finished(), "the reader did not wait for the commit");
            open.commit(&db, None).unwrap();
            assert!(reader.join().unwrap(), "the reader saw the answered batch");
        });
        assert_eq!(counters.transactions.load(Ordering::Relaxed), 1);
        // Nothing is held now: a reader goes straight on.
        assert!(!db.unseen.asked());
        drop(db.read().unwrap());
    }

    #[test]
    fn an_idle_writer_keeps_its_transaction_open_until_a_reader_rings_for_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (db, wal) = parts(dir.path());
        let counters = Counters::default();
        let (tx, rx) = mpsc::channel();
        db.unseen.hang_doorbell(tx.clone());
        let now = SystemTime::now();
        let job = JobId::at(now);
        // What is seen is asserted once the writer is closed, so a failure cannot leave
        // the scope waiting for its threads.
        let (idle_stored, rang, reader_saw, committed) = std::thread::scope(|s| {
            // No checkpoint comes while the test runs: only a reader can have it committed.
            let writer = s.spawn(|| writer_loop(&db, wal, rx, &counters, Duration::from_secs(3600)));
            let writes = vec![Write::Execution(execution(job, "f", ExecutionStatus::Pending, now))];
            let (request, answered) = answered_request(&db, writes);
            tx.send(Request::Write(request)).unwrap();
            answered.blocking_recv().unwrap().unwrap();
            // Answered; give the writer time to find its queue empty (a commit there,
            // which this test must catch, would come right after the answer).
            std::thread::sleep(Duration::from_millis(100));
            let idle_stored = stored(&db, job);
            let reader = s.spawn(|| {
                let r = db.read().unwrap();
                r.open_table(EXECUTIONS).unwrap().get(job.0).unwrap().is_some()
            });
            let end = Instant::now() + Duration::from_secs(30);
            while !reader.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(1));
            }
            let rang = reader.is_finished();
            let committed = counters.transactions.load(Ordering::Relaxed);
            // The writer ends once its last sender is gone, releasing a reader still waiting.
            db.unseen.take_doorbell();
            drop(tx);
            writer.join().unwrap();
            (idle_stored, rang, reader.join().unwrap(), committed)
        });
        assert!(!idle_stored, "the idle writer committed with no reader asking");
        assert!(rang, "the idle writer never committed for the reader");
        assert!(reader_saw, "the reader did not see the answered write");
        assert_eq!(committed, 1);
    }

    #[test]
    fn a_failed_batch_loses_the_open_transaction_and_the_answered_batches_before_it_are_applied_again() {
        let dir = tempfile::tempdir().unwrap();
        let (db, mut wal) = parts(dir.path());
        let counters = Counters::default();
        let mut open = Open::new(&counters);
        let now = SystemTime::now();
        let (kept, broken, later) = (
            JobId::at(now),
            JobId::at(now + Duration::from_secs(1)),
            JobId::at(now + Duration::from_secs(2)),
        );
        let write = |job: JobId, status: ExecutionStatus| vec![Write::Execution(execution(job, "f", status, now))];
        let batch = [request(&db, write(kept, ExecutionStatus::Pending))];
        assert!(commit_now(&db, &mut wal, &batch, &mut open).unwrap()[0].is_ok());
        // A row the next batch's update cannot read (as a damaged file could hold).
        open.txn
            .as_ref()
            .unwrap()
            .open_table(EXECUTIONS)
            .unwrap()
            .insert(broken.0, b"garbage".as_slice())
            .unwrap();
        let batch = [request(&db, write(broken, ExecutionStatus::Success))];
        let err = commit_now(&db, &mut wal, &batch, &mut open).err().unwrap();
        assert!(matches!(err, WriteError::Backend(_)), "{err:?}");
        // The transaction is gone with the half-applied batch; the answered one waits.
        assert!(open.txn.is_none());
        assert_eq!(open.batches.len(), 1);
        assert_eq!(wal.last_seq(), 1, "the failed batch is not in the log");
        // The next batch goes into a new transaction with the answered one applied again.
        let batch = [request(&db, write(later, ExecutionStatus::Pending))];
        assert!(commit_now(&db, &mut wal, &batch, &mut open).unwrap()[0].is_ok());
        open.commit(&db, None).unwrap();
        assert!(stored(&db, kept) && stored(&db, later));
        assert!(!stored(&db, broken));
        assert_eq!(counters.transactions.load(Ordering::Relaxed), 1);
        // A checkpoint takes both over from the log.
        assert!(checkpoint(&db, &mut wal, &mut Instant::now(), &mut open));
        assert!(wal.is_empty());
    }
}
