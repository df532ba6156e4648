//! The whole store read out in key order, a page at a time, as the writes that would make
//! it again (what `flowd store copy` moves into another backend), and its row counts.

use super::tables::{ATTEMPTS, EXECUTIONS, INACTIVE_FLOWS, LOGS, PAYLOADS, SCHEDULES, STEPS};
use super::{RedbStore, decode, packing, read_err, rows};
use crate::store::{Counts, JobId, PayloadKey, PayloadKind, ReadError, Write};
use redb::{ReadableTable, ReadableTableMetadata};
use std::ops::Bound::{Excluded, Unbounded};
use std::time::{Duration, UNIX_EPOCH};

/// The parts of a store, in the order they are exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Executions,
    Attempts,
    Steps,
    Payloads,
    LogRecords,
    /// Inactive flows and schedules' last fire times (a few rows, in one page).
    Flows,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Executions => "executions",
            Part::Attempts => "attempts",
            Part::Steps => "steps",
            Part::Payloads => "payloads",
            Part::LogRecords => "log records",
            Part::Flows => "flow states",
        }
    }

    fn next(self) -> Option<Part> {
        match self {
            Part::Executions => Some(Part::Attempts),
            Part::Attempts => Some(Part::Steps),
            Part::Steps => Some(Part::Payloads),
            Part::Payloads => Some(Part::LogRecords),
            Part::LogRecords => Some(Part::Flows),
            Part::Flows => None,
        }
    }

    /// How many rows of this part `counts` holds.
    pub fn of(self, counts: &Counts) -> u64 {
        match self {
            Part::Executions => counts.executions,
            Part::Attempts => counts.attempts,
            Part::Steps => counts.steps,
            Part::Payloads => counts.payloads,
            Part::LogRecords => counts.log_records,
            Part::Flows => counts.inactive_flows + counts.schedules,
        }
    }
}

/// The last key read, in the part being read.
#[derive(Debug, Clone, Copy)]
enum Key {
    Execution(u128),
    Attempt((u128, u32)),
    Step((u128, u32, u32)),
    Payload((u128, u32, u32, u8)),
    Log((u64, u128, u32)),
}

/// Where an export stands.
#[derive(Debug, Clone)]
pub struct Export {
    part: Option<Part>,
    after: Option<Key>,
}

impl Default for Export {
    fn default() -> Self {
        Export {
            part: Some(Part::Executions),
            after: None,
        }
    }
}

/// One page of an export: the part it belongs to, its writes, and how many rows they are.
pub struct Page {
    pub part: Part,
    pub writes: Vec<Write>,
    pub rows: usize,
}

/// How many payloads the table holds, each of a bundle's counted (so the count is the
/// other backend's, which keeps each payload in a row of its own).
fn payload_places(t: &impl ReadableTable<(u128, u32, u32, u8), &'static [u8]>) -> Result<u64, ReadError> {
    let mut n = 0;
    for item in t.iter().map_err(read_err)? {
        let (k, v) = item.map_err(read_err)?;
        n += match k.value().3 {
            packing::BUNDLE => packing::unpack_bundle(v.value())?.len() as u64,
            _ => 1,
        };
    }
    Ok(n)
}

fn kind(code: u8) -> Result<PayloadKind, ReadError> {
    [PayloadKind::Trigger, PayloadKind::Config, PayloadKind::Output]
        .into_iter()
        .find(|k| k.code() == code)
        .ok_or_else(|| ReadError::Corrupt {
            table: "payloads",
            detail: format!("payload kind {code}"),
        })
}

impl RedbStore {
    /// The next page of at most `limit` rows after `at` (which moves past it); `None`
    /// when everything was read. Each page is read in a transaction of its own: export a
    /// store no daemon is writing to.
    pub fn export_page(&self, at: &mut Export, limit: usize) -> Result<Option<Page>, ReadError> {
        let limit = limit.max(1);
        let r = self.db.read().map_err(read_err)?;
        loop {
            let Some(part) = at.part else {
                return Ok(None);
            };
            let mut writes = Vec::new();
            let mut last = None;
            let rows;
            // Rows read from the table, where one row may be written as several.
            let mut read = 0;
            match part {
                Part::Executions => {
                    let t = r.open_table(EXECUTIONS).map_err(read_err)?;
                    let from = match at.after {
                        Some(Key::Execution(k)) => Excluded(k),
                        _ => Unbounded,
                    };
                    for item in t.range::<u128>((from, Unbounded)).map_err(read_err)?.take(limit) {
                        let (k, v) = item.map_err(read_err)?;
                        writes.push(Write::Execution(rows::decode(&self.db.names, v.value())?));
                        last = Some(Key::Execution(k.value()));
                    }
                    rows = writes.len();
                }
                Part::Attempts => {
                    let t = r.open_table(ATTEMPTS).map_err(read_err)?;
                    let from = match at.after {
                        Some(Key::Attempt(k)) => Excluded(k),
                        _ => Unbounded,
                    };
                    for item in t.range::<(u128, u32)>((from, Unbounded)).map_err(read_err)?.take(limit) {
                        let (k, v) = item.map_err(read_err)?;
                        let k = k.value();
                        writes.push(Write::Attempt {
                            job_id: JobId(k.0),
                            row: rows::decode(&self.db.names, v.value())?,
                        });
                        last = Some(Key::Attempt(k));
                    }
                    rows = writes.len();
                }
                Part::Steps => {
                    let t = r.open_table(STEPS).map_err(read_err)?;
                    let from = match at.after {
                        Some(Key::Step(k)) => Excluded(k),
                        _ => Unbounded,
                    };
                    for item in t
                        .range::<(u128, u32, u32)>((from, Unbounded))
                        .map_err(read_err)?
                        .take(limit)
                    {
                        let (k, v) = item.map_err(read_err)?;
                        let k = k.value();
                        writes.push(Write::Step {
                            job_id: JobId(k.0),
                            row: rows::decode(&self.db.names, v.value())?,
                        });
                        last = Some(Key::Step(k));
                    }
                    rows = writes.len();
                }
                Part::Payloads => {
                    let t = r.open_table(PAYLOADS).map_err(read_err)?;
                    let from = match at.after {
                        Some(Key::Payload(k)) => Excluded(k),
                        _ => Unbounded,
                    };
                    for item in t
                        .range::<(u128, u32, u32, u8)>((from, Unbounded))
                        .map_err(read_err)?
                        .take(limit)
                    {
                        let (k, v) = item.map_err(read_err)?;
                        let k = k.value();
                        read += 1;
                        last = Some(Key::Payload(k));
                        // A bundle holds several of one execution's payloads: each is
                        // written on its own in the other backend.
                        let places = match k.3 {
                            packing::BUNDLE => packing::unpack_bundle(v.value())?,
                            _ => vec![((k.1, k.2, k.3), packing::unpack(v.value())?.into_owned())],
                        };
                        for ((attempt, step, code), json) in places {
                            let key = PayloadKey {
                                job_id: JobId(k.0),
                                attempt,
                                step,
                                kind: kind(code)?,
                            };
                            writes.push(Write::Payload {
                                key,
                                value: decode("payloads", &json)?,
                                text: None,
                            });
                        }
                    }
                    rows = writes.len();
                }
                Part::LogRecords => {
                    let t = r.open_table(LOGS).map_err(read_err)?;
                    let from = match at.after {
                        Some(Key::Log(k)) => Excluded(k),
                        _ => Unbounded,
                    };
                    let mut records = Vec::new();
                    for item in t
                        .range::<(u64, u128, u32)>((from, Unbounded))
                        .map_err(read_err)?
                        .take(limit)
                    {
                        let (k, v) = item.map_err(read_err)?;
                        records.push(rows::decode(&self.db.names, v.value())?);
                        last = Some(Key::Log(k.value()));
                    }
                    rows = records.len();
                    if !records.is_empty() {
                        writes.push(Write::Logs(records));
                    }
                }
                Part::Flows => {
                    let t = r.open_table(INACTIVE_FLOWS).map_err(read_err)?;
                    for item in t.iter().map_err(read_err)? {
                        let (k, _) = item.map_err(read_err)?;
                        writes.push(Write::FlowActive {
                            flow: k.value().to_string(),
                            active: false,
                        });
                    }
                    let t = r.open_table(SCHEDULES).map_err(read_err)?;
                    for item in t.iter().map_err(read_err)? {
                        let (k, v) = item.map_err(read_err)?;
                        writes.push(Write::LastFire {
                            flow: k.value().to_string(),
                            at: UNIX_EPOCH + Duration::from_nanos(v.value()),
                        });
                    }
                    rows = writes.len();
                }
            }
            let taken = if part == Part::Payloads { read } else { rows };
            if taken < limit || part == Part::Flows {
                at.part = part.next();
                at.after = None;
            } else {
                at.after = last;
            }
            if rows > 0 {
                return Ok(Some(Page { part, writes, rows }));
            }
        }
    }

    /// How many rows each part of the store holds.
    pub fn counts(&self) -> Result<Counts, ReadError> {
        let r = self.db.read().map_err(read_err)?;
        let len = |n: Result<u64, redb::StorageError>| n.map_err(read_err);
        Ok(Counts {
            executions: len(r.open_table(EXECUTIONS).map_err(read_err)?.len())?,
            attempts: len(r.open_table(ATTEMPTS).map_err(read_err)?.len())?,
            steps: len(r.open_table(STEPS).map_err(read_err)?.len())?,
            payloads: payload_places(&r.open_table(PAYLOADS).map_err(read_err)?)?,
            log_records: len(r.open_table(LOGS).map_err(read_err)?.len())?,
            inactive_flows: len(r.open_table(INACTIVE_FLOWS).map_err(read_err)?.len())?,
            schedules: len(r.open_table(SCHEDULES).map_err(read_err)?.len())?,
        })
    }
}
