//! The executor: turns a trigger event into a payload (through the flow's trigger
//! connector, if any), then runs the flow's steps in order, resolving placeholders,
//! enforcing limits and the flow's allocated time, retrying retryable failures with
//! exponential backoff and jitter, and deciding every step's and the execution's status.

use super::record::Recorder;
use super::redact::Secrets;
use super::report::{Call, ConnectorUse, ExecutionReport, StepReport, TriggerReport};
use super::status::{ExecutionStatus, StepStatus};
use crate::config::units::format_duration;
use crate::config::{Action, Flow, OnError, Pause, RetryPolicy, Step, TriggerKind};
use crate::plugin::{CallContext, ErrorKind, Failure, Invocation, Registry, TriggerEvent, World};
use crate::store::{JobId, Store, StoreError, Write};
use crate::sync::Lock as _;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The note on a step the flow's timeout interrupted: recovery reads it to know the
/// execution was rejected.
pub(super) const FLOW_TIMEOUT_NOTE: &str = "interrupted by the flow's timeout";

/// What became of an event.
pub enum Admission {
    Accepted(Box<Accepted>),
    /// The trigger connector dropped the event; no execution was stored, only the
    /// trigger's log records and the host's `event_dropped` record.
    Dropped(ExecutionReport),
    /// The trigger failed; the execution is stored `failed`.
    Failed(ExecutionReport),
    /// The event's payload is over `limits.max_payload` (its note says by how much);
    /// nothing of it was stored.
    TooLarge(ExecutionReport),
}

/// What the trigger made of an event.
enum Triggered {
    Payload(Value),
    /// The trigger connector returned none.
    Dropped,
    /// The payload the event itself makes (no trigger connector) is over the limit.
    TooLarge(String),
    Failed(Failure),
}

/// An execution stored `pending`, ready to run.
pub struct Accepted {
    pub job_id: JobId,
    report: ExecutionReport,
    data: Data,
    recorder: Recorder,
    clock: Instant,
}

impl Accepted {
    /// Sends the output of the flow's `respond` step to `tx` when it has run.
    pub fn respond_to(&self, tx: tokio::sync::oneshot::Sender<Value>) {
        *self.recorder.responder.locked() = Some(tx);
    }
}

pub struct Executor {
    pub(super) registry: Arc<Registry>,
    pub(super) environment: String,
    pub(super) store: Option<Arc<dyn Store>>,
    /// Called once an execution is durably accepted (for `flowd run --count`).
    pub(super) on_accepted: Option<Arc<dyn Fn(JobId) + Send + Sync>>,
    /// Where ended executions and steps are counted (the daemon's `/metrics`).
    pub(super) metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Timed pauses waited out here, which a resume may end early.
    pub(super) pauses: Arc<super::Pauses>,
    /// A timed pause due later than this is not waited out by the run: the run returns
    /// the execution `paused` and its caller (the daemon's dispatcher) resumes it when
    /// due, so a long pause holds no worker. `None`: every pause is waited out in the run.
    pub(super) park_after: Option<Duration>,
}

/// The data steps read: the trigger payload and each successful step's output.
pub(super) struct Data {
    pub(super) trigger: Value,
    pub(super) outputs: Map<String, Value>,
}

/// A step's input: the trigger payload and the outputs of the steps before it.
#[derive(serde::Serialize)]
pub struct StepInput<'a> {
    pub trigger: &'a Value,
    pub steps: &'a Map<String, Value>,
}

impl StepInput<'_> {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("JSON values serialize")
    }
}

impl Data {
    /// A step's input as the JSON text a connector receives, written from the data in
    /// place.
    fn input_json(&self) -> String {
        serde_json::to_string(&StepInput {
            trigger: &self.trigger,
            steps: &self.outputs,
        })
        .expect("JSON values serialize")
    }
}

impl Executor {
    pub fn new(registry: Arc<Registry>, environment: impl Into<String>) -> Executor {
        Executor {
            registry,
            environment: environment.into(),
            store: None,
            on_accepted: None,
            metrics: None,
            pauses: Arc::default(),
            park_after: None,
        }
    }

    /// Returns executions paused for longer than `after` instead of waiting them out (see
    /// [`Executor::parks`]).
    pub fn park_pauses_after(mut self, after: Duration) -> Executor {
        self.park_after = Some(after);
        self
    }

    /// Whether a pause due at `at` is left to the caller rather than waited out here.
    pub fn parks(&self, at: SystemTime) -> bool {
        self.park_after
            .is_some_and(|after| at.duration_since(SystemTime::now()).is_ok_and(|left| left > after))
    }

    /// Where this executor's timed pauses are waited out (and woken).
    pub fn pauses(&self) -> &Arc<super::Pauses> {
        &self.pauses
    }

    /// Shares `pauses` (every executor of a daemon waits out its timed pauses there).
    pub fn with_pauses(mut self, pauses: Arc<super::Pauses>) -> Executor {
        self.pauses = pauses;
        self
    }

    /// Counts ended executions and steps in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Executor {
        self.metrics = Some(metrics);
        self
    }

    pub(super) fn count_end(&self, report: &ExecutionReport) {
        if let Some(m) = &self.metrics
            && report.status.is_final()
        {
            m.execution_ended(&report.flow, report.status);
        }
    }

    fn count_step(&self, flow: &Flow, report: &ExecutionReport, i: usize) {
        if let Some(m) = &self.metrics {
            let s = &report.steps[i];
            m.step_ended(&flow.name, &s.name, s.status, s.duration, s.fuel_used);
        }
    }

    /// Calls `f` with each job id once its execution is durably accepted.
    pub fn on_accepted(mut self, f: impl Fn(JobId) + Send + Sync + 'static) -> Executor {
        self.on_accepted = Some(Arc::new(f));
        self
    }

    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// Records every execution in `store`, each transition before it is acted upon.
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Executor {
        self.store = Some(store);
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Runs one execution of `flow` for `event`, start to end. Fails only when the store
    /// cannot record a transition: the execution then stops where it was.
    pub async fn execute(&self, flow: &Flow, event: TriggerEvent) -> Result<ExecutionReport, StoreError> {
        match self.admit(flow, event).await? {
            Admission::Accepted(a) => self.run(flow, *a).await,
            Admission::Dropped(r) | Admission::Failed(r) | Admission::TooLarge(r) => Ok(r),
        }
    }

    /// Turns an event into an execution: runs the trigger connector (if any), then stores
    /// the execution `pending` with its payload. A dropped event stores only its log
    /// records; one whose payload is over the limit, nothing.
    pub async fn admit(&self, flow: &Flow, event: TriggerEvent) -> Result<Admission, StoreError> {
        self.admit_with(flow, event, Vec::new()).await
    }

    /// [`Executor::admit`], storing `extra` in the same transaction as the acceptance
    /// (a schedule's last fire time, so a fire is never both recorded and replayed).
    pub async fn admit_with(
        &self,
        flow: &Flow,
        event: TriggerEvent,
        extra: Vec<Write>,
    ) -> Result<Admission, StoreError> {
        self.admit_as(flow, event, extra, true).await
    }

    /// [`Executor::admit`] for a caller that is answered only by the flow's `respond`
    /// step and whose execution starts at once: its acceptance becomes durable with the
    /// first transition that must be, at the latest with the response. A crash before
    /// that loses only an execution whose caller got no answer.
    pub async fn admit_held(&self, flow: &Flow, event: TriggerEvent) -> Result<Admission, StoreError> {
        self.admit_as(flow, event, Vec::new(), false).await
    }

    async fn admit_as(
        &self,
        flow: &Flow,
        event: TriggerEvent,
        extra: Vec<Write>,
        durable: bool,
    ) -> Result<Admission, StoreError> {
        let id = JobId::new();
        let job_id = id.to_string();
        let started_at = SystemTime::now();
        let recorder = Recorder {
            store: self.store.clone(),
            job_id: id,
            trigger_fingerprint: flow.trigger_fingerprint.clone(),
            created_at: started_at,
            from_step: 0,
            responder: Default::default(),
            deferred: Default::default(),
            ended: Default::default(),
        };
        let clock = Instant::now();
        let mut report = ExecutionReport {
            job_id: job_id.clone(),
            project: flow.project.clone(),
            flow: flow.name.clone(),
            flow_version: flow.version.clone(),
            trigger_kind: flow.trigger.kind.name(),
            environment: self.environment.clone(),
            attempt: 1,
            // A throttled flow's executions wait in its queue; the others for a worker.
            status: if flow.throttle.is_some() {
                ExecutionStatus::Queued
            } else {
                ExecutionStatus::Pending
            },
            started_at,
            finished_at: started_at,
            duration: Duration::ZERO,
            trigger: TriggerReport {
                kind: flow.trigger.kind.name(),
                payload: None,
                dropped: false,
                note: None,
                connector: None,
                call: None,
                events: Vec::new(),
            },
            steps: fresh_steps(flow),
            resume_at: None,
            response: None,
        };
        let trigger_ctx = CallContext {
            job_id,
            project: flow.project.clone(),
            flow: flow.name.clone(),
            step: "trigger".into(),
            attempt: 1,
            environment: self.environment.clone(),
        };
        // An event that starts no run: every step skipped, saying why.
        let skip_all = |report: &mut ExecutionReport, status, why: &str| {
            report.status = status;
            for s in &mut report.steps {
                s.status = StepStatus::Skipped;
                s.note = Some(why.to_string());
            }
            report.finished_at = SystemTime::now();
            report.duration = clock.elapsed();
        };
        match self
            .trigger_payload(flow, &event, &trigger_ctx, &mut report.trigger)
            .await
        {
            Triggered::Payload(payload) => {
                report.trigger.payload = Some(payload.clone());
                if durable {
                    recorder.accepted(&report, extra).await?;
                    if let Some(f) = &self.on_accepted {
                        f(id);
                    }
                } else {
                    recorder.accepted_later(&report, extra);
                }
                let data = Data {
                    trigger: payload,
                    outputs: Map::new(),
                };
                Ok(Admission::Accepted(Box::new(Accepted {
                    job_id: id,
                    report,
                    data,
                    recorder,
                    clock,
                })))
            }
            Triggered::Dropped => {
                let t = &mut report.trigger;
                t.dropped = true;
                let connector = t.connector.as_ref().map_or("?", |c| c.name.as_str()).to_string();
                let reason = t
                    .call
                    .as_ref()
                    .and_then(|c| drop_reason(&c.logs))
                    .unwrap_or_else(|| format!("connector \"{connector}\" returned none and logged no reason"));
                t.events.push(super::events::event_dropped(&connector, &reason));
                t.note = Some(reason);
                skip_all(
                    &mut report,
                    ExecutionStatus::Success,
                    "the trigger connector dropped the event",
                );
                // No execution, but a trace: the connector's records and the host's.
                recorder.not_started(&report, extra).await?;
                Ok(Admission::Dropped(report))
            }
            Triggered::TooLarge(why) => {
                skip_all(
                    &mut report,
                    ExecutionStatus::Failed,
                    &format!("{why}; nothing was recorded"),
                );
                report.trigger.note = Some(why);
                recorder.not_started(&report, extra).await?;
                Ok(Admission::TooLarge(report))
            }
            Triggered::Failed(failure) => {
                // The event arrived and is kept, with why it could not start.
                report.trigger.events.push(super::events::trigger_failed(&failure));
                report.trigger.note = Some(failure.to_string());
                recorder.accepted(&report, extra).await?;
                skip_all(
                    &mut report,
                    ExecutionStatus::Failed,
                    &format!("the trigger failed: {failure}"),
                );
                recorder.finished(&report, 0).await?;
                self.count_end(&report);
                Ok(Admission::Failed(report))
            }
        }
    }

    /// Runs an accepted execution to its end.
    pub async fn run(&self, flow: &Flow, accepted: Accepted) -> Result<ExecutionReport, StoreError> {
        let Accepted {
            mut report,
            data,
            recorder,
            clock,
            ..
        } = accepted;
        report.status = ExecutionStatus::Running;
        report.started_at = SystemTime::now();
        // Durable with the first step's start, before the step runs.
        recorder.status_deferred(&report);
        self.drive(flow, report, data, 0, &recorder, clock).await
    }

    /// Runs an attempt's steps from `start` to a final status, through timed pauses (the
    /// execution is stored `paused` with its due time, then resumed here when it is due),
    /// and records the end. `clock` measures the reported duration.
    pub(super) async fn drive(
        &self,
        flow: &Flow,
        mut report: ExecutionReport,
        mut data: Data,
        mut start: usize,
        recorder: &Recorder,
        clock: Instant,
    ) -> Result<ExecutionReport, StoreError> {
        let job_id = report.job_id.clone();
        let attempt = report.attempt;
        let ctx = |step: &str| CallContext {
            job_id: job_id.clone(),
            project: flow.project.clone(),
            flow: flow.name.clone(),
            step: step.to_string(),
            attempt,
            environment: self.environment.clone(),
        };
        loop {
            // The flow's allocated time counts running time: a pause suspends it.
            let deadline = crate::time_format::deadline_in(flow.timeout);
            let (status, written) = self
                .run_steps(flow, &mut data, &mut report, start, deadline, &ctx, recorder)
                .await?;
            report.status = status;
            report.duration = clock.elapsed();
            if !recorder.has_ended() {
                report.finished_at = SystemTime::now();
                recorder.finished(&report, written).await?;
            }
            if status != ExecutionStatus::Paused {
                self.count_end(&report);
                return Ok(report);
            }
            let Some(at) = report.resume_at else { return Ok(report) };
            if self.parks(at) {
                return Ok(report);
            }
            let paused = written - 1;
            self.pauses.wait(recorder.job_id, at).await;
            self.unpause(flow, &mut report, &mut data, paused, recorder).await?;
            start = paused + 1;
        }
    }

    /// Ends a pause: the paused step succeeds and the execution runs again.
    pub(super) async fn unpause(
        &self,
        flow: &Flow,
        report: &mut ExecutionReport,
        data: &mut Data,
        paused: usize,
        recorder: &Recorder,
    ) -> Result<(), StoreError> {
        let now = SystemTime::now();
        let r = &mut report.steps[paused];
        let out = json!({ "resumed_at": crate::time_format::rfc3339(now) });
        r.status = StepStatus::Success;
        r.output = Some(out.clone());
        r.note = None;
        r.finished_at = Some(now);
        r.duration = r
            .started_at
            .and_then(|s| now.duration_since(s).ok())
            .unwrap_or_default();
        for later in &mut report.steps[paused + 1..] {
            later.note = None;
        }
        data.outputs.insert(flow.steps[paused].name.clone(), out);
        report.resume_at = None;
        recorder.step_finished(report, paused).await?;
        report.status = ExecutionStatus::Running;
        recorder.status(report).await
    }

    /// The payload the flow starts with (credentials redacted, see [`super::redact`]), or
    /// why there is none.
    async fn trigger_payload(
        &self,
        flow: &Flow,
        event: &TriggerEvent,
        ctx: &CallContext,
        report: &mut TriggerReport,
    ) -> Triggered {
        let redacted = match &flow.trigger.kind {
            TriggerKind::Http { redacted, .. } => redacted.as_slice(),
            _ => &[],
        };
        let secrets = Secrets::of(event, redacted);
        let max = self.registry.runtime.limits().max_payload;
        let Some(call) = &flow.trigger.connector else {
            let mut payload = default_payload(event);
            secrets.payload(&mut payload);
            let size = payload.to_string().len() as u64;
            if size > max {
                return Triggered::TooLarge(format!(
                    "the trigger payload is {size} bytes, over the {max}-byte limit (limits.max_payload)"
                ));
            }
            return Triggered::Payload(payload);
        };
        let connector = match self.connector(&call.connector, World::Trigger) {
            Ok(c) => c,
            Err(f) => return Triggered::Failed(f),
        };
        report.connector = Some(ConnectorUse {
            name: connector.name.clone(),
            sha256: connector.info.sha256.clone(),
        });
        let limits = self.registry.runtime.limits().step;
        let started_at = SystemTime::now();
        let inv = connector
            .accept(&self.registry.runtime, ctx, &call.config, event, &limits)
            .await;
        let (result, mut call) = split(inv, started_at);
        secrets.logs(&mut call.logs);
        report.call = Some(call);
        match result {
            Ok(Some(mut payload)) => {
                secrets.payload(&mut payload);
                Triggered::Payload(payload)
            }
            Ok(None) => Triggered::Dropped,
            Err(f) => Triggered::Failed(f),
        }
    }

    /// Whether the connector named `name` may act outside its sandbox (an unknown one is
    /// assumed to: its step fails anyway).
    fn reaches_out(&self, name: &str) -> bool {
        self.registry.get(name).is_none_or(|c| c.reaches_out())
    }

    fn connector(&self, name: &str, world: World) -> Result<Arc<crate::plugin::Connector>, Failure> {
        let c = self
            .registry
            .get(name)
            .ok_or_else(|| Failure::new(ErrorKind::Host, format!("connector \"{name}\" is not loaded")))?;
        if c.world() != world {
            return Err(Failure::new(
                ErrorKind::Host,
                format!("connector \"{name}\" does not implement {}", world.wit_name()),
            ));
        }
        Ok(c.clone())
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_steps(
        &self,
        flow: &Flow,
        data: &mut Data,
        report: &mut ExecutionReport,
        start: usize,
        deadline: Instant,
        ctx: &(dyn Fn(&str) -> CallContext + Sync),
        recorder: &Recorder,
    ) -> Result<(ExecutionStatus, usize), StoreError> {
        // Steps whose output is not there, and why: dependents are skipped.
        let mut unavailable: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut continued_past_failure = false;
        for (i, r) in report.steps[..start].iter().enumerate() {
            match r.status {
                // Recovery after a crash between a failing step and the end of the run.
                StepStatus::Failed if r.note.as_deref() == Some(FLOW_TIMEOUT_NOTE) => {
                    let why = format!("the flow's timeout of {} was exceeded", format_duration(flow.timeout));
                    skip_rest(&mut report.steps[i + 1..], &why);
                    return Ok((ExecutionStatus::Rejected, start));
                }
                StepStatus::Failed if flow.steps[i].on_error == OnError::Fail => {
                    let why = format!("step \"{}\" failed", r.name);
                    skip_rest(&mut report.steps[i + 1..], &why);
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
            if Instant::now() >= deadline {
                skip_rest(
                    &mut report.steps[i..],
                    &format!("the flow's timeout of {} was exceeded", format_duration(flow.timeout)),
                );
                return Ok((ExecutionStatus::Rejected, i));
            }
            if let Some((dep, why)) = step.needs.iter().find_map(|d| unavailable.get(d).map(|w| (d, *w))) {
                let r = &mut report.steps[i];
                r.status = StepStatus::Skipped;
                r.note = Some(format!("needs steps.{dep}, which {why}"));
                unavailable.insert(step.name.clone(), "was skipped");
                recorder.step_finished(report, i).await?;
                self.count_step(flow, report, i);
                continue;
            }
            report.steps[i].started_at = Some(SystemTime::now());
            report.steps[i].status = StepStatus::Running;
            // Built-in steps end the moment they start: their end is the one transition.
            let start_deferred = match &step.action {
                Action::Connector { call, .. } if !self.reaches_out(&call.connector) => {
                    recorder.step_started_later(report, i);
                    true
                }
                Action::Connector { .. } => {
                    recorder.step_started(report, i).await?;
                    false
                }
                _ => false,
            };
            let tries = Tries {
                recorder,
                attempt: report.attempt,
                index: i,
                durable: !start_deferred,
            };
            let run = self.run_step(flow, step, data, &mut report.steps[i], deadline, ctx, tries);
            let outcome = if start_deferred {
                recorder.visible_while(run).await??
            } else {
                run.await?
            };
            if let StepOutcome::Failed = outcome {
                let e = super::events::step_failed(&report.steps[i]);
                report.steps[i].events.push(e);
            }
            recorder.step_finished(report, i).await?;
            self.count_step(flow, report, i);
            match outcome {
                StepOutcome::Done(output) => {
                    if let Action::Respond { .. } = step.action {
                        report.response = Some(output.clone());
                        if i + 1 == flow.steps.len() {
                            // Nothing runs after a last respond step: the execution's end
                            // is made durable with the response, one commit fewer.
                            report.status = if continued_past_failure {
                                ExecutionStatus::PartiallyExecuted
                            } else {
                                ExecutionStatus::Success
                            };
                            report.finished_at = SystemTime::now();
                            recorder.ended_with_response(report);
                        }
                        // The caller is answered only once the response is durable.
                        recorder.flush().await?;
                        recorder.respond(&output);
                    }
                    data.outputs.insert(step.name.clone(), output);
                }
                StepOutcome::Failed => {
                    unavailable.insert(step.name.clone(), "failed");
                    if step.on_error == OnError::Fail {
                        skip_rest(&mut report.steps[i + 1..], &format!("step \"{}\" failed", step.name));
                        return Ok((ExecutionStatus::Failed, i + 1));
                    }
                    continued_past_failure = true;
                }
                StepOutcome::OutOfTime => {
                    skip_rest(
                        &mut report.steps[i + 1..],
                        &format!("the flow's timeout of {} was exceeded", format_duration(flow.timeout)),
                    );
                    return Ok((ExecutionStatus::Rejected, i + 1));
                }
                StepOutcome::Paused(resume_at) => {
                    report.resume_at = resume_at;
                    for r in &mut report.steps[i + 1..] {
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

    #[allow(clippy::too_many_arguments)]
    async fn run_step(
        &self,
        flow: &Flow,
        step: &Step,
        data: &Data,
        r: &mut StepReport,
        deadline: Instant,
        ctx: &(dyn Fn(&str) -> CallContext + Sync),
        tries: Tries<'_>,
    ) -> Result<StepOutcome, StoreError> {
        let clock = Instant::now();
        let outcome = match &step.action {
            Action::Connector { call, limits } => {
                let config = match call.template.resolve(&data.trigger, &data.outputs) {
                    Ok(c) => c,
                    Err(message) => return Ok(finish_failed(r, clock, Failure::new(ErrorKind::Template, message))),
                };
                let input = data.input_json();
                let connector = match self.connector(&call.connector, World::Action) {
                    Ok(c) => c,
                    Err(f) => return Ok(finish_failed(r, clock, f)),
                };
                r.connector = Some(ConnectorUse {
                    name: connector.name.clone(),
                    sha256: connector.info.sha256.clone(),
                });
                r.config = Some(config.clone());
                let policy = step.retry.unwrap_or(RetryPolicy {
                    attempts: 1,
                    backoff: Duration::ZERO,
                    max_backoff: Duration::ZERO,
                });
                let ctx = ctx(&step.name);
                let mut try_no = 1;
                let outcome = loop {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let flow_bound = remaining <= limits.timeout;
                    let timeout = limits.timeout.min(remaining);
                    let started_at = SystemTime::now();
                    let inv = connector
                        .run(&self.registry.runtime, &ctx, &config, input.clone(), limits, timeout)
                        .await;
                    let (result, call) = split(inv, started_at);
                    r.fuel_used += call.fuel_used;
                    r.tries.push(call);
                    match result {
                        Ok(output) => break Ok(output),
                        Err(f) if f.kind == ErrorKind::Timeout && flow_bound => {
                            break Err((
                                Failure::new(
                                    ErrorKind::Timeout,
                                    format!(
                                        "interrupted: the flow's timeout of {} was exceeded",
                                        format_duration(flow.timeout)
                                    ),
                                ),
                                true,
                            ));
                        }
                        Err(f) if f.retryable && try_no < policy.attempts => {
                            let wait = backoff(&policy, try_no);
                            if crate::time_format::deadline_in(wait) >= deadline {
                                break Err((f, false));
                            }
                            r.events
                                .push(super::events::step_retry(&step.name, try_no, policy.attempts, &f, wait));
                            tokio::time::sleep(wait).await;
                            try_no += 1;
                            if tries.durable {
                                tries.recorder.retrying(tries.attempt, tries.index, r).await?;
                            }
                        }
                        Err(f) => break Err((f, false)),
                    }
                };
                match outcome {
                    Ok(output) => {
                        r.output = Some(output.clone());
                        r.status = StepStatus::Success;
                        StepOutcome::Done(output)
                    }
                    Err((f, out_of_time)) => {
                        let o = finish_failed(r, clock, f);
                        if out_of_time {
                            r.note = Some(FLOW_TIMEOUT_NOTE.into());
                            StepOutcome::OutOfTime
                        } else {
                            o
                        }
                    }
                }
            }
            Action::Pause(pause) => {
                r.status = StepStatus::Paused;
                let resume_at = match pause {
                    Pause::For(d) => {
                        let at = crate::time_format::after(SystemTime::now(), *d);
                        r.note = Some(format!(
                            "paused for {}, until {}",
                            format_duration(*d),
                            crate::time_format::rfc3339(at)
                        ));
                        Some(at)
                    }
                    Pause::UntilResumed => {
                        r.note = Some("paused until resumed".into());
                        None
                    }
                };
                r.duration = clock.elapsed();
                return Ok(StepOutcome::Paused(resume_at));
            }
            Action::Respond { status, headers, body } => {
                let resolved = body
                    .resolve(&data.trigger, &data.outputs)
                    .and_then(|b| headers.resolve(&data.trigger, &data.outputs).map(|h| (b, h)));
                match resolved {
                    Ok((body, headers)) => {
                        // Header values are text: a placeholder that gave JSON is sent as its JSON text.
                        let headers: Map<String, Value> = match headers {
                            Value::Object(m) => m
                                .into_iter()
                                .map(|(k, v)| match v {
                                    Value::String(_) => (k, v),
                                    other => (k, Value::String(other.to_string())),
                                })
                                .collect(),
                            _ => Map::new(),
                        };
                        let out = json!({ "status": status, "headers": headers, "body": body });
                        r.output = Some(out.clone());
                        r.status = StepStatus::Success;
                        StepOutcome::Done(out)
                    }
                    Err(message) => finish_failed(r, clock, Failure::new(ErrorKind::Template, message)),
                }
            }
        };
        r.finished_at = Some(SystemTime::now());
        r.duration = clock.elapsed();
        Ok(outcome)
    }
}

/// Where a step's tries are recorded while it retries.
struct Tries<'a> {
    recorder: &'a Recorder,
    attempt: u32,
    index: usize,
    /// The step can reach outside its sandbox: each try's predecessors are durable first.
    durable: bool,
}

enum StepOutcome {
    Done(Value),
    Failed,
    /// The flow's allocated time ran out during this step.
    OutOfTime,
    /// Until this time, or until resumed.
    Paused(Option<SystemTime>),
}

fn finish_failed(r: &mut StepReport, clock: Instant, f: Failure) -> StepOutcome {
    r.status = StepStatus::Failed;
    r.error = Some(f);
    r.finished_at = Some(SystemTime::now());
    r.duration = clock.elapsed();
    StepOutcome::Failed
}

fn skip_rest(steps: &mut [StepReport], why: &str) {
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

fn split<T>(inv: Invocation<T>, started_at: SystemTime) -> (Result<T, Failure>, Call) {
    let call = Call {
        started_at,
        duration: inv.duration,
        fuel_used: inv.fuel_used,
        error: inv.result.as_ref().err().cloned(),
        logs: inv.logs,
        dropped_logs: inv.dropped_logs,
    };
    (inv.result, call)
}

/// Why a trigger connector dropped an event: its last log record of level `info` or
/// above, else its last record.
fn drop_reason(logs: &[crate::plugin::LogRecord]) -> Option<String> {
    logs.iter()
        .rev()
        .find(|l| l.level >= crate::plugin::Level::Info)
        .or(logs.last())
        .map(|l| l.message.clone())
}

/// Exponential backoff with "equal jitter": between half and all of
/// `min(backoff · 2^(try-1), max_backoff)`.
fn backoff(p: &RetryPolicy, try_no: u32) -> Duration {
    let base = p
        .backoff
        .saturating_mul(1u32 << (try_no - 1).min(20))
        .min(p.max_backoff);
    let jitter = std::collections::hash_map::RandomState::new().build_hasher().finish() as f64 / u64::MAX as f64;
    base.mul_f64(0.5 + 0.5 * jitter)
}

/// The payload a flow starts with when it has no trigger connector (before redaction).
pub fn default_payload(event: &TriggerEvent) -> Value {
    match event {
        TriggerEvent::Http {
            method,
            path,
            query,
            headers,
            body,
        } => super::http_document::document(method, path, query, headers, body),
        TriggerEvent::Schedule { scheduled_at, fired_at } => {
            json!({ "kind": "schedule", "scheduled_at": scheduled_at, "fired_at": fired_at })
        }
        TriggerEvent::Manual(body) => json!({ "kind": "manual", "body": body }),
    }
}

/// The event a local run hands to the flow's trigger, built from the `--input` document.
pub fn local_event(kind: &TriggerKind, input: Value) -> TriggerEvent {
    match kind {
        TriggerKind::Http { path, method, .. } => TriggerEvent::Http {
            method: method.clone(),
            path: path.clone(),
            query: String::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: if input.is_null() {
                Vec::new()
            } else {
                input.to_string().into_bytes()
            },
        },
        TriggerKind::Schedule { .. } => {
            let now = crate::time_format::rfc3339(SystemTime::now());
            TriggerEvent::Schedule {
                scheduled_at: now.clone(),
                fired_at: now,
            }
        }
        TriggerKind::Manual => TriggerEvent::Manual(input),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3),
        };
        for _ in 0..50 {
            let b1 = backoff(&p, 1);
            assert!(
                b1 >= Duration::from_millis(500) && b1 <= Duration::from_secs(1),
                "{b1:?}"
            );
            let b3 = backoff(&p, 3);
            assert!(
                b3 >= Duration::from_millis(1500) && b3 <= Duration::from_secs(3),
                "{b3:?}"
            );
        }
    }
}
