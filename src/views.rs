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

/// A log record as one line of plain text.
pub fn log_line(l: &LogRow) -> String {
    format!(
        "{} {:<5} {} {}/{} {}: {}",
        crate::time_format::rfc3339(l.time),
        l.level.as_str(),
        l.job_id,
        l.flow,
        l.step.as_deref().unwrap_or("trigger"),
        l.category,
        l.message
    )
}
