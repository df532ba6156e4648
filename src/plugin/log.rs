//! An invocation's log: the records a component writes through flowd's `log` import
//! and its stdout/stderr lines, each cut to a bounded size, capped in number (past the
//! cap counted, not kept), with the last stderr lines kept for a trap's explanation.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// A log message longer than this is cut (with a marker) before it is kept.
const MAX_MESSAGE: usize = 8 << 10;
const MAX_CATEGORY: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// One record of an execution's log, as written by a connector (or its stdio).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    #[serde(with = "crate::time_format")]
    pub time: SystemTime,
    pub level: Level,
    pub category: String,
    pub message: String,
}

/// Records of one invocation, capped: past the cap they are counted, not kept.
#[derive(Debug, Default)]
pub struct LogBuffer {
    pub records: Vec<LogRecord>,
    pub dropped: u64,
    max: usize,
    partial_stdout: Vec<u8>,
    partial_stderr: Vec<u8>,
    /// The last stderr lines, kept past the record cap: what a trap is explained with,
    /// even after stdout filled the records.
    stderr_tail: std::collections::VecDeque<String>,
}

/// stderr lines kept for a trap's explanation, and how much of each.
const STDERR_TAIL: usize = 32;
const STDERR_TAIL_LINE: usize = 2 << 10;

impl LogBuffer {
    pub fn new(max: u32) -> LogBuffer {
        LogBuffer {
            max: max as usize,
            ..LogBuffer::default()
        }
    }

    pub fn push(&mut self, level: Level, category: &str, message: &str) {
        if self.records.len() >= self.max {
            self.dropped += 1;
            return;
        }
        self.records.push(LogRecord {
            time: SystemTime::now(),
            level,
            category: truncate(category, MAX_CATEGORY),
            message: truncate(message, MAX_MESSAGE),
        });
    }

    pub(super) fn write_stdio(&mut self, err: bool, bytes: &[u8]) {
        let mut pending = std::mem::take(if err {
            &mut self.partial_stderr
        } else {
            &mut self.partial_stdout
        });
        pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(nl) = pending[start..].iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&pending[start..start + nl]).into_owned();
            self.push_stdio(err, &line);
            start += nl + 1;
        }
        pending.drain(..start);
        // A line longer than a message can be is emitted in pieces.
        while pending.len() > MAX_MESSAGE {
            let line = String::from_utf8_lossy(&pending[..MAX_MESSAGE]).into_owned();
            self.push_stdio(err, &line);
            pending.drain(..MAX_MESSAGE);
        }
        *(if err {
            &mut self.partial_stderr
        } else {
            &mut self.partial_stdout
        }) = pending;
    }

    fn push_stdio(&mut self, err: bool, line: &str) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if err {
            if self.stderr_tail.len() == STDERR_TAIL {
                self.stderr_tail.pop_front();
            }
            self.stderr_tail.push_back(truncate(line, STDERR_TAIL_LINE));
            self.push(Level::Warn, "stderr", line);
        } else {
            self.push(Level::Info, "stdout", line);
        }
    }

    /// Emits unterminated stdio lines; called when the invocation ends.
    pub fn finish(&mut self) {
        for err in [false, true] {
            let rest = std::mem::take(if err {
                &mut self.partial_stderr
            } else {
                &mut self.partial_stdout
            });
            if !rest.is_empty() {
                self.push_stdio(err, &String::from_utf8_lossy(&rest));
            }
        }
    }

    /// What the component said on stderr before it trapped, summarised in its language
    /// (see [`super::trap`]).
    pub fn trap_context(&self) -> Option<String> {
        let stderr: Vec<&str> = self.stderr_tail.iter().map(String::as_str).collect();
        super::trap::summary(&stderr)
    }
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let cut = s.floor_char_boundary(max);
    format!("{}… [{} bytes cut]", &s[..cut], s.len() - cut)
}

pub type SharedLog = Arc<Mutex<LogBuffer>>;
