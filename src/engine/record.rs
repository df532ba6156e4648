//! Writes each transition of an execution to the store before the executor acts on it:
//! accepted (pending, with the trigger payload), running, each step started and finished
//! (with its payloads and log records), and the final status with any skipped steps.
//! Transitions nobody outside can act on yet (a step's end, the start of a step that
//! cannot reach outside its sandbox) travel with the next one that must be durable.

use super::report::{Call, ExecutionReport, Reply, Responded, StepReport};
use crate::plugin::LogRecord;
use crate::status::StepStatus;
use crate::store::{
    Attempt, Execution, JobId, LogRow, PayloadKey, PayloadKind, StepRow, Store, StoreError, TryRow, Write,
};
use crate::sync::Lock as _;
use std::sync::Arc;
use std::time::SystemTime;

/// How long deferred transitions may stay unwritten while a step runs.
pub(crate) const VISIBLE_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

/// Records one execution; without a store it records nothing.
pub(crate) struct Recorder {
    store: Option<Arc<dyn Store>>,
    pub(super) job_id: JobId,
    trigger_fingerprint: String,
    created_at: SystemTime,
    /// The first step the current attempt runs.
    from_step: u32,
    /// Who waits for the `respond` step's output (a held-open webhook).
    responder: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<Reply>>>,
    /// The acceptance waits in `deferred`: nothing of the execution is stored yet.
    unrecorded: std::sync::atomic::AtomicBool,
    /// Transitions that go out with the next durable write: a step's end, the start of a
    /// step that cannot reach outside its sandbox, a held webhook's acceptance. Each is
    /// durable before anything outside can see its effect (the next step that can reach
    /// out, the webhook's answer, the end of the run), at a fraction of the commits.
    deferred: std::sync::Mutex<Vec<Write>>,
    /// Set when the final status went out with a last `respond` step's flush.
    ended: std::sync::atomic::AtomicBool,
}

impl Recorder {
    /// Records attempt-so-far of `job_id` in `store` (nothing without one); `from_step` is
    /// the first step the current attempt runs.
    pub(crate) fn new(
        store: Option<Arc<dyn Store>>,
        job_id: JobId,
        trigger_fingerprint: &str,
        created_at: SystemTime,
        from_step: u32,
    ) -> Recorder {
        Recorder {
            store,
            job_id,
            trigger_fingerprint: trigger_fingerprint.to_string(),
            created_at,
            from_step,
            responder: Default::default(),
            unrecorded: Default::default(),
            deferred: Default::default(),
            ended: Default::default(),
        }
    }

    /// Whoever waits for the `respond` step's output (a held-open webhook) gets it on `tx`.
    pub(crate) fn respond_to(&self, tx: tokio::sync::oneshot::Sender<Reply>) {
        *self.responder.locked() = Some(tx);
    }

    /// Hands a `respond` step's output to whoever waits for it (at most once).
    pub(crate) fn respond(&self, output: &Arc<serde_json::Value>, body_text: Option<Arc<str>>) {
        if let Some(tx) = self.responder.locked().take() {
            let _ = tx.send(Reply::Responded(Responded {
                output: output.clone(),
                body_text,
            }));
        }
    }

    async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let Some(store) = &self.store else { return Ok(()) };
        let mut all = std::mem::take(&mut *self.deferred.locked());
        merge(&mut all, writes);
        all.extend(super::hold::fence(self.job_id));
        let written = store.write(all).await;
        let unrecorded = self.unrecorded.swap(false, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = &written
            && unrecorded
            && let Some(tx) = self.responder.locked().take()
        {
            let _ = tx.send(Reply::NotRecorded(e.clone().into()));
        }
        Ok(written?)
    }

    fn defer(&self, writes: Vec<Write>) {
        if self.store.is_some() {
            merge(&mut self.deferred.locked(), writes);
        }
    }

    /// Makes deferred transitions durable now (before a webhook is answered).
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        if self.deferred.locked().is_empty() {
            return Ok(());
        }
        self.write(Vec::new()).await
    }

    /// The execution's final status, written with the next transition (the flush of a
    /// last `respond` step); [`Recorder::finished`] is then not needed.
    pub(crate) fn ended_with_response(&self, r: &ExecutionReport) {
        self.status_deferred(r);
        self.ended.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn has_ended(&self) -> bool {
        self.ended.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The execution's status, written with the next transition.
    pub(crate) fn status_deferred(&self, r: &ExecutionReport) {
        self.defer(Vec::from(self.rows(r)));
    }

    fn execution(&self, r: &ExecutionReport) -> Execution {
        let running = !matches!(
            r.status,
            super::ExecutionStatus::Pending | super::ExecutionStatus::Queued
        );
        Execution {
            job_id: self.job_id,
            project: r.project.clone(),
            flow: r.flow.clone(),
            flow_version: r.flow_version.clone(),
            trigger_kind: r.trigger_kind.to_string(),
            trigger_fingerprint: self.trigger_fingerprint.clone(),
            environment: r.environment.clone(),
            status: r.status,
            attempt: r.attempt,
            created_at: self.created_at,
            started_at: running.then_some(r.started_at),
            finished_at: r.status.is_final().then_some(r.finished_at),
            steps_total: r.steps.len() as u32,
            steps_executed: r.steps_executed() as u32,
            resume_at: r.resume_at,
        }
    }

    /// The execution row and its current attempt's row, written together.
    fn rows(&self, r: &ExecutionReport) -> [Write; 2] {
        let e = self.execution(r);
        let attempt = Attempt {
            attempt: e.attempt,
            status: e.status,
            started_at: e.started_at,
            finished_at: e.finished_at,
            from_step: self.from_step,
        };
        [
            Write::Execution(e),
            Write::Attempt {
                job_id: self.job_id,
                row: attempt,
            },
        ]
    }

    fn logs(
        &self,
        r: &ExecutionReport,
        step: Option<&str>,
        connector: Option<&str>,
        action: &str,
        logs: &[LogRecord],
    ) -> Write {
        self.log_rows(r, step, connector, |_| action, logs)
    }

    /// The host's own records (see [`super::events`]): each one's action is its event
    /// name, which is also its category.
    fn host_logs(&self, r: &ExecutionReport, step: Option<&str>, connector: Option<&str>, logs: &[LogRecord]) -> Write {
        self.log_rows(r, step, connector, |l| l.category.as_str(), logs)
    }

    fn log_rows<'a>(
        &self,
        r: &ExecutionReport,
        step: Option<&str>,
        connector: Option<&str>,
        action: impl Fn(&'a LogRecord) -> &'a str,
        logs: &'a [LogRecord],
    ) -> Write {
        Write::Logs(
            logs.iter()
                .map(|l| LogRow {
                    time: l.time,
                    level: l.level,
                    job_id: self.job_id,
                    project: r.project.clone(),
                    flow: r.flow.clone(),
                    flow_version: r.flow_version.clone(),
                    attempt: r.attempt,
                    step: step.map(str::to_string),
                    connector: connector.map(str::to_string),
                    action: action(l).to_string(),
                    category: l.category.clone(),
                    environment: r.environment.clone(),
                    message: l.message.clone(),
                })
                .collect(),
        )
    }

    /// The execution is accepted: stored as pending with its trigger payload.
    pub(crate) async fn accepted(&self, r: &ExecutionReport, extra: Vec<Write>) -> Result<(), StoreError> {
        if self.store.is_none() {
            return Ok(());
        }
        let writes = self.acceptance(r, extra);
        self.write(writes).await
    }

    /// [`Recorder::accepted`], written with the next transition that has to be durable.
    pub(crate) fn accepted_later(&self, r: &ExecutionReport, extra: Vec<Write>) {
        if self.store.is_some() {
            let writes = self.acceptance(r, extra);
            self.defer(writes);
            self.unrecorded.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn acceptance(&self, r: &ExecutionReport, extra: Vec<Write>) -> Vec<Write> {
        let mut writes = Vec::from(self.rows(r));
        writes.extend(extra);
        if let Some(p) = &r.trigger.payload {
            writes.push(Write::Payload {
                key: PayloadKey::trigger(self.job_id),
                value: p.clone(),
                text: r.trigger.payload_text().cloned(),
            });
        }
        writes.extend(self.trigger_logs(r));
        writes
    }

    /// The trigger connector's records and the host's records of the trigger.
    fn trigger_logs(&self, r: &ExecutionReport) -> Vec<Write> {
        let connector = r.trigger.connector.as_ref().map(|c| c.name.as_str());
        let mut writes = Vec::new();
        if let Some(call) = &r.trigger.call {
            writes.push(self.logs(r, None, connector, "accept", &call.logs));
        }
        if !r.trigger.events.is_empty() {
            writes.push(self.host_logs(r, None, connector, &r.trigger.events));
        }
        writes
    }

    /// An event that starts no execution (dropped, or refused): no execution row, only
    /// the trigger's records and `extra`, durable before the sender is answered.
    pub(crate) async fn not_started(&self, r: &ExecutionReport, extra: Vec<Write>) -> Result<(), StoreError> {
        let mut writes = self.trigger_logs(r);
        writes.extend(extra);
        if self.store.is_none() || writes.is_empty() {
            return Ok(());
        }
        self.write(writes).await
    }

    pub(crate) async fn status(&self, r: &ExecutionReport) -> Result<(), StoreError> {
        if self.store.is_none() {
            return Ok(());
        }
        self.write(Vec::from(self.rows(r))).await
    }

    /// Recovery runs the execution on after a restart cut step `index` short: the step's
    /// row with its interrupted try, a `warn` record saying so, and the execution's row.
    pub(crate) async fn recovered(
        &self,
        r: &ExecutionReport,
        index: usize,
        connector: Option<&str>,
        message: String,
    ) -> Result<(), StoreError> {
        if self.store.is_none() {
            return Ok(());
        }
        let record = super::events::step_interrupted(message);
        let mut writes = vec![
            self.step(r, index),
            self.host_logs(r, Some(&r.steps[index].name), connector, &[record]),
        ];
        writes.extend(self.rows(r));
        self.write(writes).await
    }

    /// flowd gave up on the execution (see `Executor::abandon`): every step row from
    /// `from` on, an `error` record with `message`, and the execution's final row.
    pub(crate) async fn abandoned(&self, r: &ExecutionReport, from: usize, message: String) -> Result<(), StoreError> {
        if self.store.is_none() {
            return Ok(());
        }
        let step = r.steps.get(from).map(|s| s.name.as_str());
        let connector = r
            .steps
            .get(from)
            .and_then(|s| s.connector.as_ref())
            .map(|c| c.name.as_str());
        let record = super::events::execution_stopped(message);
        let mut writes: Vec<Write> = (from..r.steps.len()).map(|i| self.step(r, i)).collect();
        writes.push(self.host_logs(r, step, connector, &[record]));
        writes.extend(self.rows(r));
        self.write(writes).await
    }

    /// The write of step `index`'s row as the report has it now.
    fn step(&self, r: &ExecutionReport, index: usize) -> Write {
        self.step_row(r.attempt, index, &r.steps[index])
    }

    fn step_row(&self, attempt: u32, index: usize, s: &StepReport) -> Write {
        let row = StepRow {
            attempt,
            index: index as u32,
            name: s.name.clone(),
            kind: s.kind.to_string(),
            status: s.status,
            connector: s.connector.clone(),
            started_at: s.started_at,
            finished_at: s.finished_at,
            duration: s.duration.as_secs_f64(),
            fuel_used: s.fuel_used,
            error: s.error.clone(),
            note: s.note.clone(),
            tries: s.tries.iter().map(try_row).collect(),
            reused_from: s.reused_from,
        };
        Write::Step {
            job_id: self.job_id,
            row,
        }
    }

    /// A step that can reach outside its sandbox tries again: its failed tries are
    /// durable before the next one leaves, so a try a crash cuts short is told apart
    /// from those before it.
    pub(crate) async fn retrying(&self, attempt: u32, index: usize, s: &StepReport) -> Result<(), StoreError> {
        if self.store.is_none() {
            return Ok(());
        }
        self.write(vec![self.step_row(attempt, index, s)]).await
    }

    /// A step starts; durable before it runs.
    pub(crate) async fn step_started(&self, r: &ExecutionReport, index: usize) -> Result<(), StoreError> {
        if self.store.is_none() {
            return Ok(());
        }
        self.write(vec![self.step(r, index)]).await
    }

    /// A step that cannot act outside its sandbox starts: its start goes out with the next
    /// durable transition (or after [`VISIBLE_AFTER`], see [`Recorder::visible_while`]).
    /// Should the process die first, recovery runs it again, which nobody outside can tell
    /// from running it once.
    pub(crate) fn step_started_later(&self, r: &ExecutionReport, index: usize) {
        if self.store.is_some() {
            self.defer(vec![self.step(r, index)]);
        }
    }

    /// Awaits `work`; should it take longer than [`VISIBLE_AFTER`], the deferred
    /// transitions are written meanwhile, so a long step shows as running.
    pub(crate) async fn visible_while<F: Future>(&self, work: F) -> Result<F::Output, StoreError> {
        if self.store.is_none() {
            return Ok(work.await);
        }
        let mut work = std::pin::pin!(work);
        tokio::select! {
            biased;
            out = &mut work => return Ok(out),
            _ = tokio::time::sleep(VISIBLE_AFTER) => {}
        }
        let (out, flushed) = tokio::join!(work, self.flush());
        flushed?;
        Ok(out)
    }

    /// A step ended (or paused, or was skipped): its row, payloads and log records go
    /// out with the next durable transition (nothing outside can see a step's end before
    /// then: the next step that can reach out, the response, the execution's end).
    pub(crate) fn step_ended(&self, r: &ExecutionReport, index: usize) {
        if self.store.is_none() {
            return;
        }
        let s = &r.steps[index];
        let mut writes = vec![self.step(r, index)];
        if s.reused_from.is_some() {
            // Its payloads are stored with the attempt it came from.
            self.defer(writes);
            return;
        }
        let key = |kind| PayloadKey {
            job_id: self.job_id,
            attempt: r.attempt,
            step: index as u32,
            kind,
        };
        // The input is not stored: it is the trigger payload plus earlier outputs, each
        // stored once, and is rebuilt from them when shown.
        // A config without placeholders is the same for every execution of the flow
        // version: it is kept once for all of them.
        let config_key = match s.config_shared {
            true => PayloadKey::shared_config(&r.project, &r.flow, &r.flow_version, index as u32),
            false => key(PayloadKind::Config),
        };
        let output_text = s.output_text().cloned();
        for (key, value, text) in [
            (config_key, &s.config, None),
            (key(PayloadKind::Output), &s.output, output_text),
        ] {
            if let Some(v) = value {
                writes.push(Write::Payload {
                    key,
                    value: v.clone(),
                    text,
                });
            }
        }
        let connector = s.connector.as_ref().map(|c| c.name.as_str());
        let logs: Vec<LogRecord> = s.tries.iter().flat_map(|t| t.logs.iter().cloned()).collect();
        if !logs.is_empty() {
            writes.push(self.logs(r, Some(&s.name), connector, "run", &logs));
        }
        if !s.events.is_empty() {
            writes.push(self.host_logs(r, Some(&s.name), connector, &s.events));
        }
        self.defer(writes);
    }

    /// The execution reached a final status (or paused): steps not yet written and the row.
    pub(crate) async fn finished(&self, r: &ExecutionReport, written: usize) -> Result<(), StoreError> {
        if self.store.is_none() {
            return Ok(());
        }
        let mut writes: Vec<Write> = (written..r.steps.len())
            .filter(|i| r.steps[*i].status != StepStatus::Pending || r.steps[*i].note.is_some())
            .map(|i| self.step(r, i))
            .collect();
        writes.extend(self.rows(r));
        if r.status == super::ExecutionStatus::Rejected {
            let (step, record) = super::events::execution_rejected(r);
            writes.push(self.host_logs(r, step, None, &[record]));
        }
        self.write(writes).await
    }
}

/// Appends `writes` to `into`, a later version of a row taking the earlier one's place:
/// a step's start and end, deferred together, are stored once.
fn merge(into: &mut Vec<Write>, writes: Vec<Write>) {
    for w in writes {
        match into.iter_mut().find(|o| w.supersedes(o)) {
            Some(slot) => *slot = w,
            None => into.push(w),
        }
    }
}

fn try_row(c: &Call) -> TryRow {
    TryRow {
        started_at: c.started_at,
        duration: c.duration.as_secs_f64(),
        fuel_used: c.fuel_used,
        error: c.error.clone(),
        dropped_logs: c.dropped_logs,
    }
}
