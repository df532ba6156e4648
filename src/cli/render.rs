//! Human renderings shared by offline and client mode: the timeline of a run (one block
//! per step with status, duration, fuel, output and log lines), the execution list, and
//! a recorded execution's detail.

use crate::config::{Action, Flow};
use crate::detail::one_line;
use crate::engine::{Call, ExecutionReport, ExecutionStatus, StepStatus};
use crate::store::Execution;
use serde_json::Value;
use std::fmt::Write;
use std::time::Duration;

/// The connector `flow` names for its step `step`, if that step calls one.
fn connector_of<'a>(flow: &'a Flow, step: &str) -> Option<&'a str> {
    match &flow.steps.iter().find(|s| s.name == step)?.action {
        Action::Connector { call, .. } => Some(&call.connector),
        _ => None,
    }
}

/// Output longer than this is cut in the timeline (`--json` shows it whole).
const MAX_SHOWN: usize = 400;

/// The timeline of `r`, a run of `flow` (which names the connector of a step that did not
/// run).
pub fn timeline(r: &ExecutionReport, flow: &Flow) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "flow {} (project {}, version {})  job {}  environment {}",
        r.flow, r.project, r.flow_version, r.job_id, r.environment
    );
    let t = &r.trigger;
    let _ = write!(o, "  trigger    {}", t.kind);
    if let Some(c) = &t.connector {
        let _ = write!(o, " via {} ({})", c.name, &c.sha256[..12]);
    }
    if let Some(call) = &t.call {
        let _ = write!(o, "  {}  fuel {}", ms(call.duration), group(call.fuel_used));
    }
    if t.dropped {
        let _ = write!(o, "  dropped the event");
        // The reason is the connector's own record, printed below; say when it gave none.
        if let Some(why) = &t.note
            && t.call.as_ref().is_none_or(|c| c.logs.is_empty())
        {
            let _ = write!(o, ": {}", one_line(why));
        }
    } else if let Some(p) = &t.payload {
        let _ = write!(o, "  payload {}", shown(p));
    }
    o.push('\n');
    if let Some(e) = t.call.as_ref().and_then(|c| c.error.as_ref()) {
        let _ = writeln!(o, "        error: {}", one_line(&e.to_string()));
    }
    if let Some(call) = &t.call {
        call_lines(&mut o, call, false);
    }
    let width = r.steps.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
    for s in &r.steps {
        let mark = match s.status {
            StepStatus::Success => "ok",
            StepStatus::Failed => "FAIL",
            StepStatus::Skipped => "skip",
            StepStatus::Paused => "pause",
            StepStatus::Running => "run",
            StepStatus::Pending => "-",
        };
        let what = match &s.connector {
            Some(c) => c.name.as_str(),
            None => connector_of(flow, &s.name).unwrap_or(s.kind),
        };
        let _ = write!(o, "  {mark:<5} {:<width$}  {what:<10} {:<8}", s.name, s.status.as_str());
        if !matches!(s.status, StepStatus::Skipped | StepStatus::Pending) {
            let _ = write!(o, " {:>9}", ms(s.duration));
            if s.kind == "connector" {
                let _ = write!(o, "  fuel {}", group(s.fuel_used));
            }
            if s.tries.len() > 1 {
                let _ = write!(o, "  ({} tries)", s.tries.len());
            }
        }
        o.push('\n');
        if let Some(note) = &s.note {
            let _ = writeln!(o, "        {note}");
        }
        let many = s.tries.len() > 1;
        for (i, call) in s.tries.iter().enumerate() {
            if many {
                let _ = writeln!(
                    o,
                    "        try {}: {} fuel {}{}",
                    i + 1,
                    ms(call.duration),
                    group(call.fuel_used),
                    call.error.as_ref().map(|e| format!("  {}", e.kind)).unwrap_or_default()
                );
            }
            call_lines(&mut o, call, true);
        }
        if let Some(out) = &s.output {
            let _ = writeln!(o, "        output: {}", shown(out));
        }
        if let Some(e) = &s.error {
            let _ = writeln!(
                o,
                "        error: {}{}",
                one_line(&e.to_string()),
                if e.retryable { " (retryable)" } else { "" }
            );
        }
    }
    let verdict = match r.status {
        ExecutionStatus::Success if r.trigger.dropped => "success (the event was dropped; nothing ran)".to_string(),
        s => s.as_str().to_string(),
    };
    let _ = writeln!(
        o,
        "execution {verdict} in {} ({} of {} steps executed)",
        ms(r.duration),
        r.steps_executed(),
        r.steps.len()
    );
    if let Some(resp) = &r.response {
        let _ = writeln!(o, "response: {}", shown(resp));
    }
    o
}

/// The execution list: one row per execution, in the order given.
pub fn executions_table(rows: &[Execution]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<36}  {:<20}  {:<18}  {:>9}  {:>5}  {:>3}  time",
        "job id", "flow", "status", "duration", "steps", "try"
    );
    for e in rows {
        let _ = writeln!(
            o,
            "{:<36}  {:<20}  {:<18}  {:>9}  {:>5}  {:>3}  {}",
            e.job_id.to_string(),
            e.flow,
            e.status.as_str(),
            crate::detail::duration(e).map_or("-".into(), |d| format!("{d:.3}s")),
            format!("{}/{}", e.steps_executed, e.steps_total),
            e.attempt,
            crate::time_format::rfc3339(e.created_at),
        );
    }
    o
}

/// A recorded execution's detail ([`crate::detail::execution_detail`], read from a data
/// directory or answered by the admin API): its header, whether a retry is possible,
/// and each attempt's steps.
pub fn execution_detail(detail: &Value) -> String {
    let mut o = String::new();
    let e = &detail["execution"];
    let _ = writeln!(
        o,
        "job {}  flow {} (project {}, version {})  {}  attempt {}",
        e["job_id"].as_str().unwrap_or(""),
        e["flow"].as_str().unwrap_or(""),
        e["project"].as_str().unwrap_or(""),
        e["flow_version"].as_str().unwrap_or(""),
        e["status"].as_str().unwrap_or(""),
        e["attempt"]
    );
    let _ = writeln!(
        o,
        "  trigger {}  payload {}",
        e["trigger_kind"].as_str().unwrap_or(""),
        detail["trigger"]
    );
    let retry = &detail["retry"];
    let _ = match (retry["possible"].as_bool(), retry["refused"]["message"].as_str()) {
        (Some(true), _) => writeln!(o, "  manual retry possible ({} left)", retry["retries_left"]),
        (Some(false), Some(why)) => writeln!(o, "  no manual retry: {why}"),
        _ => writeln!(o, "  manual retries left: {}", retry["retries_left"]),
    };
    for s in detail["steps"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  [{}] {:<16} {:<9} {:>9.3} ms  fuel {}",
            s["attempt"],
            s["name"].as_str().unwrap_or(""),
            s["status"].as_str().unwrap_or(""),
            s["duration"].as_f64().unwrap_or(0.0) * 1000.0,
            s["fuel_used"]
        );
        if !s["error"].is_null() {
            let _ = writeln!(
                o,
                "        error: {}: {}",
                s["error"]["kind"].as_str().unwrap_or(""),
                one_line(s["error"]["message"].as_str().unwrap_or(""))
            );
        }
        if let Some(note) = s["note"].as_str() {
            let _ = writeln!(o, "        {note}");
        }
        if !s["output"].is_null() {
            let _ = writeln!(o, "        output: {}", s["output"]);
        }
    }
    o
}

fn call_lines(o: &mut String, call: &Call, _step: bool) {
    for l in &call.logs {
        let _ = writeln!(
            o,
            "        {:<5} {}: {}",
            l.level.as_str(),
            one_line(&l.category),
            one_line(&l.message)
        );
    }
    if call.dropped_logs > 0 {
        let _ = writeln!(
            o,
            "        ({} more log records dropped: over limits.max_log_records)",
            call.dropped_logs
        );
    }
}

fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= MAX_SHOWN {
        return s;
    }
    let cut = s.floor_char_boundary(MAX_SHOWN);
    format!("{}… ({} bytes in all; --json shows everything)", &s[..cut], s.len())
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// 1234567 → "1,234,567".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_thousands() {
        assert_eq!(super::group(0), "0");
        assert_eq!(super::group(1234), "1,234");
        assert_eq!(super::group(1234567), "1,234,567");
    }
}
