//! What is shown of a stored execution, the same through the CLI and the admin API, as
//! typed documents serialized at the edges: its detail (attempts, steps with their
//! payloads and rebuilt inputs), one payload by its key, whether a manual retry would be
//! accepted now, and a log record as one line of text.

use crate::config::Flow;
use crate::engine::{StepInput, retries_left, retry_refusal};
use crate::store::{Attempt, Execution, JobId, LogRow, PayloadKey, PayloadKind, ReadError, StepRow, Store};
use serde::Serialize;
use serde_json::{Map, Value};

/// Seconds from start to end, once the execution has both.
pub fn duration(e: &Execution) -> Option<f64> {
    let (s, f) = (e.started_at?, e.finished_at?);
    f.duration_since(s).ok().map(|d| d.as_secs_f64())
}

/// A page of the executions list as the admin API answers it and `executions list
/// --json` prints it, online or offline: each row with its duration in seconds, and the
/// cursor of the next page when this one is full (`limit` rows).
pub fn execution_page(rows: &[Execution], limit: usize) -> Value {
    let next = (rows.len() == limit).then(|| rows.last().map(|e| e.job_id.to_string()));
    serde_json::json!({
        "executions": rows.iter().map(|e| {
            let mut v = serde_json::to_value(e).expect("serializes");
            v["duration"] = serde_json::json!(duration(e));
            v
        }).collect::<Vec<_>>(),
        "next_cursor": next.flatten(),
    })
}

/// Whether a manual retry is possible now, and if not, what a retry request would get.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RetryView {
    pub retries_left: u32,
    /// Unknown (left out) where the flow's definition is not at hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub possible: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub message: String,
}

impl RetryView {
    /// What is known without the flow's definition: the retries left.
    pub fn unknown(exec: &Execution) -> RetryView {
        RetryView {
            retries_left: retries_left(exec),
            possible: None,
            refused: None,
        }
    }

    /// Refused with `code` and `message`, the retries left as they are.
    pub fn refuse(&mut self, code: &str, message: String) {
        self.possible = Some(false);
        self.refused = Some(Refusal {
            code: code.to_string(),
            message,
        });
    }
}

/// Whether a manual retry of `exec` is possible now under `flow` (its current
/// definition, or why none is loaded), and the refusal a retry request would get.
pub fn retry(flow: Result<&Flow, String>, exec: &Execution) -> RetryView {
    let mut view = RetryView {
        retries_left: retries_left(exec),
        possible: Some(true),
        refused: None,
    };
    match flow {
        Err(message) => view.refuse("flow_not_found", message),
        Ok(flow) => {
            if let Some(r) = retry_refusal(flow, exec) {
                view.refuse(r.code(), r.to_string());
            }
        }
    }
    view
}

/// One execution in full.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionDetail {
    pub execution: Execution,
    pub duration: Option<f64>,
    pub retry: Option<RetryView>,
    /// The trigger payload: the flow's input.
    pub trigger: Option<Value>,
    pub attempts: Vec<Attempt>,
    /// Every step of every attempt, by attempt then index.
    pub steps: Vec<StepDetail>,
}

/// One step of one attempt with its payloads; `null` where it has none (a step that did
/// not run has no input, one that failed no output).
#[derive(Debug, Clone, Serialize)]
pub struct StepDetail {
    #[serde(flatten)]
    pub row: StepRow,
    pub input: Option<Value>,
    pub config: Option<Value>,
    pub output: Option<Value>,
}

/// Where a step's payload is kept: a reused step's with the attempt that ran it.
fn key(job_id: JobId, row: &StepRow, kind: PayloadKind) -> PayloadKey {
    PayloadKey {
        job_id,
        attempt: row.reused_from.unwrap_or(row.attempt),
        step: row.index,
        kind,
    }
}

/// A step's config: its own, or the one every execution of its flow version shares
/// (a config without placeholders, see [`PayloadKey::shared_config`]).
async fn config(store: &dyn Store, e: &Execution, row: &StepRow) -> Result<Option<Value>, ReadError> {
    if let Some(c) = store.payload(key(e.job_id, row, PayloadKind::Config)).await? {
        return Ok(Some(c));
    }
    // A step is given its config when its connector is found: only such a step has one.
    if row.connector.is_none() {
        return Ok(None);
    }
    let shared = PayloadKey::shared_config(&e.project, &e.flow, &e.flow_version, row.index);
    store.payload(shared).await
}

/// One execution in full, or `None` when there is no such job; `retry` says whether a
/// manual retry is possible (see [`retry`]; `None` leaves it out).
pub async fn execution_detail(
    store: &dyn Store,
    job_id: JobId,
    retry: impl FnOnce(&Execution) -> Option<RetryView>,
) -> Result<Option<ExecutionDetail>, ReadError> {
    let Some(execution) = store.execution(job_id).await? else {
        return Ok(None);
    };
    let trigger = store.payload(PayloadKey::trigger(job_id)).await?;
    let mut steps = Vec::new();
    // A step's input is the trigger payload and the outputs of the steps before it.
    let mut outputs = Map::new();
    let mut attempt = 0;
    for row in store.steps(job_id).await? {
        if row.attempt != attempt {
            attempt = row.attempt;
            outputs.clear();
        }
        let input = row.status.ran().then(|| {
            StepInput {
                trigger: trigger.as_ref().unwrap_or(&Value::Null),
                steps: &outputs,
            }
            .to_value()
        });
        let config = config(store, &execution, &row).await?;
        let output = store.payload(key(job_id, &row, PayloadKind::Output)).await?;
        if let Some(o) = &output {
            outputs.insert(row.name.clone(), o.clone());
        }
        steps.push(StepDetail {
            row,
            input,
            config,
            output,
        });
    }
    Ok(Some(ExecutionDetail {
        duration: duration(&execution),
        retry: retry(&execution),
        trigger,
        attempts: store.attempts(job_id).await?,
        steps,
        execution,
    }))
}

/// A step's payload: its input, config or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPayload {
    Input,
    Config,
    Output,
}

/// What [`step_payload`] found.
#[derive(Debug)]
pub enum Found {
    /// The payload, and the step row it is of.
    Payload(Value, StepRow),
    NoExecution,
    /// No such step (in that attempt).
    NoStep,
    /// The step has no such payload (it did not run, or did not succeed).
    NoPayload(StepRow),
}

/// One payload of step `step` of execution `job_id`, in `attempt` (0: the last attempt
/// that has the step), read by its key; an input is rebuilt from the trigger payload and
/// the outputs of the steps before it in that attempt.
pub async fn step_payload(
    store: &dyn Store,
    job_id: JobId,
    step: &str,
    attempt: u32,
    which: StepPayload,
) -> Result<Found, ReadError> {
    let Some(execution) = store.execution(job_id).await? else {
        return Ok(Found::NoExecution);
    };
    let rows = store.steps(job_id).await?;
    let Some(row) = rows
        .iter()
        .rev()
        .find(|r| r.name == step && (attempt == 0 || r.attempt == attempt))
        .cloned()
    else {
        return Ok(Found::NoStep);
    };
    let value = match which {
        StepPayload::Config => config(store, &execution, &row).await?,
        StepPayload::Output => store.payload(key(job_id, &row, PayloadKind::Output)).await?,
        StepPayload::Input if !row.status.ran() => None,
        StepPayload::Input => {
            let trigger = store.payload(PayloadKey::trigger(job_id)).await?.unwrap_or(Value::Null);
            let mut outputs = Map::new();
            for before in rows.iter().filter(|r| r.attempt == row.attempt && r.index < row.index) {
                if let Some(o) = store.payload(key(job_id, before, PayloadKind::Output)).await? {
                    outputs.insert(before.name.clone(), o);
                }
            }
            Some(
                StepInput {
                    trigger: &trigger,
                    steps: &outputs,
                }
                .to_value(),
            )
        }
    };
    Ok(match value {
        Some(v) => Found::Payload(v, row),
        None => Found::NoPayload(row),
    })
}

/// A log record as one line of plain text: its message and category escaped (see
/// [`one_line`]), so a record is always one line.
pub fn log_line(l: &LogRow) -> String {
    let step = match (&l.step, l.action.as_str()) {
        (Some(step), _) => step.as_str(),
        (None, "accept") => "trigger",
        // A host record of the whole execution (a rejection in the queue).
        (None, _) => "-",
    };
    format!(
        "{} {:<5} {} {}/{} {}: {}",
        crate::time_format::rfc3339(l.time),
        l.level.as_str(),
        l.job_id,
        l.flow,
        step,
        one_line(&l.category),
        one_line(&l.message)
    )
}

/// `text` safe to print as part of one line on a terminal: line breaks, tabs, other
/// control characters (the terminal's escape sequences among them), Unicode line and
/// paragraph separators and bidirectional overrides are written as escapes (`\n`, `\r`,
/// `\t`, `\u{1b}`), and a backslash as `\\`, so the text reads back unambiguously.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c == '\\'
            || c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn control_characters_cannot_break_a_line() {
        assert_eq!(one_line("plain text, é"), "plain text, é");
        assert_eq!(
            one_line("a\nb\r\tc\u{1b}[2Jd\\e\u{2028}f\u{7f}\u{202e}"),
            "a\\nb\\r\\tc\\u{1b}[2Jd\\\\e\\u{2028}f\\u{7f}\\u{202e}"
        );
        assert!(!one_line("x\u{85}y\u{0}").contains(|c: char| c.is_control()));
    }
}
