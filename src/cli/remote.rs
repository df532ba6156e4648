//! What every client-mode command shares (a command without `--data-dir` asks a running
//! daemon's admin API): the client made from `--url`/`FLOWD_TOKEN`, a failure with its
//! exit code (0 ok, 1 the API answered an error, 2 a bad invocation or an unreachable
//! daemon, 3 a refused retry or resume), page sizes and decoding of answers.

use super::args::Remote;
use super::client::{Client, ClientError};
use serde_json::Value;
use std::time::Duration;

/// The most an API page holds (`limit`).
pub(super) const MAX_PAGE: u64 = 1000;
/// How often `retry --wait` looks at the execution again.
pub(super) const POLL: Duration = Duration::from_millis(200);
/// The download progress line is redrawn at most this often.
pub(super) const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Why a command stopped: a message for stderr and the exit code.
pub(super) struct CommandError {
    pub(super) message: String,
    pub(super) code: u8,
}

impl From<ClientError> for CommandError {
    fn from(e: ClientError) -> CommandError {
        CommandError {
            code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

impl CommandError {
    pub(super) fn usage(message: impl Into<String>) -> CommandError {
        CommandError {
            message: message.into(),
            code: 2,
        }
    }

    pub(super) fn local(message: impl Into<String>) -> CommandError {
        CommandError {
            message: message.into(),
            code: 1,
        }
    }
}

pub(super) type Outcome = Result<u8, CommandError>;

/// Runs a client-mode command: the client of `remote`, then `f`, whose failure is
/// printed as `error: …`.
pub(super) async fn with_client<F: AsyncFnOnce(Client) -> Outcome>(remote: &Remote, f: F) -> u8 {
    let client = match remote.client() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match f(client).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.message);
            e.code
        }
    }
}

/// A page size for the API, which answers at most [`MAX_PAGE`].
pub(super) fn page_limit(limit: Option<u64>) -> Result<Option<String>, CommandError> {
    match limit {
        Some(n) if n > MAX_PAGE => Err(CommandError::usage(format!(
            "--limit {n}: the admin API answers at most {MAX_PAGE} per page; follow the next-page hint for more"
        ))),
        other => Ok(other.map(|n| n.to_string())),
    }
}

/// `value[key]` as `T`, or a protocol failure naming what was expected.
pub(super) fn decode<T: serde::de::DeserializeOwned>(c: &Client, value: &Value, key: &str) -> Result<T, CommandError> {
    serde_json::from_value(value[key].clone()).map_err(|e| {
        CommandError::from(ClientError::Protocol {
            url: c.url().to_string(),
            what: format!("answered with an unexpected `{key}` ({e})"),
        })
    })
}

pub(super) fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("serializes"));
}

/// `v[key]` as text, `-` when it is not a string.
pub(super) fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}
