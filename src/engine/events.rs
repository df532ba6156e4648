//! The host's own records in the running logs, beside what connectors write: a step's
//! final failure (after its automatic tries) and an execution rejected for its time
//! (the flow's timeout, or the throttle's `max_wait`) are `error`; a try that is retried
//! and an event a trigger connector dropped are `warn`; a trigger that failed is
//! `error`. Each has its event name as category, and the store keeps the same name as
//! the record's action, so `level=error` finds failing runs and `category=step_failed`
//! one kind of failure. A try followed by a success leaves only its `warn`. After a
//! restart, a step the crash cut short is `warn` (it runs again), and an execution flowd
//! cannot carry on is `error`.

use super::report::{ExecutionReport, StepReport};

/// The note on a step the flow's timeout interrupted: recovery reads it to know the
/// execution was rejected.
pub(super) const FLOW_TIMEOUT_NOTE: &str = "interrupted by the flow's timeout";
use crate::config::units::format_duration;
use crate::plugin::{Failure, Level, LogRecord};
use crate::status::StepStatus;
use std::time::{Duration, SystemTime};

const STEP_FAILED: &str = "step_failed";
const STEP_RETRY: &str = "step_retry";
const EXECUTION_REJECTED: &str = "execution_rejected";
const TRIGGER_FAILED: &str = "trigger_failed";
const EVENT_DROPPED: &str = "event_dropped";
const STEP_INTERRUPTED: &str = "step_interrupted";
const EXECUTION_STOPPED: &str = "execution_stopped";

fn record(level: Level, category: &str, message: String) -> LogRecord {
    LogRecord {
        time: SystemTime::now(),
        level,
        category: category.to_string(),
        message,
    }
}

/// A step failed for good: after its tries, or at once for a failure no try mends.
pub(super) fn step_failed(step: &StepReport) -> LogRecord {
    let tries = match step.tries.len() {
        0 | 1 => String::new(),
        n => format!(" after {n} tries"),
    };
    let why = step
        .error
        .as_ref()
        .map_or_else(|| "no error recorded".to_string(), Failure::to_string);
    record(
        Level::Error,
        STEP_FAILED,
        format!("step \"{}\" failed{tries}: {why}", step.name),
    )
}

/// Try `try_no` of `attempts` failed with `f` and runs again after `wait`.
pub(super) fn step_retry(step: &str, try_no: u32, attempts: u32, f: &Failure, wait: Duration) -> LogRecord {
    record(
        Level::Warn,
        STEP_RETRY,
        format!(
            "step \"{step}\" try {try_no} of {attempts} failed: {f}; trying again in {}",
            format_duration(wait)
        ),
    )
}

/// The record of a `rejected` execution, saying why, with the step the flow's timeout
/// interrupted (if it did).
pub(super) fn execution_rejected(r: &ExecutionReport) -> (Option<&str>, LogRecord) {
    let interrupted = r.steps.iter().find(|s| s.note.as_deref() == Some(FLOW_TIMEOUT_NOTE));
    let why = match interrupted {
        Some(s) => format!(
            "step \"{}\" {}",
            s.name,
            s.error.as_ref().map_or("was interrupted", |e| e.message.as_str())
        ),
        // The steps it did not reach say why (earlier ones may be skipped for other reasons).
        None => r
            .steps
            .iter()
            .rev()
            .find(|s| s.status == StepStatus::Skipped)
            .and_then(|s| s.note.clone())
            .unwrap_or_else(|| "its allocated time ran out".into()),
    };
    (
        interrupted.map(|s| s.name.as_str()),
        record(Level::Error, EXECUTION_REJECTED, format!("execution rejected: {why}")),
    )
}

/// The trigger (its connector, or the payload check) failed; the execution is `failed`.
pub(super) fn trigger_failed(f: &Failure) -> LogRecord {
    record(Level::Error, TRIGGER_FAILED, format!("the trigger failed: {f}"))
}

/// The trigger connector `connector` dropped the event, saying `reason`.
pub(super) fn event_dropped(connector: &str, reason: &str) -> LogRecord {
    record(
        Level::Warn,
        EVENT_DROPPED,
        format!("event dropped by trigger connector \"{connector}\": {reason}"),
    )
}

/// Recovery runs a step again that a restart cut short; `message` says which and when.
pub(super) fn step_interrupted(message: String) -> LogRecord {
    record(Level::Warn, STEP_INTERRUPTED, message)
}

/// flowd stopped an execution it cannot carry on; `message` says why.
pub(super) fn execution_stopped(message: String) -> LogRecord {
    record(Level::Error, EXECUTION_STOPPED, message)
}
