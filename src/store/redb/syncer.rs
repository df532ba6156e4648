//! The write-ahead log's own thread: it appends the batches the writer committed to redb
//! in memory, in their order, and answers each batch's requests once a sync made it
//! durable. The writer applies the next batch meanwhile, and batches that queue up during
//! a sync share the next one. [`Log`] is the writer's side: numbering, size, checkpoints.

use super::wal::{self, MAX_BYTES, Wal};
use crate::store::WriteError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// A request's answer, sent once its batch is durable.
pub(super) type Answer = (oneshot::Sender<Result<(), WriteError>>, Result<(), WriteError>);

enum ToLog {
    /// Batch `seq`, committed to the database in memory: durable once appended.
    Batch {
        seq: u64,
        body: Vec<u8>,
        answers: Vec<Answer>,
    },
    /// The database holds every batch up to this one durably.
    Checkpointed(u64),
    /// A checkpoint failed while batches the log could not take waited for it.
    Failed(String),
}

/// The writer's side of the log.
pub(super) struct Log {
    tx: Option<mpsc::Sender<ToLog>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Set while an append failed and no checkpoint followed: the log's numbering has a
    /// hole, so batches go to the database durably until a checkpoint is through.
    hole: Arc<AtomicBool>,
    next: u64,
    /// Bytes the log holds since the last checkpoint.
    bytes: u64,
}

impl Log {
    /// Starts the thread that owns `wal`.
    pub(super) fn start(wal: Wal) -> std::io::Result<Log> {
        let (tx, rx) = mpsc::channel();
        let hole = Arc::new(AtomicBool::new(false));
        let next = wal.next_seq();
        let thread = {
            let hole = hole.clone();
            std::thread::Builder::new()
                .name("flowd-wal".into())
                .spawn(move || run(wal, rx, &hole))?
        };
        Ok(Log {
            tx: Some(tx),
            thread: Some(thread),
            hole,
            next,
            bytes: 0,
        })
    }

    /// The number the next batch takes.
    pub(super) fn next_seq(&self) -> u64 {
        self.next
    }

    /// The number of the last batch taken.
    pub(super) fn last_seq(&self) -> u64 {
        self.next - 1
    }

    /// Whether no batch is in the log that a durable commit of the database lacks.
    pub(super) fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Whether an append failed and no checkpoint has followed yet.
    pub(super) fn has_hole(&self) -> bool {
        self.hole.load(Ordering::Acquire)
    }

    /// Whether a batch whose body is `len` bytes goes into the log; otherwise the database
    /// commits it durably.
    pub(super) fn takes(&self, len: usize) -> bool {
        !self.has_hole() && self.bytes + wal::record_len(len) <= MAX_BYTES
    }

    /// Hands batch `seq` (committed in memory) to the log; `answers` go out once it is
    /// durable. When the log's thread is gone they come back, and the batch has to be made
    /// durable by a checkpoint.
    pub(super) fn append(&mut self, seq: u64, body: Vec<u8>, answers: Vec<Answer>) -> Result<(), Vec<Answer>> {
        debug_assert_eq!(seq, self.next);
        self.next = seq + 1;
        self.bytes += wal::record_len(body.len());
        let Some(tx) = &self.tx else {
            return Err(answers);
        };
        let Err(mpsc::SendError(returned)) = tx.send(ToLog::Batch { seq, body, answers }) else {
            return Ok(());
        };
        // Nothing goes into a log without its thread again.
        self.tx = None;
        self.hole.store(true, Ordering::Release);
        let ToLog::Batch { answers, .. } = returned else {
            unreachable!("what comes back is the batch sent")
        };
        Err(answers)
    }

    /// The database durably holds every batch up to `seq`: the log starts over.
    pub(super) fn checkpointed(&mut self, seq: u64) {
        self.next = seq + 1;
        self.bytes = 0;
        if let Some(tx) = &self.tx {
            let _ = tx.send(ToLog::Checkpointed(seq));
        }
    }

    /// A checkpoint failed: batches the log could not take are answered with `error`.
    pub(super) fn failed(&mut self, error: String) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(ToLog::Failed(error));
        }
    }
}

/// Dropped, the log waits for its thread to write what it was given and stop; a log every
/// batch of which a checkpoint took over gives its space back.
impl Drop for Log {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(answers: impl IntoIterator<Item = Answer>) {
    for (done, result) in answers {
        let _ = done.send(result);
    }
}

fn run(mut wal: Wal, rx: mpsc::Receiver<ToLog>, hole: &AtomicBool) {
    // Answers of batches the log could not take: they wait for the next checkpoint.
    let mut held: Vec<Answer> = Vec::new();
    let mut group: Vec<(u64, Vec<u8>, Vec<Answer>)> = Vec::new();
    while let Ok(first) = rx.recv() {
        for message in std::iter::once(first).chain(rx.try_iter()) {
            match message {
                ToLog::Batch { seq, answers, .. } if hole.load(Ordering::Acquire) => {
                    wal.skipped(seq);
                    held.extend(answers);
                }
                ToLog::Batch { seq, body, answers } => group.push((seq, body, answers)),
                ToLog::Checkpointed(seq) => {
                    // What was gathered so far is in the database durably: no need to write it.
                    for (_, _, answers) in group.drain(..) {
                        answer(answers);
                    }
                    answer(held.drain(..));
                    wal.checkpointed(seq);
                    hole.store(false, Ordering::Release);
                }
                ToLog::Failed(error) => {
                    for (done, _) in held.drain(..) {
                        let _ = done.send(Err(WriteError::Backend(format!(
                            "the write-ahead log could not be written, nor the database committed ({error})"
                        ))));
                    }
                }
            }
        }
        if group.is_empty() {
            continue;
        }
        let records: Vec<(u64, &[u8])> = group.iter().map(|(seq, body, _)| (*seq, &body[..])).collect();
        match wal.append_all(&records) {
            Ok(()) => {
                for (_, _, answers) in group.drain(..) {
                    answer(answers);
                }
            }
            Err(e) => {
                // Committed in memory only: the writer's next checkpoint makes them durable.
                tracing::warn!(error = %e, "writing the write-ahead log failed; the database takes the batches with a checkpoint instead");
                wal.skipped(group.last().map_or(0, |(seq, _, _)| *seq));
                hole.store(true, Ordering::Release);
                for (_, _, answers) in group.drain(..) {
                    held.extend(answers);
                }
            }
        }
    }
    for (done, _) in held {
        let _ = done.send(Err(WriteError::Backend(
            "the store closed before the write-ahead log or the database took the batch".into(),
        )));
    }
    if wal.is_empty() {
        wal.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redb::encoded::Encoded;

    fn body(n: u8) -> Vec<u8> {
        let mut b = Vec::new();
        wal::encode(&mut b, &Encoded::Name((u32::from(n), vec![n; 3].into())));
        b
    }

    /// A request's answer channel: its sender, to send with `Ok(())`, and its receiver.
    fn request() -> (Answer, oneshot::Receiver<Result<(), WriteError>>) {
        let (tx, rx) = oneshot::channel();
        ((tx, Ok(())), rx)
    }

    fn seqs(path: &std::path::Path, applied: u64) -> Vec<u64> {
        Wal::open(path, applied).unwrap().1.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn batches_are_answered_once_in_the_log_and_a_checkpoint_answers_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowd.wal");
        let (wal, _) = Wal::open(&path, 0).unwrap();
        let mut log = Log::start(wal).unwrap();
        assert!(log.is_empty());
        let mut waiting = Vec::new();
        for n in 1..=3u8 {
            let (a, rx) = request();
            assert_eq!(log.next_seq(), u64::from(n));
            log.append(u64::from(n), body(n), vec![a]).unwrap();
            waiting.push(rx);
        }
        assert!(!log.is_empty());
        for rx in waiting {
            assert!(rx.blocking_recv().unwrap().is_ok());
        }
        // Answered means durable: another reader finds all three.
        assert_eq!(seqs(&path, 0), [1, 2, 3]);
        log.checkpointed(3);
        assert!(log.is_empty());
        assert_eq!(log.next_seq(), 4);
        let (a, rx) = request();
        log.append(4, body(4), vec![a]).unwrap();
        assert!(rx.blocking_recv().unwrap().is_ok());
        assert_eq!(seqs(&path, 3), [4], "the log started over after the checkpoint");
        log.checkpointed(4);
        drop(log);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            0,
            "a clean close empties the log"
        );
    }

    #[test]
    fn a_batch_that_would_pass_the_cap_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(&dir.path().join("flowd.wal"), 0).unwrap();
        let mut log = Log::start(wal).unwrap();
        let fits = (MAX_BYTES - wal::record_len(0)) as usize;
        assert!(log.takes(fits));
        assert!(!log.takes(fits + 1));
        let (a, rx) = request();
        log.append(1, body(1), vec![a]).unwrap();
        assert!(rx.blocking_recv().unwrap().is_ok());
        assert!(!log.takes(fits), "what the log holds counts");
        log.checkpointed(1);
        assert!(log.takes(fits));
    }

    #[test]
    fn batches_a_failed_append_left_wait_for_a_checkpoint_or_learn_it_failed() {
        // Every write to /dev/full fails with "no space left on device".
        let Ok((wal, _)) = Wal::open(std::path::Path::new("/dev/full"), 0) else {
            return;
        };
        let mut log = Log::start(wal).unwrap();
        let (a, mut first) = request();
        log.append(1, body(1), vec![a]).unwrap();
        let wait = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !log.has_hole() {
            assert!(std::time::Instant::now() < wait, "the failed append was not reported");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!log.takes(1), "nothing goes into a log with a hole");
        assert!(first.try_recv().is_err(), "not answered before it is durable");
        // The database committed it (and batch 2, sent before the checkpoint came) durably.
        let (a, second) = request();
        log.append(2, body(2), vec![a]).unwrap();
        log.checkpointed(2);
        assert!(first.blocking_recv().unwrap().is_ok());
        assert!(second.blocking_recv().unwrap().is_ok());
        let wait = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while log.has_hole() {
            assert!(
                std::time::Instant::now() < wait,
                "the checkpoint did not close the hole"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Failing again, with the checkpoint failing too: the request learns it.
        let (a, third) = request();
        log.append(3, body(3), vec![a]).unwrap();
        while !log.has_hole() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        log.failed("disk gone".into());
        let e = third.blocking_recv().unwrap().unwrap_err();
        assert!(e.to_string().contains("disk gone"), "{e}");
    }
}
