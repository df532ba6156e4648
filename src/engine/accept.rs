//! How an event becomes an execution: its trigger payload made (see
//! [`super::trigger`]), the execution accepted and stored `pending`, then run (see
//! [`super::run`]).

use super::executor::Executor;
use super::record::Recorder;
use super::report::{ExecutionReport, Text, TriggerReport};
use super::run::{Run, fresh_steps};
use super::step::Sources;
use super::trigger::Triggered;
use crate::config::Flow;
use crate::plugin::{CallContext, TriggerEvent};
use crate::status::{ExecutionStatus, StepStatus};
use crate::store::{JobId, Lease, StoreError, Write};
use std::time::{Duration, Instant, SystemTime};

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

/// An execution stored `pending`, ready to run.
pub struct Accepted {
    pub job_id: JobId,
    report: ExecutionReport,
    sources: Sources,
    recorder: Recorder,
    clock: Instant,
    lease: Option<Lease>,
}

impl Accepted {
    /// The claim taken with the acceptance (see [`Executor::claim_as`]).
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// Sends the output of the flow's `respond` step to `tx` when it has run.
    pub fn respond_to(&self, tx: tokio::sync::oneshot::Sender<super::Reply>) {
        self.recorder.respond_to(tx);
    }
}

impl Executor {
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
        let recorder = Recorder::new(self.store.clone(), id, &flow.trigger_fingerprint, started_at, 0);
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
                payload_text: None,
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
            Triggered::Payload(payload, text) => {
                let payload = std::sync::Arc::new(payload);
                let text: Option<std::sync::Arc<str>> = text.map(Into::into);
                report.trigger.payload = Some(payload.clone());
                report.trigger.payload_text = text.as_ref().map(|t| Text::new(&payload, t.clone()));
                let mut extra = extra;
                let lease = self.claim_as.as_ref().map(|(owner, ttl)| {
                    extra.insert(
                        0,
                        Write::Claim {
                            job: id,
                            owner: owner.clone(),
                            ttl: *ttl,
                        },
                    );
                    Lease {
                        job: id,
                        owner: owner.clone(),
                        fence: 1,
                        expires: crate::time_format::after(SystemTime::now(), *ttl),
                    }
                });
                if durable {
                    recorder.accepted(&report, extra).await?;
                    if let Some(o) = &self.observer {
                        o.accepted(id);
                    }
                } else {
                    recorder.accepted_later(&report, extra);
                }
                Ok(Admission::Accepted(Box::new(Accepted {
                    job_id: id,
                    report,
                    sources: Sources::new(payload, text),
                    recorder,
                    clock,
                    lease,
                })))
            }
            Triggered::Dropped => {
                let t = &mut report.trigger;
                t.dropped = true;
                let connector = t.connector.as_ref().map_or("?", |c| c.name.as_str()).to_string();
                let reason = t
                    .call
                    .as_ref()
                    .and_then(|c| super::trigger::drop_reason(&c.logs))
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
                self.observe_end(&report);
                Ok(Admission::Failed(report))
            }
        }
    }

    /// Runs an accepted execution to its end.
    pub async fn run(&self, flow: &Flow, accepted: Accepted) -> Result<ExecutionReport, StoreError> {
        let Accepted {
            mut report,
            sources,
            recorder,
            clock,
            ..
        } = accepted;
        report.status = ExecutionStatus::Running;
        report.started_at = SystemTime::now();
        // Durable with the first step's start, before the step runs.
        recorder.status_deferred(&report);
        let run = Run {
            exec: self,
            flow,
            report,
            sources,
            recorder,
            clock,
        };
        run.drive(0).await
    }
}
