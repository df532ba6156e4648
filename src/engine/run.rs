//! One run of an execution's current attempt: its steps from a given one to a final
//! status, through timed pauses (stored `paused` with their due time, then resumed here),
//! each transition recorded, the allocated time counted, dependents of a failed or skipped
//! step skipped. A run is made by the executor for an accepted event, or by recovery, a
//! retry or a resume from what the store holds.

use super::events::FLOW_TIMEOUT_NOTE;
use super::executor::Executor;
use super::record::Recorder;
use super::report::{ExecutionReport, StepReport};
use super::step::{Sources, StepCall, StepOutcome, Tries};
use crate::config::units::format_duration;
use crate::config::{Action, Flow, OnError, Step};
use crate::plugin::CallContext;
use crate::status::{ExecutionStatus, StepStatus};
use crate::store::StoreError;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

/// An execution being run.
pub(super) struct Run<'a> {
    pub(super) exec: &'a Executor,
    pub(super) flow: &'a Flow,
    pub(super) report: ExecutionReport,
    pub(super) sources: Sources,
    pub(super) recorder: Recorder,
    /// Measures the reported duration.
    pub(super) clock: Instant,
}

impl Run<'_> {
    /// Runs the attempt's steps from `start` to a final status, through timed pauses, and
    /// records the end.
    pub(super) async fn drive(mut self, mut start: usize) -> Result<ExecutionReport, StoreError> {
        loop {
            // The flow's allocated time counts running time: a pause suspends it.
            let deadline = crate::time_format::deadline_in(self.flow.timeout);
            let (status, written) = self.run_steps(start, deadline).await?;
            self.report.status = status;
            self.report.duration = self.clock.elapsed();
            // A timed pause is registered before it is stored, whether waited out here or
            // parked by the dispatcher: a resume request that finds it paused must find
            // its waiter too.
            let wait = match self.report.resume_at {
                Some(at) if status == ExecutionStatus::Paused => {
                    Some((self.exec.pauses.register(self.recorder.job_id, at), self.exec.parks(at)))
                }
                _ => None,
            };
            if !self.recorder.has_ended() {
                self.report.finished_at = SystemTime::now();
                self.recorder.finished(&self.report, written).await?;
            }
            if status != ExecutionStatus::Paused {
                self.exec.observe_end(&self.report);
                return Ok(self.report);
            }
            let wait = match wait {
                None => return Ok(self.report),
                Some((wait, true)) => {
                    wait.hand_over();
                    return Ok(self.report);
                }
                Some((wait, false)) => wait,
            };
            let paused = written - 1;
            wait.ended().await;
            super::hold::check(self.recorder.job_id)?;
            self.unpause(paused).await?;
            start = paused + 1;
        }
    }

    /// Ends a pause: the paused step succeeds and the execution runs again.
    pub(super) async fn unpause(&mut self, paused: usize) -> Result<(), StoreError> {
        let now = SystemTime::now();
        let r = &mut self.report.steps[paused];
        let out = std::sync::Arc::new(json!({ "resumed_at": crate::time_format::rfc3339(now) }));
        r.status = StepStatus::Success;
        r.output = Some(out.clone());
        r.note = None;
        r.finished_at = Some(now);
        r.duration = r
            .started_at
            .and_then(|s| now.duration_since(s).ok())
            .unwrap_or_default();
        for later in &mut self.report.steps[paused + 1..] {
            later.note = None;
        }
        self.sources.insert(self.flow.steps[paused].name.clone(), out, None);
        self.report.resume_at = None;
        self.recorder.step_ended(&self.report, paused);
        self.report.status = ExecutionStatus::Running;
        self.recorder.status(&self.report).await
    }

    fn ctx(&self, step: &str) -> CallContext {
        CallContext {
            job_id: self.report.job_id.clone(),
            project: self.flow.project.clone(),
            flow: self.flow.name.clone(),
            step: step.to_string(),
            attempt: self.report.attempt,
            environment: self.exec.environment.clone(),
        }
    }

    fn observe_step(&self, i: usize) {
        if let Some(o) = &self.exec.observer {
            let s = &self.report.steps[i];
            o.step_ended(&self.flow.name, &s.name, s.status, s.duration, s.fuel_used);
        }
    }

    /// Runs steps from `start` until one fails (with `on_error = "fail"`), pauses, or the
    /// allocated time runs out at `deadline`, or the last ends; the status it reached and
    /// how many steps' rows are written.
    async fn run_steps(&mut self, start: usize, deadline: Instant) -> Result<(ExecutionStatus, usize), StoreError> {
        // Steps whose output is not there, and why: dependents are skipped.
        let mut unavailable: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut continued_past_failure = false;
        let flow = self.flow;
        for (i, r) in self.report.steps[..start].iter().enumerate() {
            match r.status {
                // Recovery after a crash between a failing step and the end of the run.
                StepStatus::Failed if r.note.as_deref() == Some(FLOW_TIMEOUT_NOTE) => {
                    let why = format!("the flow's timeout of {} was exceeded", format_duration(flow.timeout));
                    skip_rest(&mut self.report.steps[i + 1..], &why);
                    return Ok((ExecutionStatus::Rejected, start));
                }
                StepStatus::Failed if flow.steps[i].on_error == OnError::Fail => {
                    let why = format!("step \"{}\" failed", r.name);
                    skip_rest(&mut self.report.steps[i + 1..], &why);
                    return Ok((ExecutionStatus::Failed, start));
                }
                StepStatus::Failed => {
                    unavailable.insert(r.name.clone(), "failed");
                    continued_past_failure = true;
                }
                StepStatus::Skipped => {
                    unavailable.insert(r.name.clone(), "was skipped");
                }
                _ => {}
            }
        }
        for (i, step) in flow.steps.iter().enumerate().skip(start) {
            // A run whose lease was lost leaves the execution to its new owner.
            super::hold::check(self.recorder.job_id)?;
            if Instant::now() >= deadline {
                skip_rest(
                    &mut self.report.steps[i..],
                    &format!("the flow's timeout of {} was exceeded", format_duration(flow.timeout)),
                );
                return Ok((ExecutionStatus::Rejected, i));
            }
            if let Some((dep, why)) = step.needs.iter().find_map(|d| unavailable.get(d).map(|w| (d, *w))) {
                let r = &mut self.report.steps[i];
                r.status = StepStatus::Skipped;
                r.note = Some(format!("needs steps.{dep}, which {why}"));
                unavailable.insert(step.name.clone(), "was skipped");
                self.recorder.step_ended(&self.report, i);
                self.observe_step(i);
                continue;
            }
            self.report.steps[i].started_at = Some(SystemTime::now());
            self.report.steps[i].status = StepStatus::Running;
            // Built-in steps end the moment they start: their end is the one transition.
            let start_deferred = match &step.action {
                Action::Connector { call, .. } if !self.exec.reaches_out(&call.connector) => {
                    self.recorder.step_started_later(&self.report, i);
                    true
                }
                Action::Connector { .. } => {
                    self.recorder.step_started(&self.report, i).await?;
                    false
                }
                _ => false,
            };
            let call = StepCall {
                exec: self.exec,
                flow,
                step,
                sources: &self.sources,
                deadline,
                ctx: self.ctx(&step.name),
                tries: Tries {
                    recorder: &self.recorder,
                    attempt: self.report.attempt,
                    index: i,
                    durable: !start_deferred,
                },
            };
            let run = call.run(&mut self.report.steps[i]);
            let outcome = if start_deferred {
                self.recorder.visible_while(run).await??
            } else {
                run.await?
            };
            if let StepOutcome::Failed = outcome {
                let e = super::events::step_failed(&self.report.steps[i]);
                self.report.steps[i].events.push(e);
            }
            self.recorder.step_ended(&self.report, i);
            self.observe_step(i);
            match outcome {
                StepOutcome::Done(output, body_text) => {
                    if let Action::Respond { .. } = step.action {
                        self.report.response = Some(output.clone());
                        if i + 1 == flow.steps.len() {
                            // Nothing runs after a last respond step: the execution's end
                            // is made durable with the response, one commit fewer.
                            self.report.status = if continued_past_failure {
                                ExecutionStatus::PartiallyExecuted
                            } else {
                                ExecutionStatus::Success
                            };
                            self.report.finished_at = SystemTime::now();
                            self.recorder.ended_with_response(&self.report);
                        }
                        // The caller is answered only once the response is durable.
                        self.recorder.flush().await?;
                        self.recorder.respond(&output, body_text);
                    }
                    // Shared with its report, with the text its connector gave.
                    let text = self.report.steps[i].output_text().cloned();
                    self.sources.insert(step.name.clone(), output, text);
                }
                StepOutcome::Failed => {
                    unavailable.insert(step.name.clone(), "failed");
                    if step.on_error == OnError::Fail {
                        skip_rest(
                            &mut self.report.steps[i + 1..],
                            &format!("step \"{}\" failed", step.name),
                        );
                        return Ok((ExecutionStatus::Failed, i + 1));
                    }
                    continued_past_failure = true;
                }
                StepOutcome::OutOfTime => {
                    skip_rest(
                        &mut self.report.steps[i + 1..],
                        &format!("the flow's timeout of {} was exceeded", format_duration(flow.timeout)),
                    );
                    return Ok((ExecutionStatus::Rejected, i + 1));
                }
                StepOutcome::Paused(resume_at) => {
                    self.report.resume_at = resume_at;
                    for r in &mut self.report.steps[i + 1..] {
                        r.note = Some(format!("waits for step \"{}\" to be resumed", step.name));
                    }
                    return Ok((ExecutionStatus::Paused, i + 1));
                }
            }
        }
        let status = if continued_past_failure {
            ExecutionStatus::PartiallyExecuted
        } else {
            ExecutionStatus::Success
        };
        Ok((status, flow.steps.len()))
    }
}

pub(super) fn skip_rest(steps: &mut [StepReport], why: &str) {
    for r in steps {
        r.status = StepStatus::Skipped;
        r.note = Some(why.to_string());
    }
}

/// A pending report row for each step of the flow.
pub(super) fn fresh_steps(flow: &Flow) -> Vec<StepReport> {
    flow.steps
        .iter()
        .map(|s| StepReport::new(&s.name, step_kind(s)))
        .collect()
}

fn step_kind(s: &Step) -> &'static str {
    match s.action {
        Action::Connector { .. } => "connector",
        Action::Pause(_) => "pause",
        Action::Respond { .. } => "respond",
    }
}
