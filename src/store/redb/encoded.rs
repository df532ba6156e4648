//! A write as the writer thread inserts it: its rows already encoded (on the caller's
//! task, so the one writer thread only inserts bytes), its payloads bundled per execution.

use super::names::{Names, Pending};
use super::packing::{self, Place};
use super::{nanos, rows, status_code};
use crate::store::{SHARED_ATTEMPT, Write, WriteError};
use crate::sync::Lock as _;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::SystemTime;

/// The shared configs (see `PayloadKey::shared_config`) a commit has stored since the
/// store opened, by their key's job id and step: every later execution of their flow version writes them
/// again, and is spared encoding and logging them. Starts empty: the first write of each
/// after an open finds it stored and leaves it.
#[derive(Default)]
pub(super) struct SharedConfigs(Mutex<HashSet<(u128, u32)>>);

impl SharedConfigs {
    fn contains(&self, key: (u128, u32)) -> bool {
        self.0.locked().contains(&key)
    }

    /// The shared configs among `writes`, applied by a commit that succeeded.
    pub(super) fn stored<'a>(&self, writes: impl IntoIterator<Item = &'a Encoded>) {
        let mut set = self.0.locked();
        for w in writes {
            if let Encoded::Payload { key, .. } = w
                && key.1 == SHARED_ATTEMPT
            {
                set.insert((key.0, key.2));
            }
        }
    }
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
        /// Told apart from records of the same job and time; numbered by the writer.
        seq: u32,
        bytes: Vec<u8>,
    },
}

/// Encodes `writes`, refusing a payload over `max_payload` bytes. Two or more payloads
/// of one execution become one bundle.
pub(super) fn encode(
    writes: Vec<Write>,
    max_payload: usize,
    names: &Names,
    shared: &SharedConfigs,
) -> Result<Vec<Encoded>, WriteError> {
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
            Write::Payload { key, .. }
                if key.attempt == SHARED_ATTEMPT && shared.contains((key.job_id.0, key.step)) => {}
            Write::Payload { key, value, text } => {
                let bytes = match text {
                    Some(text) => text.as_bytes().to_vec(),
                    None => json(&value),
                };
                if bytes.len() > max_payload {
                    return Err(WriteError::PayloadTooLarge {
                        kind: key.kind.name(),
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
                        seq: 0,
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
