//! Picking an execution up again from what the store holds: resuming a paused one (at
//! its due time or on request), recovering after a crash, and manual retries, each of
//! which is a new attempt of the same job.
//!
//! Recovery is at-least-once per step: a step that was running when the process died
//! has no stored result and runs again; a step with a stored result never does.

use super::executor::Executor;
use super::record::Recorder;
use super::report::{Call, ExecutionReport, StepReport, TriggerReport};
use super::run::{Run, fresh_steps};
use super::step::Sources;
use crate::config::{Action, Flow};
use crate::plugin::{ErrorKind, Failure};
use crate::status::{ExecutionStatus, StepStatus};
use crate::store::{Execution, JobId, PayloadKey, PayloadKind, Store, StoreError, Write};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};

/// How a resume was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// A pause until resumed ended in the store: the execution is to be run on.
    Stored,
    /// A timed pause was woken: the task that waited it out runs it on.
    Woken,
}

/// Manual retries allowed per execution (3 runs in all).
pub const MAX_MANUAL_RETRIES: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryFrom {
    /// From the first step of the last attempt that did not succeed.
    FailedStep,
    Start,
}

/// Why a manual retry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryRefusal {
    #[error(
        "status {0} is not retryable: only failed, partially_executed and rejected executions are; start a new execution to run the flow again"
    )]
    NotRetryable(ExecutionStatus),
    #[error(
        "the {MAX_MANUAL_RETRIES} manual retries are used up (attempt {0} was the last); start a new execution instead"
    )]
    LimitReached(u32),
    #[error(
        "the flow has a respond step: the HTTP caller of this execution is gone; send the request again to start a new execution"
    )]
    HasRespond,
    #[error(
        "the flow's trigger changed since this execution was taken (fingerprint {stored}, now {current}): its payload may not fit; start a new execution instead"
    )]
    TriggerChanged { stored: String, current: String },
}

impl RetryRefusal {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RetryRefusal::NotRetryable(_) => "not_retryable",
            RetryRefusal::LimitReached(_) => "retry_limit",
            RetryRefusal::HasRespond => "has_respond_step",
            RetryRefusal::TriggerChanged { .. } => "trigger_changed",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContinueError {
    #[error("no execution {0}")]
    NotFound(JobId),
    #[error("execution {0} is {1}, not paused")]
    NotPaused(JobId, ExecutionStatus),
    #[error(
        "execution {0} is in a timed pause (due at {1}) that no task of this daemon waits out yet (it was just recovered); try again in a moment"
    )]
    NotWaiting(JobId, String),
    #[error("execution {job} belongs to flow \"{found}\", not \"{expected}\"")]
    WrongFlow {
        job: JobId,
        found: String,
        expected: String,
    },
    #[error("executions can only be continued with a store (--data-dir)")]
    NoStore,
    #[error("retry refused: {0}")]
    Refused(#[from] RetryRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::store_errors_into!(ContinueError);

/// Whether `exec` may be retried now under `flow`, and if not, why.
pub fn retry_refusal(flow: &Flow, exec: &Execution) -> Option<RetryRefusal> {
    if !matches!(
        exec.status,
        ExecutionStatus::Failed | ExecutionStatus::PartiallyExecuted | ExecutionStatus::Rejected
    ) {
        return Some(RetryRefusal::NotRetryable(exec.status));
    }
    if exec.attempt > MAX_MANUAL_RETRIES {
        return Some(RetryRefusal::LimitReached(exec.attempt));
    }
    if flow.has_respond_step() {
        return Some(RetryRefusal::HasRespond);
    }
    if exec.trigger_fingerprint != flow.trigger_fingerprint {
        return Some(RetryRefusal::TriggerChanged {
            stored: exec.trigger_fingerprint.clone(),
            current: flow.trigger_fingerprint.clone(),
        });
    }
    None
}

/// Manual retries still possible (2, 1, 0), whatever else may refuse one.
pub fn retries_left(exec: &Execution) -> u32 {
    (MAX_MANUAL_RETRIES + 1).saturating_sub(exec.attempt)
}

/// The index of the step a paused execution waits in.
fn paused_step(report: &ExecutionReport) -> usize {
    report
        .steps
        .iter()
        .position(|s| s.status == StepStatus::Paused)
        .unwrap_or(0)
}

/// What a try cut short by the end of the process shows.
pub(super) const INTERRUPTED: &str = "interrupted by a restart";

/// The try a step was in when the process died: nothing of it is known but its start.
fn interrupted_try(started_at: SystemTime) -> Call {
    Call {
        started_at,
        duration: Duration::ZERO,
        fuel_used: 0,
        error: Some(Failure {
            kind: ErrorKind::Host,
            code: Some("interrupted".into()),
            message: format!("{INTERRUPTED}: flowd stopped while this try ran; the step ran again"),
            retryable: true,
        }),
        logs: Vec::new(),
        dropped_logs: 0,
    }
}

/// Stored seconds as a duration; a value no duration holds (a damaged record) is zero.
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

fn is_final(s: StepStatus) -> bool {
    matches!(s, StepStatus::Success | StepStatus::Failed | StepStatus::Skipped)
}

/// Gives each step of `exec` that read its config from its flow version's shared one (see
/// [`PayloadKey::shared_config`]) its own copy. Shared configs are found by the version the
/// execution row names, and a stored execution taken up under another version of its flow
/// is about to name that one: without the copy, its earlier attempts would show the new
/// version's configs, or none. Idempotent: a step with its own config is left alone.
async fn pin_configs(store: &dyn Store, exec: &Execution) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::new();
    let mut writes = Vec::new();
    for row in store.steps(exec.job_id).await? {
        let own = PayloadKey {
            job_id: exec.job_id,
            attempt: row.reused_from.unwrap_or(row.attempt),
            step: row.index,
            kind: PayloadKind::Config,
        };
        // Only a step whose connector was found was given a config.
        if row.connector.is_none() || !seen.insert((own.attempt, own.step)) || store.payload(own).await?.is_some() {
            continue;
        }
        let shared = PayloadKey::shared_config(&exec.project, &exec.flow, &exec.flow_version, row.index);
        if let Some(value) = store.payload(shared).await? {
            writes.push(Write::Payload {
                key: own,
                value: value.into(),
                text: None,
            });
        }
    }
    if !writes.is_empty() {
        store.write(writes).await?;
    }
    Ok(())
}

impl Executor {
    async fn stored(&self, flow: &Flow, job: JobId) -> Result<Execution, ContinueError> {
        let store = self.store.as_ref().ok_or(ContinueError::NoStore)?;
        let exec = store.execution(job).await?.ok_or(ContinueError::NotFound(job))?;
        if exec.flow != flow.name {
            return Err(ContinueError::WrongFlow {
                job,
                found: exec.flow,
                expected: flow.name.clone(),
            });
        }
        Ok(exec)
    }

    /// The stored execution `job`, about to run on under `flow` (see [`pin_configs`]).
    async fn taken_up(&self, flow: &Flow, job: JobId) -> Result<Execution, ContinueError> {
        let exec = self.stored(flow, job).await?;
        if exec.flow_version != flow.version
            && let Some(store) = &self.store
        {
            pin_configs(store.as_ref(), &exec).await?;
        }
        Ok(exec)
    }

    /// A recorder that goes on writing the execution's current attempt.
    async fn recorder(&self, flow: &Flow, exec: &Execution) -> Result<Recorder, StoreError> {
        let store = self.store.as_ref().ok_or(crate::store::ReadError::Closed)?;
        let from_step = store
            .attempts(exec.job_id)
            .await?
            .into_iter()
            .find(|a| a.attempt == exec.attempt)
            .map_or(0, |a| a.from_step);
        Ok(self.recorder_from(flow, exec, from_step))
    }

    fn recorder_from(&self, flow: &Flow, exec: &Execution, from_step: u32) -> Recorder {
        Recorder::new(
            self.store.clone(),
            exec.job_id,
            &flow.trigger_fingerprint,
            exec.created_at,
            from_step,
        )
    }

    /// A run of the current attempt of a stored execution, picked up now.
    fn run_of<'a>(&'a self, flow: &'a Flow, report: ExecutionReport, sources: Sources, recorder: Recorder) -> Run<'a> {
        Run {
            exec: self,
            flow,
            report,
            sources,
            recorder,
            clock: Instant::now(),
        }
    }

    /// The report of `exec` as its row alone tells it: every step pending.
    fn bare(&self, flow: &Flow, exec: &Execution, trigger: Option<std::sync::Arc<Value>>) -> ExecutionReport {
        ExecutionReport {
            job_id: exec.job_id.to_string(),
            project: exec.project.clone(),
            flow: exec.flow.clone(),
            flow_version: flow.version.clone(),
            trigger_kind: flow.trigger.kind.name(),
            environment: exec.environment.clone(),
            attempt: exec.attempt,
            status: exec.status,
            started_at: exec.started_at.unwrap_or(exec.created_at),
            finished_at: exec.finished_at.unwrap_or(exec.created_at),
            duration: Duration::ZERO,
            trigger: TriggerReport {
                kind: flow.trigger.kind.name(),
                payload: trigger,
                payload_text: None,
                dropped: false,
                note: None,
                connector: None,
                call: None,
                events: Vec::new(),
            },
            steps: fresh_steps(flow),
            resume_at: exec.resume_at,
            response: None,
        }
    }

    /// The report and step data of the execution's current attempt, from the store.
    async fn load(&self, flow: &Flow, exec: &Execution) -> Result<(ExecutionReport, Sources), StoreError> {
        let store = self.store.as_ref().ok_or(crate::store::ReadError::Closed)?;
        let trigger = store
            .payload(PayloadKey::trigger(exec.job_id))
            .await?
            .unwrap_or(Value::Null);
        let trigger = std::sync::Arc::new(trigger);
        let mut report = self.bare(flow, exec, Some(trigger.clone()));
        let mut data = Sources::new(trigger, None);
        for row in store
            .steps(exec.job_id)
            .await?
            .into_iter()
            .filter(|r| r.attempt == exec.attempt)
        {
            let i = row.index as usize;
            // A row of a step the flow no longer has at that place does not apply.
            let Some(s) = report.steps.get_mut(i).filter(|s| s.name == row.name) else {
                continue;
            };
            s.status = row.status;
            s.connector = row.connector;
            s.started_at = row.started_at;
            s.finished_at = row.finished_at;
            s.duration = seconds(row.duration);
            s.fuel_used = row.fuel_used;
            s.error = row.error;
            s.note = row.note;
            s.reused_from = row.reused_from;
            // Their logs are stored already: a rewrite of the row must not write them again.
            s.tries = row
                .tries
                .into_iter()
                .map(|t| Call {
                    started_at: t.started_at,
                    duration: seconds(t.duration),
                    fuel_used: t.fuel_used,
                    error: t.error,
                    logs: Vec::new(),
                    dropped_logs: t.dropped_logs,
                })
                .collect();
            if row.status == StepStatus::Success {
                let attempt = row.reused_from.unwrap_or(row.attempt);
                let key = PayloadKey {
                    job_id: exec.job_id,
                    attempt,
                    step: row.index,
                    kind: PayloadKind::Output,
                };
                if let Some(out) = store.payload(key).await? {
                    let shared = std::sync::Arc::new(out);
                    if matches!(flow.steps[i].action, Action::Respond { .. }) {
                        report.response = Some(shared.clone());
                    }
                    s.output = Some(shared.clone());
                    data.insert(row.name, shared, None);
                }
            }
        }
        Ok((report, data))
    }

    /// Resumes a paused execution now (the paused step succeeds) and runs it on.
    pub async fn resume(&self, flow: &Flow, job: JobId) -> Result<ExecutionReport, ContinueError> {
        let exec = self.taken_up(flow, job).await?;
        if exec.status != ExecutionStatus::Paused {
            return Err(ContinueError::NotPaused(job, exec.status));
        }
        let (run, paused) = self.end_pause(flow, &exec).await?;
        Ok(run.drive(paused + 1).await?)
    }

    /// Ends the pause of `exec` (paused) durably: the paused step succeeds and the
    /// execution is `running`. What to drive on with, and the paused step's index.
    async fn end_pause<'a>(&'a self, flow: &'a Flow, exec: &Execution) -> Result<(Run<'a>, usize), ContinueError> {
        let (report, data) = self.load(flow, exec).await?;
        let recorder = self.recorder(flow, exec).await?;
        let paused = paused_step(&report);
        let mut run = self.run_of(flow, report, data, recorder);
        run.unpause(paused).await?;
        Ok((run, paused))
    }

    /// Continues an execution the store holds unfinished (after a crash or restart):
    /// pending and queued ones start, running ones go on at the first step without a
    /// stored result, paused ones wait for their due time (or stay paused until resumed).
    pub async fn recover(&self, flow: &Flow, job: JobId) -> Result<ExecutionReport, ContinueError> {
        let exec = self.taken_up(flow, job).await?;
        let (mut report, data) = self.load(flow, &exec).await?;
        let recorder = self.recorder(flow, &exec).await?;
        match exec.status {
            s if s.is_final() => Ok(report),
            ExecutionStatus::Paused => {
                if exec.resume_at.is_none() {
                    return Ok(report);
                }
                let paused = paused_step(&report);
                if let Some(at) = exec.resume_at {
                    if self.parks(at) {
                        return Ok(report);
                    }
                    self.pauses.wait(job, at).await;
                }
                super::hold::check(job)?;
                let mut run = self.run_of(flow, report, data, recorder);
                run.unpause(paused).await?;
                Ok(run.drive(paused + 1).await?)
            }
            _ => {
                let start = report
                    .steps
                    .iter()
                    .position(|s| !is_final(s.status))
                    .unwrap_or(report.steps.len());
                // The step that was running when the process died runs again: the try it
                // was in shows as interrupted, so a side effect that may have happened
                // twice is visible.
                // Its earlier tries (cut short by earlier restarts too) stay with it.
                let kept = report.steps.get(start).map(|s| {
                    (
                        s.status == StepStatus::Running,
                        s.tries.clone(),
                        s.fuel_used,
                        s.started_at,
                    )
                });
                for s in &mut report.steps[start..] {
                    *s = StepReport::new(&s.name, s.kind);
                }
                if let Some((_, tries, fuel_used, _)) = &kept {
                    let s = &mut report.steps[start];
                    s.tries = tries.clone();
                    s.fuel_used = *fuel_used;
                }
                let cut = kept
                    .filter(|k| k.0)
                    .map(|(_, tries, _, started_at)| (tries, started_at));
                let interrupted = cut.map(|(tries, started_at)| {
                    let s = &mut report.steps[start];
                    // The cut try began once the tries stored before it ended (they are
                    // durable before the next one leaves).
                    let began = tries
                        .last()
                        .map(|t| crate::time_format::after(t.started_at, t.duration))
                        .or(started_at)
                        .unwrap_or(exec.created_at);
                    s.tries.push(interrupted_try(began));
                    let message = format!(
                        "step \"{}\" was interrupted by a restart (try {} began at {} or soon after); it runs again, so what it did outside flowd before the restart may happen twice",
                        s.name,
                        s.tries.len(),
                        crate::time_format::rfc3339(began)
                    );
                    (start, message)
                });
                report.status = ExecutionStatus::Running;
                if exec.started_at.is_none() {
                    report.started_at = SystemTime::now();
                }
                match interrupted {
                    Some((i, message)) => {
                        tracing::warn!(job = %job, flow = %flow.name, step = %report.steps[i].name, "{message}");
                        let connector = match &flow.steps[i].action {
                            Action::Connector { call, .. } => Some(call.connector.as_str()),
                            _ => None,
                        };
                        recorder.recovered(&report, i, connector, message).await?;
                    }
                    None => recorder.status(&report).await?,
                }
                Ok(self.run_of(flow, report, data, recorder).drive(start).await?)
            }
        }
    }

    /// Ends an execution that waited too long to start (`queued` past the throttle's
    /// `max_wait`): `rejected`, every step skipped with `why`.
    pub async fn reject_waiting(&self, flow: &Flow, job: JobId, why: &str) -> Result<ExecutionReport, ContinueError> {
        let exec = self.stored(flow, job).await?;
        if exec.status.is_final() {
            let (report, _) = self.load(flow, &exec).await?;
            return Ok(report);
        }
        let (mut report, _) = self.load(flow, &exec).await?;
        let recorder = self.recorder(flow, &exec).await?;
        for s in &mut report.steps {
            *s = StepReport::new(&s.name, s.kind);
            s.status = StepStatus::Skipped;
            s.note = Some(why.to_string());
        }
        report.status = ExecutionStatus::Rejected;
        report.finished_at = SystemTime::now();
        recorder.finished(&report, 0).await?;
        self.observe_end(&report);
        Ok(report)
    }

    /// Ends an execution flowd cannot run on: it panicked on it, or cannot read or write
    /// its records. The execution ends `failed`: the step it was in fails with a `host`
    /// error saying `why` (the steps after it are skipped), and an `error` record says the
    /// same, so a restart finds it final instead of meeting the same fault again.
    pub async fn abandon(&self, flow: &Flow, job: JobId, why: &str) -> Result<(), ContinueError> {
        let exec = self.stored(flow, job).await?;
        if exec.status.is_final() {
            return Ok(());
        }
        // Records that cannot be read are replaced by what the execution row tells.
        let mut report = match self.load(flow, &exec).await {
            Ok((report, _)) => report,
            Err(_) => self.bare(flow, &exec, None),
        };
        let recorder = match self.recorder(flow, &exec).await {
            Ok(r) => r,
            Err(_) => self.recorder_from(flow, &exec, 0),
        };
        let message = format!("flowd stopped this execution: {why}");
        let at = report
            .steps
            .iter()
            .position(|s| !is_final(s.status))
            .unwrap_or(report.steps.len());
        if let Some(s) = report.steps.get_mut(at) {
            s.status = StepStatus::Failed;
            s.note = None;
            s.finished_at = Some(SystemTime::now());
            s.error = Some(Failure {
                kind: ErrorKind::Host,
                code: Some("stopped".into()),
                message: message.clone(),
                retryable: false,
            });
            let name = s.name.clone();
            for later in &mut report.steps[at + 1..] {
                *later = StepReport::new(&later.name, later.kind);
                later.status = StepStatus::Skipped;
                later.note = Some(format!("step \"{name}\" failed"));
            }
        }
        report.status = ExecutionStatus::Failed;
        report.resume_at = None;
        report.finished_at = SystemTime::now();
        recorder.abandoned(&report, at, message).await?;
        self.observe_end(&report);
        Ok(())
    }

    /// A manual retry: a new attempt of the same job, with the stored trigger payload and
    /// the flow's current steps, from the first step that did not succeed (reusing the
    /// earlier steps' outputs) or from the start.
    pub async fn retry(&self, flow: &Flow, job: JobId, from: RetryFrom) -> Result<ExecutionReport, ContinueError> {
        self.accept_retry(flow, job, from).await?;
        self.recover(flow, job).await
    }

    /// Accepts a manual retry: the new attempt is stored (`pending`, or `queued` for a
    /// throttled flow) with the steps it reuses, so [`Executor::recover`] runs it from
    /// the first step it does not reuse, now or after a restart. Returns the attempt.
    pub async fn accept_retry(&self, flow: &Flow, job: JobId, from: RetryFrom) -> Result<u32, ContinueError> {
        let exec = self.taken_up(flow, job).await?;
        if let Some(refusal) = retry_refusal(flow, &exec) {
            return Err(refusal.into());
        }
        let (previous, _) = self.load(flow, &exec).await?;
        let attempt = exec.attempt + 1;
        let start = match from {
            RetryFrom::Start => 0,
            RetryFrom::FailedStep => previous
                .steps
                .iter()
                .position(|s| s.status != StepStatus::Success)
                .unwrap_or(previous.steps.len()),
        };
        let now = SystemTime::now();
        let mut report = ExecutionReport {
            attempt,
            status: if flow.throttle.is_some() {
                ExecutionStatus::Queued
            } else {
                ExecutionStatus::Pending
            },
            started_at: now,
            finished_at: now,
            resume_at: None,
            response: None,
            steps: fresh_steps(flow),
            ..previous.clone()
        };
        let recorder = self.recorder_from(flow, &exec, start as u32);
        for i in 0..start {
            let before = &previous.steps[i];
            let s = &mut report.steps[i];
            let from_attempt = before.reused_from.unwrap_or(exec.attempt);
            s.status = StepStatus::Success;
            s.connector = before.connector.clone();
            s.started_at = before.started_at;
            s.finished_at = before.finished_at;
            s.reused_from = Some(from_attempt);
            s.note = Some(format!("output reused from attempt {from_attempt}"));
            s.output = before.output.clone();
            recorder.step_ended(&report, i);
        }
        // The reused steps go out with the attempt's row, in one transaction.
        recorder.status(&report).await?;
        Ok(attempt)
    }

    /// Ends a pause. One that waits until resumed ends durably (the paused step succeeds,
    /// the execution is `running`), so [`Executor::recover`] runs the rest, now or after
    /// a restart. A timed pause is woken: the task waiting it out here goes on now. When
    /// no task here waits it out, `sole` says the caller holds the execution's claim
    /// (nobody else does, so nobody waits it out anywhere): the timed pause then ends
    /// durably too; otherwise the task about to wait may not have begun yet (not waiting).
    pub async fn accept_resume(&self, flow: &Flow, job: JobId, sole: bool) -> Result<Resumed, ContinueError> {
        let exec = self.taken_up(flow, job).await?;
        if exec.status != ExecutionStatus::Paused {
            return Err(ContinueError::NotPaused(job, exec.status));
        }
        if let Some(at) = exec.resume_at {
            // The task waiting out the pause goes on at once.
            if self.pauses.wake(job) {
                return Ok(Resumed::Woken);
            }
            if !sole {
                return Err(ContinueError::NotWaiting(job, crate::time_format::rfc3339(at)));
            }
        }
        self.end_pause(flow, &exec).await?;
        Ok(Resumed::Stored)
    }
}
