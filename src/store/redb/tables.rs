//! Every redb table, in one place. Keys are typed; rows are in the binary form of
//! `rows.rs` (JSON text before it), payloads JSON text (see `packing.rs`). Job ids are UUIDv7 as `u128`, so numeric order is creation order.
//! [`Tables`] opens them all in one write transaction.

use super::write_err;
use crate::store::WriteError;
use redb::{Table, TableDefinition, WriteTransaction};

/// job id → `Execution`.
pub(crate) const EXECUTIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("executions");
/// (job id, attempt) → `Attempt`: each run of an execution.
pub(crate) const ATTEMPTS: TableDefinition<(u128, u32), &[u8]> = TableDefinition::new("attempts");
/// (job id, attempt, step index) → `StepRow`.
pub(crate) const STEPS: TableDefinition<(u128, u32, u32), &[u8]> = TableDefinition::new("steps");
/// (job id, attempt, step index, payload kind) → JSON.
pub(crate) const PAYLOADS: TableDefinition<(u128, u32, u32, u8), &[u8]> = TableDefinition::new("payloads");
/// (time in ns since the epoch, job id, sequence) → `LogRow`.
pub(crate) const LOGS: TableDefinition<(u64, u128, u32), &[u8]> = TableDefinition::new("logs");
/// (job id, time in ns, sequence): the log records of one job.
pub(crate) const LOGS_BY_JOB: TableDefinition<(u128, u64, u32), ()> = TableDefinition::new("logs_by_job");
/// (flow name, job id): an index older stores kept, which `BY_FLOW_STATUS` holds too
/// (a flow's executions are its ranges over every status); dropped when such a store
/// opens.
pub(crate) const LEGACY_BY_FLOW: TableDefinition<(&str, u128), ()> = TableDefinition::new("executions_by_flow");
/// (status code, job id); also what recovery scans for unfinished executions.
pub(crate) const BY_STATUS: TableDefinition<(u8, u128), ()> = TableDefinition::new("executions_by_status");
/// (flow name, status code, job id): one flow's executions in one status are a range, so
/// the list filtered by flow and status reads only rows it returns, and by flow alone
/// merges its ranges. Every write and prune keeps it in step with `BY_STATUS`.
pub(crate) const BY_FLOW_STATUS: TableDefinition<(&str, u8, u128), ()> =
    TableDefinition::new("executions_by_flow_status");
/// flow name → the last fire time of its schedule, in ns since the epoch.
/// Strings every execution of a flow version repeats, numbered (see `names`).
pub(crate) const NAMES: TableDefinition<u32, &[u8]> = TableDefinition::new("names");
pub(crate) const SCHEDULES: TableDefinition<&str, u64> = TableDefinition::new("schedules");
/// The store's own counters: [`WAL_APPLIED`], the last write-ahead log batch the
/// database holds.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const WAL_APPLIED: &str = "wal_applied";
/// flow name → () for each flow an operator deactivated.
pub(crate) const INACTIVE_FLOWS: TableDefinition<&str, ()> = TableDefinition::new("inactive_flows");

/// Every table, opened in one write transaction.
pub(super) struct Tables<'txn> {
    pub(super) executions: Table<'txn, u128, &'static [u8]>,
    pub(super) inactive: Table<'txn, &'static str, ()>,
    pub(super) schedules: Table<'txn, &'static str, u64>,
    pub(super) attempts: Table<'txn, (u128, u32), &'static [u8]>,
    pub(super) steps: Table<'txn, (u128, u32, u32), &'static [u8]>,
    pub(super) payloads: Table<'txn, (u128, u32, u32, u8), &'static [u8]>,
    pub(super) logs: Table<'txn, (u64, u128, u32), &'static [u8]>,
    pub(super) logs_by_job: Table<'txn, (u128, u64, u32), ()>,
    pub(super) by_status: Table<'txn, (u8, u128), ()>,
    pub(super) by_flow_status: Table<'txn, (&'static str, u8, u128), ()>,
    pub(super) names: Table<'txn, u32, &'static [u8]>,
    pub(super) meta: Table<'txn, &'static str, u64>,
}

impl<'txn> Tables<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<Tables<'txn>, WriteError> {
        Ok(Tables {
            executions: txn.open_table(EXECUTIONS).map_err(write_err)?,
            inactive: txn.open_table(INACTIVE_FLOWS).map_err(write_err)?,
            schedules: txn.open_table(SCHEDULES).map_err(write_err)?,
            attempts: txn.open_table(ATTEMPTS).map_err(write_err)?,
            steps: txn.open_table(STEPS).map_err(write_err)?,
            payloads: txn.open_table(PAYLOADS).map_err(write_err)?,
            logs: txn.open_table(LOGS).map_err(write_err)?,
            logs_by_job: txn.open_table(LOGS_BY_JOB).map_err(write_err)?,
            by_status: txn.open_table(BY_STATUS).map_err(write_err)?,
            by_flow_status: txn.open_table(BY_FLOW_STATUS).map_err(write_err)?,
            names: txn.open_table(NAMES).map_err(write_err)?,
            meta: txn.open_table(META).map_err(write_err)?,
        })
    }
}
