//! What the engine tells whoever watches it — an execution accepted, a step ended, an
//! execution ended — without knowing who: the daemon's metrics count them, `flowd run
//! --count` waits for acceptances.

use crate::status::{ExecutionStatus, StepStatus};
use crate::store::JobId;
use std::time::Duration;

pub trait Observer: Send + Sync {
    /// The execution `job` is durably accepted.
    fn accepted(&self, _job: JobId) {}

    /// A step of `flow` ended (or was skipped) after `duration`, using `fuel`.
    fn step_ended(&self, _flow: &str, _step: &str, _status: StepStatus, _duration: Duration, _fuel: u64) {}

    /// An execution of `flow` reached a final status.
    fn execution_ended(&self, _flow: &str, _status: ExecutionStatus) {}
}
