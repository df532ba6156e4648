//! The vocabulary the engine decides and the store keeps: execution and step statuses,
//! exactly as the contract names them, and which connector a step ran. It sits below
//! both, so neither reaches up to the other for it.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Accepted and stored, waiting for a worker (the flow has no throttle).
    Pending,
    /// Accepted and stored, waiting in the flow's throttle queue.
    Queued,
    Running,
    /// A `pause` step holds it.
    Paused,
    Success,
    /// Reached the end, but a step with `on_error = "continue"` failed.
    PartiallyExecuted,
    Failed,
    /// Exceeded its allocated time (flow timeout, or the throttle's `max_wait`).
    Rejected,
}

impl ExecutionStatus {
    /// Every status, in the contract's order.
    pub const ALL: [ExecutionStatus; 8] = [
        ExecutionStatus::Pending,
        ExecutionStatus::Queued,
        ExecutionStatus::Running,
        ExecutionStatus::Paused,
        ExecutionStatus::Success,
        ExecutionStatus::PartiallyExecuted,
        ExecutionStatus::Failed,
        ExecutionStatus::Rejected,
    ];

    /// The status as every store backend keys and stores it. These codes are in
    /// databases: never renumber them.
    pub const fn code(self) -> u8 {
        match self {
            ExecutionStatus::Pending => 0,
            ExecutionStatus::Queued => 1,
            ExecutionStatus::Running => 2,
            ExecutionStatus::Paused => 3,
            ExecutionStatus::Success => 4,
            ExecutionStatus::PartiallyExecuted => 5,
            ExecutionStatus::Failed => 6,
            ExecutionStatus::Rejected => 7,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "pending",
            ExecutionStatus::Queued => "queued",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Paused => "paused",
            ExecutionStatus::Success => "success",
            ExecutionStatus::PartiallyExecuted => "partially_executed",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Rejected => "rejected",
        }
    }

    /// No further transition happens on its own.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Success
                | ExecutionStatus::PartiallyExecuted
                | ExecutionStatus::Failed
                | ExecutionStatus::Rejected
        )
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Success,
    Failed,
    Skipped,
    Paused,
}

impl StepStatus {
    /// Whether the step was started (so it had an input).
    pub fn ran(self) -> bool {
        !matches!(self, StepStatus::Skipped | StepStatus::Pending)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Success => "success",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Paused => "paused",
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which component ran: its name and content hash, so a changed plugin is visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorUse {
    pub name: String,
    pub sha256: String,
}
