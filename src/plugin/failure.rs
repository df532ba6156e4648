//! How an invocation can fail: the error kinds of the contract (`connector`, `trap`,
//! `fuel_exhausted`, `timeout`, `memory_limit`, `invalid_output`, `template`, `host`) and
//! the mapping from what wasmtime reports to those kinds.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The component returned an error.
    Connector,
    /// The component trapped (panic, `unreachable`, stack overflow, bad memory access).
    Trap,
    FuelExhausted,
    Timeout,
    MemoryLimit,
    /// The component's output is not JSON, or is over the payload limit.
    InvalidOutput,
    /// The step's config referenced data that is not there.
    Template,
    /// A host call was denied or failed, or the host could not run the component.
    Host,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connector => "connector",
            ErrorKind::Trap => "trap",
            ErrorKind::FuelExhausted => "fuel_exhausted",
            ErrorKind::Timeout => "timeout",
            ErrorKind::MemoryLimit => "memory_limit",
            ErrorKind::InvalidOutput => "invalid_output",
            ErrorKind::Template => "template",
            ErrorKind::Host => "host",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed invocation, as recorded on the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: ErrorKind,
    /// The connector's own code, for `connector` errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
    /// Whether automatic retry may apply.
    pub retryable: bool,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        // Only transient conditions are worth another try; the rest fail the same way again.
        let retryable = matches!(kind, ErrorKind::Timeout);
        Failure {
            kind,
            code: None,
            message: message.into(),
            retryable,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", self.message)
    }
}
