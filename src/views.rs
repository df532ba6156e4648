//! What is shown of a stored execution, the same through the CLI and the admin API:
//! its detail (attempts, steps with their payloads and rebuilt inputs) and whether a
//! manual retry would be accepted now.

use crate::config::Flow;
use crate::engine::{StepInput, retries_left, retry_refusal};
use crate::store::{Execution, JobId, LogRow, PayloadKey, PayloadKind, Store, StoreError};
use serde_json::{Value, json};

/// Seconds from start to end, once the execution has both.
pub fn duration(e: &Execution) -> Option<f64> {
    let (s, f) = (e.started_at?, e.finished_at?);
    f.duration_since(s).ok().map(|d| d.as_secs_f64())
}

/// Whether a manual retry of `exec` is possible now under `flow` (its current
/// definition), and the refusal a retry request would get when it is not.
pub fn retry(flow: Result<&Flow, String>, exec: &Execution) -> Value {
    let left = retries_left(exec);
    match flow {
        Err(message) => json!({ "retries_left": left, "possible": false,
            "refused": { "code": "flow_not_found", "message": message } }),
        Ok(flow) => match retry_refusal(flow, exec) {
            None => json!({ "retries_left": left, "possible": true }),
            Some(r) => {
                json!({ "retries_left": left, "possible": false, "refused": { "code": r.code(), "message": r.to_string() } })
            }
        },
    }
}

/// One execution in full, or `None` when there is no such job; `retry` says whether a
/// manual retry is possible (see [`retry`]).
pub fn execution_detail(
    store: &dyn Store,
    job_id: JobId,
    retry: impl FnOnce(&Execution) -> Value,
) -> Result<Option<Value>, StoreError> {
    let Some(e) = store.execution(job_id)? else {
        return Ok(None);
    };
    let trigger = store.payload(PayloadKey::trigger(job_id))?;
    let mut steps = Vec::new();
    // A step's input is the trigger payload and the outputs of the steps before it.
    let mut outputs = serde_json::Map::new();
    let mut attempt = 0;
    for row in store.steps(job_id)? {
        if row.attempt != attempt {
            attempt = row.attempt;
            outputs.clear();
        }
        // A reused step's payloads are stored with the attempt that ran it.
        let key = |kind| PayloadKey {
            job_id,
            attempt: row.reused_from.unwrap_or(row.attempt),
            step: row.index,
            kind,
        };
        let mut v = serde_json::to_value(&row).expect("serializes");
        v["input"] = if row.status.ran() {
            StepInput {
                trigger: trigger.as_ref().unwrap_or(&Value::Null),
                steps: &outputs,
            }
            .to_value()
        } else {
            Value::Null
        };
        v["config"] = store.payload(key(PayloadKind::Config))?.unwrap_or(Value::Null);
        let output = store.payload(key(PayloadKind::Output))?;
        if let Some(o) = &output {
            outputs.insert(row.name.clone(), o.clone());
        }
        v["output"] = output.unwrap_or(Value::Null);
        steps.push(v);
    }
    Ok(Some(json!({
        "execution": e,
        "duration": duration(&e),
        "retry": retry(&e),
        "trigger": trigger,
        "attempts": store.attempts(job_id)?,
        "steps": steps,
    })))
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
