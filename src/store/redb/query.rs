//! Reads of the redb store: one execution and its attempts, steps and payloads; the
//! execution list through the narrowest index a query allows, read newest first and
//! lazily, so a page costs what it returns; the list's histogram counted off the status
//! indexes; log searches by time or by job, with a byte prefilter for message substrings;
//! what recovery and the scheduler ask.

use super::tables::{
    ATTEMPTS, BY_FLOW_STATUS, BY_STATUS, EXECUTIONS, INACTIVE_FLOWS, LOGS, LOGS_BY_JOB, PAYLOADS, SCHEDULES, STEPS,
};
use super::{Db, UNFINISHED, decode, nanos, read_err, status_code};
use super::{packing, rows};
use crate::store::{Attempt, Execution, JobId, ListQuery, LogKey, LogQuery, LogRow, PayloadKey, ReadError, StepRow};
use redb::ReadableTable;
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// `text` as serde_json writes it inside a string. Its escaping maps each character on its
/// own, so a stored record (written by [`json`]) whose message contains `text` holds these
/// bytes; the converse need not hold (another field may), hence the full check after.
pub(super) fn escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).expect("a string serializes");
    quoted[1..quoted.len() - 1].to_string()
}

/// Whether the stored record `bytes` may hold `needle`: serde_json writes UTF-8 only, so a
/// record that is not is left to decoding to report.
pub(super) fn holds(bytes: &[u8], needle: &str) -> bool {
    std::str::from_utf8(bytes).map_or(true, |text| text.contains(needle))
}

/// Job ids read off an index, newest first.
type IdIter = Box<dyn Iterator<Item = Result<u128, ReadError>>>;

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

pub(super) fn execution(db: &Db, id: JobId) -> Result<Option<Execution>, ReadError> {
    let r = db.read().map_err(read_err)?;
    let t = r.open_table(EXECUTIONS).map_err(read_err)?;
    match t.get(id.0).map_err(read_err)? {
        Some(v) => Ok(Some(rows::decode(&db.names, v.value())?)),
        None => Ok(None),
    }
}

pub(super) fn inactive_flows(db: &Db) -> Result<std::collections::BTreeSet<String>, ReadError> {
    let r = db.read().map_err(read_err)?;
    let t = r.open_table(INACTIVE_FLOWS).map_err(read_err)?;
    let mut out = std::collections::BTreeSet::new();
    for item in t.iter().map_err(read_err)? {
        out.insert(item.map_err(read_err)?.0.value().to_string());
    }
    Ok(out)
}

pub(super) fn last_fire(db: &Db, flow: &str) -> Result<Option<SystemTime>, ReadError> {
    let r = db.read().map_err(read_err)?;
    let t = r.open_table(SCHEDULES).map_err(read_err)?;
    Ok(t.get(flow)
        .map_err(read_err)?
        .map(|v| UNIX_EPOCH + std::time::Duration::from_nanos(v.value())))
}

pub(super) fn attempts(db: &Db, id: JobId) -> Result<Vec<Attempt>, ReadError> {
    let r = db.read().map_err(read_err)?;
    let t = r.open_table(ATTEMPTS).map_err(read_err)?;
    let mut out = Vec::new();
    for item in t.range((id.0, 0)..=(id.0, u32::MAX)).map_err(read_err)? {
        let (_, v) = item.map_err(read_err)?;
        out.push(rows::decode(&db.names, v.value())?);
    }
    Ok(out)
}

pub(super) fn steps(db: &Db, id: JobId) -> Result<Vec<StepRow>, ReadError> {
    let r = db.read().map_err(read_err)?;
    let t = r.open_table(STEPS).map_err(read_err)?;
    let mut out = Vec::new();
    for item in t.range((id.0, 0, 0)..=(id.0, u32::MAX, u32::MAX)).map_err(read_err)? {
        let (_, v) = item.map_err(read_err)?;
        out.push(rows::decode(&db.names, v.value())?);
    }
    Ok(out)
}

pub(super) fn payload(db: &Db, key: PayloadKey) -> Result<Option<Value>, ReadError> {
    let r = db.read().map_err(read_err)?;
    let t = r.open_table(PAYLOADS).map_err(read_err)?;
    let (job, place) = (key.job_id.0, (key.attempt, key.step, key.kind.code()));
    if let Some(v) = t.get((job, place.0, place.1, place.2)).map_err(read_err)? {
        return Ok(Some(decode("payloads", &packing::unpack(v.value())?)?));
    }
    if key.attempt == crate::store::SHARED_ATTEMPT {
        return Ok(None);
    }
    // Else in one of the execution's bundles (a place is written once; were it in two,
    // the later bundle holds the later write).
    let mut found = None;
    for item in t
        .range((job, 0, 0, 0)..=(job, u32::MAX, u32::MAX, u8::MAX))
        .map_err(read_err)?
    {
        let (k, v) = item.map_err(read_err)?;
        if k.value().3 != packing::BUNDLE {
            continue;
        }
        if let Some((_, json)) = db.last_bundle.entries(v.value())?.iter().find(|(p, _)| *p == place) {
            found = Some(json.clone());
        }
    }
    found.map(|json| decode("payloads", &json)).transpose()
}

pub(super) fn list(db: &Db, q: &ListQuery) -> Result<Vec<Execution>, ReadError> {
    let r = db.read().map_err(read_err)?;
    let executions = r.open_table(EXECUTIONS).map_err(read_err)?;
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
        (Some(flow), any_status) => {
            // A flow alone: its ranges over every status, merged.
            if any_status {
                codes = crate::status::ExecutionStatus::ALL
                    .iter()
                    .map(|s| status_code(*s))
                    .collect();
            }
            let t = r.open_table(BY_FLOW_STATUS).map_err(read_err)?;
            let mut ranges = Vec::new();
            for c in codes {
                let range = t
                    .range((flow.as_str(), c, lo)..(flow.as_str(), c, hi))
                    .map_err(read_err)?;
                ranges.push(Box::new(range.rev().map(|i| i.map(|(k, _)| k.value().2).map_err(read_err))) as IdIter);
            }
            newest_first(ranges)
        }
        (None, false) => {
            let t = r.open_table(BY_STATUS).map_err(read_err)?;
            let mut ranges = Vec::new();
            for c in codes {
                let range = t.range((c, lo)..(c, hi)).map_err(read_err)?;
                ranges.push(Box::new(range.rev().map(|i| i.map(|(k, _)| k.value().1).map_err(read_err))) as IdIter);
            }
            newest_first(ranges)
        }
        (None, true) => {
            let range = executions.range(lo..hi).map_err(read_err)?;
            let mut rows = Vec::new();
            for item in range.rev() {
                let (_, v) = item.map_err(read_err)?;
                let e: Execution = rows::decode(&db.names, v.value())?;
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
        if let Some(v) = executions.get(id?).map_err(read_err)? {
            let e: Execution = rows::decode(&db.names, v.value())?;
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

pub(super) fn histogram(db: &Db, q: &ListQuery, edges: &[SystemTime]) -> Result<Vec<[u64; 8]>, ReadError> {
    let mut out = vec![[0u64; 8]; edges.len().saturating_sub(1)];
    let (Some(first), Some(last)) = (edges.first(), edges.last()) else {
        return Ok(out);
    };
    let bounds: Vec<u128> = edges.iter().map(|t| JobId::lower_bound(*t).0).collect();
    // The list's own bounds (see `list`), within the buckets'.
    let lo = q
        .from
        .map_or(0, |t| JobId::lower_bound(t).0)
        .max(JobId::lower_bound(*first).0);
    let mut hi =
        q.to.map_or(u128::MAX, |t| JobId::lower_bound(t).0.saturating_add(1 << 80));
    hi = hi.min(JobId::lower_bound(*last).0);
    if let Some(before) = q.before {
        hi = hi.min(before.0);
    }
    if lo >= hi || out.is_empty() {
        return Ok(out);
    }
    // Within one range ids ascend, so the bucket only moves forward.
    let last_bucket = out.len() - 1;
    let count = |out: &mut Vec<[u64; 8]>, ids: &mut dyn Iterator<Item = Result<(u128, u8), ReadError>>| {
        let mut b = 0;
        for item in ids {
            let (id, code) = item?;
            while b < last_bucket && id >= bounds[b + 1] {
                b += 1;
            }
            out[b][usize::from(code)] += 1;
        }
        Ok::<(), ReadError>(())
    };
    let r = db.read().map_err(read_err)?;
    if q.project.is_some() || q.trigger_kind.is_some() {
        // Only the rows hold these: read them, through the flow's index when there is one.
        let executions = r.open_table(EXECUTIONS).map_err(read_err)?;
        let mut ids = executions.range(lo..hi).map_err(read_err)?.filter_map(|item| {
            let row = item.map_err(read_err).and_then(|(k, v)| {
                let e: Execution = rows::decode(&db.names, v.value())?;
                Ok((k.value(), e))
            });
            match row {
                Ok((id, e)) => q.keeps(&e).then(|| Ok((id, status_code(e.status)))),
                Err(e) => Some(Err(e)),
            }
        });
        count(&mut out, &mut ids)?;
        return Ok(out);
    }
    let mut codes: Vec<u8> = if q.statuses.is_empty() {
        crate::status::ExecutionStatus::ALL
            .iter()
            .map(|s| status_code(*s))
            .collect()
    } else {
        q.statuses.iter().map(|s| status_code(*s)).collect()
    };
    codes.sort_unstable();
    codes.dedup();
    for code in codes {
        match &q.flow {
            Some(flow) => {
                let t = r.open_table(BY_FLOW_STATUS).map_err(read_err)?;
                let range = t
                    .range((flow.as_str(), code, lo)..(flow.as_str(), code, hi))
                    .map_err(read_err)?;
                count(
                    &mut out,
                    &mut range.map(|i| i.map(|(k, _)| (k.value().2, code)).map_err(read_err)),
                )?;
            }
            None => {
                let t = r.open_table(BY_STATUS).map_err(read_err)?;
                let range = t.range((code, lo)..(code, hi)).map_err(read_err)?;
                count(
                    &mut out,
                    &mut range.map(|i| i.map(|(k, _)| (k.value().1, code)).map_err(read_err)),
                )?;
            }
        }
    }
    Ok(out)
}

pub(super) fn oldest(db: &Db) -> Result<Option<Execution>, ReadError> {
    let r = db.read().map_err(read_err)?;
    let executions = r.open_table(EXECUTIONS).map_err(read_err)?;
    match executions.first().map_err(read_err)? {
        Some((_, v)) => Ok(Some(rows::decode(&db.names, v.value())?)),
        None => Ok(None),
    }
}

pub(super) fn logs(db: &Db, q: &LogQuery) -> Result<Vec<(LogKey, LogRow)>, ReadError> {
    let r = db.read().map_err(read_err)?;
    let logs = r.open_table(LOGS).map_err(read_err)?;
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
    let needle = q.contains.as_deref().map(|n| (escaped(n), n.as_bytes()));
    let mut take = |key: LogKey, bytes: &[u8]| -> Result<bool, ReadError> {
        // A record whose bytes lack the substring (escaped, in a JSON record) cannot
        // match: only the rest is decoded (and checked in full).
        if let Some((escaped, raw)) = &needle {
            let may = if rows::is_binary(bytes) {
                memchr::memmem::find(bytes, raw).is_some()
            } else {
                holds(bytes, escaped)
            };
            if !may {
                return Ok(true);
            }
        }
        let row: LogRow = rows::decode(&db.names, bytes)?;
        if q.keeps(&row) {
            out.push((key, row));
        }
        Ok(out.len() < limit)
    };
    if let Some(job) = q.job_id {
        // One job's records through its index, still in time order.
        let by_job = r.open_table(LOGS_BY_JOB).map_err(read_err)?;
        let range = by_job
            .range((job.0, lo.time, 0)..=(job.0, hi.time, u32::MAX))
            .map_err(read_err)?;
        let keys = range.map(|i| i.map(|(k, _)| k.value()).map_err(read_err));
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
            if let Some(v) = logs.get((time, job.0, seq)).map_err(read_err)?
                && !take(key, v.value())?
            {
                break;
            }
        }
        return Ok(out);
    }
    let range = logs
        .range((lo.time, lo.job, lo.seq)..=(hi.time, hi.job, hi.seq))
        .map_err(read_err)?;
    let items: Box<dyn Iterator<Item = _>> = if q.newest_first {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    for item in items {
        let (k, v) = item.map_err(read_err)?;
        let (time, job, seq) = k.value();
        if !take(LogKey { time, job, seq }, v.value())? {
            break;
        }
    }
    Ok(out)
}

pub(super) fn unfinished(db: &Db) -> Result<Vec<Execution>, ReadError> {
    let r = db.read().map_err(read_err)?;
    let by_status = r.open_table(BY_STATUS).map_err(read_err)?;
    let executions = r.open_table(EXECUTIONS).map_err(read_err)?;
    let mut ids = Vec::new();
    for code in UNFINISHED {
        for item in by_status.range((code, 0)..=(code, u128::MAX)).map_err(read_err)? {
            ids.push(item.map_err(read_err)?.0.value().1);
        }
    }
    ids.sort_unstable();
    let mut out = Vec::new();
    for id in ids {
        if let Some(v) = executions.get(id).map_err(read_err)? {
            out.push(rows::decode(&db.names, v.value())?);
        }
    }
    Ok(out)
}
