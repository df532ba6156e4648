//! Every redb table, in one place. Keys are typed; rows are in the binary form of
//! `rows.rs` (JSON text before it), payloads JSON text (see `packing.rs`). Job ids are UUIDv7 as `u128`, so numeric order is creation order.
//! [`Tables`] opens them in a write transaction as they are used.

use super::write_err;
use crate::store::WriteError;
use redb::{Key, Table, TableDefinition, Value, WriteTransaction};

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

/// The tables of one write transaction, each opened when first asked for: a commit
/// flushes (and checksums the dirty pages of) every table opened in it, and most commits
/// touch half of them.
macro_rules! tables {
    ($($field:ident: $def:ident, $key:ty, $value:ty;)*) => {
        pub(super) struct Tables<'txn> {
            txn: &'txn WriteTransaction,
            $($field: Option<Table<'txn, $key, $value>>,)*
        }

        impl<'txn> Tables<'txn> {
            pub(super) fn new(txn: &'txn WriteTransaction) -> Tables<'txn> {
                Tables { txn, $($field: None,)* }
            }

            /// Opens every table, creating those the database does not have yet.
            pub(super) fn open_all(&mut self) -> Result<(), WriteError> {
                $(self.$field()?;)*
                Ok(())
            }

            $(pub(super) fn $field(&mut self) -> Result<&mut Table<'txn, $key, $value>, WriteError> {
                opened(self.txn, &mut self.$field, $def)
            })*
        }
    };
}

tables! {
    executions: EXECUTIONS, u128, &'static [u8];
    inactive: INACTIVE_FLOWS, &'static str, ();
    schedules: SCHEDULES, &'static str, u64;
    attempts: ATTEMPTS, (u128, u32), &'static [u8];
    steps: STEPS, (u128, u32, u32), &'static [u8];
    payloads: PAYLOADS, (u128, u32, u32, u8), &'static [u8];
    logs: LOGS, (u64, u128, u32), &'static [u8];
    logs_by_job: LOGS_BY_JOB, (u128, u64, u32), ();
    by_status: BY_STATUS, (u8, u128), ();
    by_flow_status: BY_FLOW_STATUS, (&'static str, u8, u128), ();
    names: NAMES, u32, &'static [u8];
    meta: META, &'static str, u64;
}

/// The table in `slot`, opened in `txn` first if it is not yet.
fn opened<'s, 'txn, K: Key + 'static, V: Value + 'static>(
    txn: &'txn WriteTransaction,
    slot: &'s mut Option<Table<'txn, K, V>>,
    def: TableDefinition<K, V>,
) -> Result<&'s mut Table<'txn, K, V>, WriteError> {
    let table = match slot.take() {
        Some(t) => t,
        None => txn.open_table(def).map_err(write_err)?,
    };
    Ok(slot.insert(table))
}

impl<'txn> Tables<'txn> {
    /// The log records and the status index at once, for a scan of the one that looks
    /// rows up in the other.
    #[allow(clippy::type_complexity)]
    pub(super) fn logs_and_by_status(
        &mut self,
    ) -> Result<
        (
            &mut Table<'txn, (u64, u128, u32), &'static [u8]>,
            &mut Table<'txn, (u8, u128), ()>,
        ),
        WriteError,
    > {
        let txn = self.txn;
        Ok((
            opened(txn, &mut self.logs, LOGS)?,
            opened(txn, &mut self.by_status, BY_STATUS)?,
        ))
    }
}
