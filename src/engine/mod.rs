//! The engine: how an event becomes an execution and how an execution runs, every
//! transition recorded in a [`crate::store::Store`] it is given before it is acted upon.
//! It serves no HTTP and knows nothing of how executions are stored.
//!
//! - `executor`: what executions share.
//! - `accept`: how an event becomes an execution, stored before it runs.
//! - `trigger`: the payload an event starts a flow with (`http_document`: an HTTP
//!   request's; `redact`: credentials taken out).
//! - `run`: one run of an execution, step after step, through pauses.
//! - `step`: one step: its tries, backoff, a pause, a `respond`.
//! - `resume`: picking an execution up from the store: recovery, retry, resume.
//! - `record`: the transitions written to the store, and when.
//! - `events`: the host's own records in the running logs.
//! - `report`: what one execution did, as the CLI prints it.
//! - `observer`, `pauses`: who watches, and the timed pauses waited out here.
//! - `hold`: the lease a run holds on its execution (its fence on every write).

mod accept;
mod events;
mod executor;
mod hold;
pub mod http_document;
mod observer;
mod pauses;
mod record;
mod redact;
mod report;
mod resume;
mod run;
mod step;
mod trigger;

pub use crate::status::{ConnectorUse, ExecutionStatus, StepStatus};
pub use accept::{Accepted, Admission};
pub use executor::Executor;
pub use hold::Hold;
pub use observer::Observer;
pub use pauses::Pauses;
pub use redact::REDACTED;
pub use report::{Call, ExecutionReport, Reply, Responded, StepReport, TriggerReport};
pub use resume::{ContinueError, MAX_MANUAL_RETRIES, Resumed, RetryFrom, RetryRefusal, retries_left, retry_refusal};
pub use trigger::{default_payload, local_event};

use serde_json::{Map, Value};

/// A step's input: the trigger payload and the outputs of the steps before it.
#[derive(serde::Serialize)]
pub struct StepInput<'a> {
    pub trigger: &'a Value,
    pub steps: &'a Map<String, Value>,
}

impl StepInput<'_> {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("JSON values serialize")
    }
}
