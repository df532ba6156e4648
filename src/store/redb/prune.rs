//! Retention in the redb store: one bounded batch per transaction, run by the writer
//! thread between group commits. Job ids are creation times, so old executions are a
//! prefix of the executions table; unfinished ones are passed over (recovery needs them).

use super::tables::{Tables, WAL_APPLIED};
use super::{Db, ExecutionHead, UNFINISHED, nanos, rows, status_code, write_err};
use crate::store::{JobId, Pruned, WriteError};
use redb::ReadableTable;
use std::collections::HashMap;
use std::time::SystemTime;

/// Log records one batch may delete on their own, per execution it may delete.
const SWEEP_PER_EXECUTION: usize = 16;

/// One prune batch (see [`crate::store::Store::prune`]) in one durable transaction, which
/// takes over every batch of the write-ahead log up to `applied`.
pub(super) fn prune(db: &Db, cutoff: SystemTime, max_executions: usize, applied: u64) -> Result<Pruned, WriteError> {
    let mut pruned = Pruned::default();
    let txn = db.file.begin_write().map_err(write_err)?;
    {
        let mut tables = Tables::new(&txn);

        // Job ids are creation times, so the old executions are a prefix of the table.
        // Unfinished ones are passed over each time; recovery keeps them few.
        let mut doomed = Vec::new();
        for item in tables
            .executions()?
            .range(..JobId::lower_bound(cutoff).0)
            .map_err(write_err)?
        {
            if doomed.len() >= max_executions {
                break;
            }
            let (id, row) = item.map_err(write_err)?;
            let head: ExecutionHead =
                rows::head(&db.names, row.value()).map_err(|e| WriteError::Backend(e.to_string()))?;
            if head.status.is_final() {
                doomed.push((id.value(), head));
            }
        }
        for (id, head) in &doomed {
            let id = *id;
            tables.executions()?.remove(id).map_err(write_err)?;
            tables
                .by_status()?
                .remove((status_code(head.status), id))
                .map_err(write_err)?;
            tables
                .by_flow_status()?
                .remove((head.flow.as_str(), status_code(head.status), id))
                .map_err(write_err)?;
            tables
                .attempts()?
                .retain_in((id, 0)..=(id, u32::MAX), |_, _| false)
                .map_err(write_err)?;
            tables
                .steps()?
                .retain_in((id, 0, 0)..=(id, u32::MAX, u32::MAX), |_, _| false)
                .map_err(write_err)?;
            tables
                .payloads()?
                .retain_in((id, 0, 0, 0)..=(id, u32::MAX, u32::MAX, u8::MAX), |_, _| false)
                .map_err(write_err)?;
            let mut records = Vec::new();
            for item in tables
                .logs_by_job()?
                .range((id, 0, 0)..=(id, u64::MAX, u32::MAX))
                .map_err(write_err)?
            {
                let (_, t, seq) = item.map_err(write_err)?.0.value();
                records.push((t, seq));
            }
            for (t, seq) in records {
                tables.logs_by_job()?.remove((id, t, seq)).map_err(write_err)?;
                if tables.logs()?.remove((t, id, seq)).map_err(write_err)?.is_some() {
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
        let mut examined = 0;
        let (logs, by_status) = tables.logs_and_by_status()?;
        let old = logs.range((0, 0, 0)..(nanos(cutoff), 0, 0)).map_err(write_err)?;
        for item in old.take(limit.saturating_mul(4)) {
            if records.len() >= limit {
                break;
            }
            examined += 1;
            let (t, job, seq) = item.map_err(write_err)?.0.value();
            let keep = match unfinished.get(&job) {
                Some(keep) => *keep,
                None => {
                    let mut keep = false;
                    for code in UNFINISHED {
                        keep |= by_status.get((code, job)).map_err(write_err)?.is_some();
                    }
                    unfinished.insert(job, keep);
                    keep
                }
            };
            if !keep {
                records.push((t, job, seq));
            }
        }
        // Either bound reached: the next batch may find more.
        pruned.more = doomed.len() >= max_executions || records.len() >= limit || examined >= limit.saturating_mul(4);
        for (t, job, seq) in records {
            tables.logs()?.remove((t, job, seq)).map_err(write_err)?;
            tables.logs_by_job()?.remove((job, t, seq)).map_err(write_err)?;
            pruned.log_records += 1;
        }
        tables.meta()?.insert(WAL_APPLIED, applied).map_err(write_err)?;
    }
    txn.commit().map_err(write_err)?;
    Ok(pruned)
}
