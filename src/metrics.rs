//! In-process counters for `/metrics`: executions ended by flow and status, webhook
//! requests by flow and outcome, and per step a duration histogram, its ends by status
//! and the fuel it used. The engine and the webhook listener record into them; the admin
//! API renders them in the Prometheus text format together with the dispatcher's queue
//! depths and the store's commit figures.

use crate::engine::Observer;
use crate::status::{ExecutionStatus, StepStatus};
use crate::sync::Lock as _;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the step-duration histogram's buckets; `+Inf` follows.
pub const DURATION_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct StepStats {
    /// Non-cumulative counts per bucket, the last one for `+Inf`.
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
    fuel: u64,
    by_status: HashMap<&'static str, u64>,
}

#[derive(Default)]
struct FlowStats {
    executions: HashMap<&'static str, u64>,
    steps: HashMap<String, StepStats>,
    /// Webhook requests by outcome.
    webhooks: HashMap<&'static str, u64>,
}

/// Everything recorded since the daemon started.
#[derive(Default)]
pub struct Metrics {
    flows: Mutex<HashMap<String, FlowStats>>,
}

fn flow_stats<'a>(flows: &'a mut HashMap<String, FlowStats>, flow: &str) -> &'a mut FlowStats {
    if !flows.contains_key(flow) {
        flows.insert(flow.to_string(), FlowStats::default());
    }
    flows.get_mut(flow).expect("inserted above")
}

impl Observer for Metrics {
    /// An execution reached a final status.
    fn execution_ended(&self, flow: &str, status: ExecutionStatus) {
        let mut flows = self.flows.locked();
        *flow_stats(&mut flows, flow)
            .executions
            .entry(status.as_str())
            .or_default() += 1;
    }

    /// A step ended (or was skipped) after `duration`, using `fuel`.
    fn step_ended(&self, flow: &str, step: &str, status: StepStatus, duration: Duration, fuel: u64) {
        let mut flows = self.flows.locked();
        let f = flow_stats(&mut flows, flow);
        if !f.steps.contains_key(step) {
            f.steps.insert(step.to_string(), StepStats::default());
        }
        let s = f.steps.get_mut(step).expect("inserted above");
        *s.by_status.entry(status.as_str()).or_default() += 1;
        if status == StepStatus::Skipped {
            return;
        }
        let secs = duration.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        s.buckets[bucket] += 1;
        s.sum += secs;
        s.count += 1;
        s.fuel += fuel;
    }
}

impl Metrics {
    /// A webhook request to `flow` was answered: `outcome` is `accepted`, `dropped`, or
    /// the error code of the answer.
    pub fn webhook_request(&self, flow: &str, outcome: &'static str) {
        let mut flows = self.flows.locked();
        *flow_stats(&mut flows, flow).webhooks.entry(outcome).or_default() += 1;
    }

    /// The recorded figures in the Prometheus text format (families in a fixed order,
    /// series sorted, so the output is stable).
    pub fn render(&self, out: &mut String) {
        let flows = self.flows.locked();
        let mut names: Vec<&String> = flows.keys().collect();
        names.sort();
        out.push_str(
            "# HELP flowd_executions_total Executions that reached a final status since the daemon started.\n",
        );
        out.push_str("# TYPE flowd_executions_total counter\n");
        for flow in &names {
            let mut statuses: Vec<_> = flows[*flow].executions.iter().collect();
            statuses.sort();
            for (status, n) in statuses {
                let _ = writeln!(
                    out,
                    "flowd_executions_total{{flow=\"{}\",status=\"{status}\"}} {n}",
                    label(flow)
                );
            }
        }
        out.push_str(
            "# HELP flowd_webhook_requests_total Webhook requests by flow and outcome (accepted, dropped, or the error code answered).\n",
        );
        out.push_str("# TYPE flowd_webhook_requests_total counter\n");
        for flow in &names {
            let mut outcomes: Vec<_> = flows[*flow].webhooks.iter().collect();
            outcomes.sort();
            for (outcome, n) in outcomes {
                let _ = writeln!(
                    out,
                    "flowd_webhook_requests_total{{flow=\"{}\",outcome=\"{outcome}\"}} {n}",
                    label(flow)
                );
            }
        }
        let steps = |flow: &String| {
            let mut s: Vec<_> = flows[flow].steps.iter().collect();
            s.sort_by(|a, b| a.0.cmp(b.0));
            s
        };
        out.push_str("# HELP flowd_steps_total Steps that ended, by status.\n");
        out.push_str("# TYPE flowd_steps_total counter\n");
        for flow in &names {
            for (step, s) in steps(flow) {
                let mut statuses: Vec<_> = s.by_status.iter().collect();
                statuses.sort();
                for (status, n) in statuses {
                    let _ = writeln!(
                        out,
                        "flowd_steps_total{{flow=\"{}\",step=\"{}\",status=\"{status}\"}} {n}",
                        label(flow),
                        label(step)
                    );
                }
            }
        }
        out.push_str("# HELP flowd_step_duration_seconds Wall time of steps that ran (skipped ones excluded).\n");
        out.push_str("# TYPE flowd_step_duration_seconds histogram\n");
        for flow in &names {
            for (step, s) in steps(flow) {
                let labels = format!("flow=\"{}\",step=\"{}\"", label(flow), label(step));
                let mut cumulative = 0;
                for (i, n) in s.buckets.iter().enumerate() {
                    cumulative += n;
                    let le = DURATION_BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
                    let _ = writeln!(
                        out,
                        "flowd_step_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(out, "flowd_step_duration_seconds_sum{{{labels}}} {}", s.sum);
                let _ = writeln!(out, "flowd_step_duration_seconds_count{{{labels}}} {}", s.count);
            }
        }
        out.push_str("# HELP flowd_fuel_used_total Wasm fuel used by steps.\n");
        out.push_str("# TYPE flowd_fuel_used_total counter\n");
        for flow in &names {
            for (step, s) in steps(flow) {
                let _ = writeln!(
                    out,
                    "flowd_fuel_used_total{{flow=\"{}\",step=\"{}\"}} {}",
                    label(flow),
                    label(step),
                    s.fuel
                );
            }
        }
    }
}

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_skips_only_count_by_status() {
        let m = Metrics::default();
        m.step_ended("f", "s", StepStatus::Success, Duration::from_micros(300), 10);
        m.step_ended("f", "s", StepStatus::Failed, Duration::from_secs(40), 5);
        m.step_ended("f", "s", StepStatus::Skipped, Duration::ZERO, 0);
        m.execution_ended("f", ExecutionStatus::Failed);
        m.webhook_request("f", "dropped");
        m.webhook_request("f", "dropped");
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "flowd_executions_total{flow=\"f\",status=\"failed\"} 1",
            "flowd_webhook_requests_total{flow=\"f\",outcome=\"dropped\"} 2",
            "flowd_steps_total{flow=\"f\",step=\"s\",status=\"skipped\"} 1",
            "flowd_step_duration_seconds_bucket{flow=\"f\",step=\"s\",le=\"0.00025\"} 0",
            "flowd_step_duration_seconds_bucket{flow=\"f\",step=\"s\",le=\"0.0005\"} 1",
            "flowd_step_duration_seconds_bucket{flow=\"f\",step=\"s\",le=\"30\"} 1",
            "flowd_step_duration_seconds_bucket{flow=\"f\",step=\"s\",le=\"+Inf\"} 2",
            "flowd_step_duration_seconds_count{flow=\"f\",step=\"s\"} 2",
            "flowd_fuel_used_total{flow=\"f\",step=\"s\"} 15",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
