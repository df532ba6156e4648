//! Every redb table, in one place. Keys are typed; values are JSON documents of the
//! model types. Job ids are UUIDv7 as `u128`, so numeric order is creation order.

use redb::TableDefinition;

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
/// (flow name, job id).
pub(crate) const BY_FLOW: TableDefinition<(&str, u128), ()> = TableDefinition::new("executions_by_flow");
/// (status code, job id); also what recovery scans for unfinished executions.
pub(crate) const BY_STATUS: TableDefinition<(u8, u128), ()> = TableDefinition::new("executions_by_status");
/// (flow name, status code, job id): one flow's executions in one status are a range, so
/// the list filtered by flow and status reads only rows it returns. Every write and prune
/// keeps it in step with `BY_FLOW` and `BY_STATUS`.
pub(crate) const BY_FLOW_STATUS: TableDefinition<(&str, u8, u128), ()> =
    TableDefinition::new("executions_by_flow_status");
/// flow name → the last fire time of its schedule, in ns since the epoch.
pub(crate) const SCHEDULES: TableDefinition<&str, u64> = TableDefinition::new("schedules");
/// flow name → () for each flow an operator deactivated.
pub(crate) const INACTIVE_FLOWS: TableDefinition<&str, ()> = TableDefinition::new("inactive_flows");
