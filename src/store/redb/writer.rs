//! The one writer thread: it owns every write transaction and commits whatever queued up
//! while the previous commit was syncing (group commit), so under load many executions
//! share one fsync and alone a write commits at once; prune batches go through it too,
//! each in a transaction of its own. Records are encoded on the caller's task: the
//! thread only inserts bytes.

use super::names::{Names, Pending};
use super::packing::{self, Place};
use super::tables::Tables;
use super::{Db, nanos, rows, status_code, write_err};
use crate::store::{PayloadKind, Pruned, SHARED_ATTEMPT, Write, WriteError};
use redb::ReadableTable;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::SystemTime;
use tokio::sync::oneshot;

/// The most requests one transaction takes; the rest wait for the next commit.
const MAX_BATCH: usize = 4096;

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

/// A write with its records already encoded, on the caller's task: the one writer thread
/// only inserts bytes.
pub(super) enum Encoded {
    /// A numbered value rows of this write refer to that no commit has stored yet.
    Name(Pending),
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
    /// A fire time taken: its request is refused when a fire at or after it is stored.
    Fire {
        flow: String,
        at: SystemTime,
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
    /// Payloads of one execution stored together (see `packing`), under the first one's
    /// key with the kind byte `BUNDLE`.
    Bundle {
        key: (u128, u32, u32, u8),
        bytes: Vec<u8>,
    },
    Log {
        time: u64,
        job: u128,
        bytes: Vec<u8>,
    },
}

/// Encodes `writes`, refusing a payload over `max_payload` bytes. Two or more payloads
/// of one execution become one bundle.
pub(super) fn encode(writes: Vec<Write>, max_payload: usize, names: &Names) -> Result<Vec<Encoded>, WriteError> {
    let mut out = Vec::with_capacity(writes.len());
    let mut pending = Vec::new();
    // Per execution, its payloads by place (a later write of a place replaces an earlier).
    let mut payloads: BTreeMap<u128, BTreeMap<Place, Vec<u8>>> = BTreeMap::new();
    for w in writes {
        match w {
            Write::Execution(e) => out.push(Encoded::Execution {
                id: e.job_id.0,
                status: status_code(e.status),
                bytes: rows::encode(&e, names, &mut pending),
                flow: e.flow,
            }),
            Write::FlowActive { flow, active } => out.push(Encoded::FlowActive { flow, active }),
            Write::LastFire { flow, at } => out.push(Encoded::LastFire { flow, at: nanos(at) }),
            Write::Fire { flow, at } => out.push(Encoded::Fire { flow, at }),
            // Claims live in memory beside the database (see `RedbStore::write`).
            Write::Claim { .. } | Write::Fence { .. } => {}
            Write::Attempt { job_id, row } => out.push(Encoded::Attempt {
                key: (job_id.0, row.attempt),
                bytes: rows::encode(&row, names, &mut pending),
            }),
            Write::Step { job_id, row } => out.push(Encoded::Step {
                key: (job_id.0, row.attempt, row.index),
                bytes: rows::encode(&row, names, &mut pending),
            }),
            Write::Payload { key, value } => {
                let bytes = json(&value);
                if bytes.len() > max_payload {
                    let kind = match key.kind {
                        PayloadKind::Trigger => "trigger",
                        PayloadKind::Config => "config",
                        PayloadKind::Output => "output",
                    };
                    return Err(WriteError::PayloadTooLarge {
                        kind,
                        size: bytes.len(),
                        max: max_payload,
                    });
                }
                let place = (key.attempt, key.step, key.kind.code());
                if key.attempt == SHARED_ATTEMPT {
                    // Kept once for every execution of a flow version: never in a bundle.
                    out.push(Encoded::Payload {
                        key: (key.job_id.0, place.0, place.1, place.2),
                        bytes: packing::pack(bytes),
                    });
                } else {
                    payloads.entry(key.job_id.0).or_default().insert(place, bytes);
                }
            }
            Write::Logs(rows) => {
                for row in rows {
                    out.push(Encoded::Log {
                        time: nanos(row.time),
                        job: row.job_id.0,
                        bytes: rows::encode(&row, names, &mut pending),
                    });
                }
            }
        }
    }
    for (job, places) in payloads {
        let mut places: Vec<(Place, Vec<u8>)> = places.into_iter().collect();
        let (first, _) = places[0];
        if places.len() == 1 {
            let ((attempt, step, kind), json) = places.pop().expect("one payload");
            out.push(Encoded::Payload {
                key: (job, attempt, step, kind),
                bytes: packing::pack(json),
            });
        } else {
            out.push(Encoded::Bundle {
                key: (job, first.0, first.1, packing::BUNDLE),
                bytes: packing::pack_bundle(&places),
            });
        }
    }
    out.extend(pending.into_iter().map(Encoded::Name));
    Ok(out)
}

pub(super) fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("store records serialize")
}

pub(super) fn writer_loop(db: &Db, rx: mpsc::Receiver<Request>, counters: &Counters) {
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
                let _ = p.done.send(super::prune::prune(db, p.cutoff, p.max_executions));
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
        let results = apply(db, &batch, &mut seq);
        // Only an applied request's names were inserted: a refused one's stay pending,
        // carried again by the next write that refers to them.
        if let Ok(each) = &results {
            db.names
                .stored(batch.iter().zip(each).filter(|(_, r)| r.is_ok()).flat_map(|(r, _)| {
                    r.writes.iter().filter_map(|w| match w {
                        Encoded::Name((id, _)) => Some(*id),
                        _ => None,
                    })
                }));
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
}

/// Why `request` may not apply to what `tables` hold now: a fire time already taken.
fn refusal(tables: &Tables, request: &WriteRequest) -> Result<Option<WriteError>, WriteError> {
    for w in &request.writes {
        if let Encoded::Fire { flow, at } = w
            && let Some(last) = tables.schedules.get(flow.as_str()).map_err(write_err)?
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

/// Applies a batch in one durable transaction; per request, whether it applied (a
/// request refused on its own leaves the others to commit).
fn apply(db: &Db, batch: &[WriteRequest], seq: &mut u32) -> Result<Vec<Result<(), WriteError>>, WriteError> {
    let txn = db.begin_write().map_err(write_err)?;
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut tables = Tables::open(&txn)?;
        for request in batch {
            if let Some(refused) = refusal(&tables, request)? {
                results.push(Err(refused));
                continue;
            }
            results.push(Ok(()));
            for w in &request.writes {
                match w {
                    Encoded::Name((id, value)) => {
                        tables.names.insert(*id, &**value).map_err(write_err)?;
                    }
                    Encoded::Execution {
                        id,
                        flow,
                        status,
                        bytes,
                    } => {
                        let old = tables.executions.insert(*id, bytes.as_slice()).map_err(write_err)?;
                        let old = match old {
                            Some(old) => Some(
                                rows::head(&db.names, old.value()).map_err(|e| WriteError::Backend(e.to_string()))?,
                            ),
                            None => None,
                        };
                        match old {
                            Some(old) if status_code(old.status) == *status => {}
                            Some(old) => {
                                let s = status_code(old.status);
                                tables.by_status.remove((s, *id)).map_err(write_err)?;
                                tables.by_status.insert((*status, *id), ()).map_err(write_err)?;
                                tables
                                    .by_flow_status
                                    .remove((old.flow.as_str(), s, *id))
                                    .map_err(write_err)?;
                                tables
                                    .by_flow_status
                                    .insert((flow.as_str(), *status, *id), ())
                                    .map_err(write_err)?;
                            }
                            // A new execution: its flow never changes, so it is indexed once.
                            None => {
                                tables.by_status.insert((*status, *id), ()).map_err(write_err)?;
                                tables
                                    .by_flow_status
                                    .insert((flow.as_str(), *status, *id), ())
                                    .map_err(write_err)?;
                            }
                        }
                    }
                    Encoded::FlowActive { flow, active } => {
                        if *active {
                            tables.inactive.remove(flow.as_str()).map_err(write_err)?;
                        } else {
                            tables.inactive.insert(flow.as_str(), ()).map_err(write_err)?;
                        }
                    }
                    Encoded::LastFire { flow, at } => {
                        tables.schedules.insert(flow.as_str(), *at).map_err(write_err)?;
                    }
                    Encoded::Fire { flow, at } => {
                        tables.schedules.insert(flow.as_str(), nanos(*at)).map_err(write_err)?;
                    }
                    Encoded::Attempt { key, bytes } => {
                        tables.attempts.insert(*key, bytes.as_slice()).map_err(write_err)?;
                    }
                    Encoded::Step { key, bytes } => {
                        tables.steps.insert(*key, bytes.as_slice()).map_err(write_err)?;
                    }
                    Encoded::Payload { key, bytes } => {
                        // A shared config is the same each time: written once, its page left
                        // alone by every later execution.
                        let shared = key.1 == SHARED_ATTEMPT;
                        if !shared || tables.payloads.get(*key).map_err(write_err)?.is_none() {
                            tables.payloads.insert(*key, bytes.as_slice()).map_err(write_err)?;
                        }
                    }
                    Encoded::Log { time, job, bytes } => {
                        *seq = seq.wrapping_add(1);
                        tables
                            .logs
                            .insert((*time, *job, *seq), bytes.as_slice())
                            .map_err(write_err)?;
                        tables.logs_by_job.insert((*job, *time, *seq), ()).map_err(write_err)?;
                    }
                    Encoded::Bundle { key, bytes } => {
                        // Places are written once, so two bundles meet at one key only when
                        // a later write starts at the same step: the two are merged.
                        let merged = match tables.payloads.get(*key).map_err(write_err)? {
                            Some(old) => {
                                let mut places: BTreeMap<Place, Vec<u8>> = packing::unpack_bundle(old.value())
                                    .map_err(|e| WriteError::Backend(e.to_string()))?
                                    .into_iter()
                                    .collect();
                                let new =
                                    packing::unpack_bundle(bytes).map_err(|e| WriteError::Backend(e.to_string()))?;
                                places.extend(new);
                                Some(packing::pack_bundle(&places.into_iter().collect::<Vec<_>>()))
                            }
                            None => None,
                        };
                        let bytes = merged.as_deref().unwrap_or(bytes.as_slice());
                        tables.payloads.insert(*key, bytes).map_err(write_err)?;
                    }
                }
            }
        }
    }
    txn.commit().map_err(write_err)?;
    Ok(results)
}
