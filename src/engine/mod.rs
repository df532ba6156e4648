//! The engine: execution and step statuses, the executor that runs a flow's steps
//! through connectors, and the report of what happened; the payload an event starts a
//! flow with (the document of an HTTP request, credentials redacted) and the host's own
//! records in the running logs. It serves no HTTP and knows nothing of how executions
//! are stored.

mod events;
mod executor;
pub mod http_document;
mod pauses;
mod record;
mod redact;
mod report;
mod resume;
mod status;

pub use executor::{Accepted, Admission, Executor, StepInput, default_payload, local_event};
pub use pauses::Pauses;
pub use redact::REDACTED;
pub use report::{Call, ConnectorUse, ExecutionReport, StepReport, TriggerReport};
pub use resume::{ContinueError, MAX_MANUAL_RETRIES, Resumed, RetryFrom, RetryRefusal, retries_left, retry_refusal};
pub use status::{ExecutionStatus, StepStatus};
