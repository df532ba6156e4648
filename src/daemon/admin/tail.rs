//! The live tail's one reader: however many clients follow the logs, the store is read
//! once a poll (the last minute again, since records can become visible after later
//! ones), and each record not seen before goes to every follower, which keeps what its
//! filters match. The reader starts with the first follower and stops after the last.

use crate::daemon::Shared;
use crate::store::{LogKey, LogQuery, LogRow};
use crate::sync::Lock as _;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;

/// How often the store is read for new records.
pub const POLL: Duration = Duration::from_millis(200);
/// Records can become visible after later ones (an execution's deferred writes land
/// together): each read looks back this far and skips what it already handed on.
const LOOKBACK: Duration = Duration::from_secs(60);
/// Records read from the store at a time.
const PAGE: usize = 1000;
/// Pages a follower may fall behind before it is let go (ten seconds or more of a busy
/// daemon's records, and what holds them in memory): a client that does not read cannot
/// hold the rest back.
const BACKLOG: usize = 64;

/// New records, in the order the store holds them.
pub type Batch = Arc<Vec<(LogKey, LogRow)>>;

#[derive(Default)]
pub struct Hub {
    reader: std::sync::Mutex<Option<broadcast::Sender<Batch>>>,
    /// Readers running (one while anyone follows; more only while one winds down).
    readers: AtomicU64,
}

impl Hub {
    /// New records from now on, read by the running reader (started if none runs).
    pub fn follow(&self, shared: &Arc<Shared>) -> broadcast::Receiver<Batch> {
        let mut reader = self.reader.locked();
        if let Some(tx) = &*reader {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(BACKLOG);
        *reader = Some(tx.clone());
        self.readers.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(read(shared.clone(), tx));
        rx
    }

    /// Clients following the logs.
    pub fn followers(&self) -> usize {
        self.reader.locked().as_ref().map_or(0, |tx| tx.receiver_count())
    }

    /// Readers of the store for them.
    pub fn readers(&self) -> u64 {
        self.readers.load(Ordering::Relaxed)
    }

    /// Whether the reader of `tx` is to stop: no one follows. Decided under the lock
    /// [`Hub::follow`] takes, so a follower arriving meanwhile starts a reader of its own.
    fn unfollowed(&self, tx: &broadcast::Sender<Batch>) -> bool {
        let mut reader = self.reader.locked();
        if tx.receiver_count() > 0 {
            return false;
        }
        release(&mut reader, tx);
        true
    }

    /// The reader of `tx` stops: once it drops `tx`, its followers' streams end.
    fn stopped(&self, tx: &broadcast::Sender<Batch>) {
        release(&mut self.reader.locked(), tx);
        self.readers.fetch_sub(1, Ordering::Relaxed);
    }
}

fn release(reader: &mut Option<broadcast::Sender<Batch>>, tx: &broadcast::Sender<Batch>) {
    if reader.as_ref().is_some_and(|r| r.same_channel(tx)) {
        *reader = None;
    }
}

/// Reads what is new every [`POLL`] and hands it on, until no one follows, the store
/// fails (the followers' streams end) or the daemon stops.
async fn read(shared: Arc<Shared>, tx: broadcast::Sender<Batch>) {
    let start = SystemTime::now();
    let mut sent: BTreeSet<LogKey> = BTreeSet::new();
    let mut query = LogQuery {
        limit: PAGE,
        ..LogQuery::default()
    };
    'polls: loop {
        if shared.tail.unfollowed(&tx) {
            break;
        }
        let since = start.max(SystemTime::now().checked_sub(LOOKBACK).unwrap_or(start));
        query.from = Some(since);
        query.after = None;
        sent = sent.split_off(&LogKey {
            time: since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            job: 0,
            seq: 0,
        });
        loop {
            let page = match shared.store.logs(&query).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "reading log records to follow failed; the live tails end");
                    break 'polls;
                }
            };
            let full = page.len() == PAGE;
            query.after = page.last().map(|(k, _)| *k);
            let new: Vec<_> = page.into_iter().filter(|(k, _)| sent.insert(*k)).collect();
            if !new.is_empty() && tx.send(Arc::new(new)).is_err() {
                continue 'polls; // no one follows now
            }
            if !full {
                break;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shared.stopping.cancelled() => break,
        }
    }
    shared.tail.stopped(&tx);
}
