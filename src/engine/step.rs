//! One step of a run: placeholders resolved, the connector called with its limits and
//! the flow's remaining time, retryable failures tried again after an exponential backoff
//! with jitter (each failed try durable before the next leaves, for a step that can reach
//! outside its sandbox), a `pause` or a `respond` answered by the host.

use super::events::FLOW_TIMEOUT_NOTE;
use super::executor::Executor;
use super::record::Recorder;
use super::report::{Call, StepReport, Text};
use crate::config::units::format_duration;
use crate::config::{Action, Flow, Outputs, Pause, RetryPolicy, Step, Template};
use crate::plugin::{CallContext, ErrorKind, Failure, Invocation, World};
use crate::status::{ConnectorUse, StepStatus};
use crate::store::StoreError;
use serde_json::{Map, Value, json};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What a step's input and placeholders are drawn from: the trigger payload and each
/// successful step's output.
pub(super) struct Sources {
    /// Shared with the execution's report.
    pub(super) trigger: Arc<Value>,
    /// Each successful step's output by step name, in the order they ran, with the JSON
    /// text its connector gave; shared with the step's report (a handful of steps: found
    /// by a scan).
    outputs: Vec<(String, Arc<Value>, Option<Arc<str>>)>,
    /// The JSON text of the trigger payload and of each output, each written once when it
    /// arrives (or kept as its connector gave it) rather than again for every later
    /// step's input.
    trigger_text: Arc<str>,
    /// `"name":output` of each output so far, comma-separated, in the order of `outputs`.
    outputs_text: String,
}

impl Sources {
    /// The sources of a run starting from `trigger`, whose JSON text is `text` when it was
    /// written already (for the payload's size check, or by a trigger connector).
    pub(super) fn new(trigger: Arc<Value>, text: Option<Arc<str>>) -> Sources {
        let trigger_text =
            text.unwrap_or_else(|| serde_json::to_string(&*trigger).expect("JSON values serialize").into());
        Sources {
            trigger,
            outputs: Vec::new(),
            trigger_text,
            outputs_text: String::new(),
        }
    }

    /// Step `name` succeeded with `output`, whose JSON text is `text` when its connector
    /// gave it.
    pub(super) fn insert(&mut self, name: String, output: Arc<Value>, text: Option<Arc<str>>) {
        if let Some(place) = self.outputs.iter_mut().find(|(n, ..)| *n == name) {
            // Replaced in place (a resumed pause): the members are written again.
            *place = (name, output, text);
            self.outputs_text.clear();
            for (name, output, text) in &self.outputs {
                push_member(&mut self.outputs_text, name, output, text.as_deref());
            }
        } else {
            push_member(&mut self.outputs_text, &name, &output, text.as_deref());
            self.outputs.push((name, output, text));
        }
    }

    /// The JSON text of what `body` resolves to, when it is a step's whole output whose
    /// connector gave its text.
    pub(super) fn body_text(&self, body: &Template) -> Option<Arc<str>> {
        let step = body.whole_output()?;
        self.outputs.iter().find(|(n, ..)| n == step)?.2.clone()
    }

    /// A step's input as the JSON text a connector receives: the text of
    /// [`super::StepInput`], put together from what was written when each part arrived.
    pub(super) fn input_json(&self) -> String {
        let mut s = String::with_capacity(self.trigger_text.len() + self.outputs_text.len() + 24);
        s.push_str("{\"trigger\":");
        s.push_str(&self.trigger_text);
        s.push_str(",\"steps\":{");
        s.push_str(&self.outputs_text);
        s.push_str("}}");
        s
    }
}

impl Outputs for Sources {
    fn output(&self, step: &str) -> Option<&Value> {
        self.outputs.iter().find(|(n, ..)| n == step).map(|(_, v, _)| &**v)
    }
}

/// Appends `"name":value` to a comma-separated list of object members, the value as
/// `text` when given (its JSON text) or written out.
fn push_member(out: &mut String, name: &str, value: &Value, text: Option<&str>) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(&serde_json::to_string(name).expect("strings serialize"));
    out.push(':');
    match text {
        Some(text) => out.push_str(text),
        None => out.push_str(&serde_json::to_string(value).expect("JSON values serialize")),
    }
}

/// One step to run, with what it runs on.
pub(super) struct StepCall<'a> {
    pub(super) exec: &'a Executor,
    pub(super) flow: &'a Flow,
    pub(super) step: &'a Step,
    pub(super) sources: &'a Sources,
    /// When the flow's allocated time runs out.
    pub(super) deadline: Instant,
    pub(super) ctx: CallContext,
    pub(super) tries: Tries<'a>,
}

/// Where a step's tries are recorded while it retries.
pub(super) struct Tries<'a> {
    pub(super) recorder: &'a Recorder,
    pub(super) attempt: u32,
    pub(super) index: usize,
    /// The step can reach outside its sandbox: each try's predecessors are durable first.
    pub(super) durable: bool,
}

pub(super) enum StepOutcome {
    /// The output, shared with the step's report; for a `respond` step, its body's JSON
    /// text when its connector gave it ([`Sources::body_text`]).
    Done(Arc<Value>, Option<Arc<str>>),
    Failed,
    /// The flow's allocated time ran out during this step.
    OutOfTime,
    /// Until this time, or until resumed.
    Paused(Option<SystemTime>),
}

pub(super) fn finish_failed(r: &mut StepReport, clock: Instant, f: Failure) -> StepOutcome {
    r.status = StepStatus::Failed;
    r.error = Some(f);
    r.finished_at = Some(SystemTime::now());
    r.duration = clock.elapsed();
    StepOutcome::Failed
}

impl StepCall<'_> {
    /// Runs the step, recording into `r`; fails only when a try cannot be recorded.
    pub(super) async fn run(self, r: &mut StepReport) -> Result<StepOutcome, StoreError> {
        let StepCall {
            exec,
            flow,
            step,
            sources: data,
            deadline,
            ctx,
            tries,
        } = self;
        let clock = Instant::now();
        let outcome = match &step.action {
            Action::Connector { call, limits } => {
                let config = match call.template.resolve_shared(&data.trigger, data) {
                    Ok(c) => c,
                    Err(message) => return Ok(finish_failed(r, clock, Failure::new(ErrorKind::Template, message))),
                };
                let input = data.input_json();
                let connector = match exec.connector(&call.connector, World::Action) {
                    Ok(c) => c,
                    Err(f) => return Ok(finish_failed(r, clock, f)),
                };
                r.connector = Some(ConnectorUse {
                    name: connector.name.clone(),
                    sha256: connector.info.sha256.clone(),
                });
                let config_text = match &call.literal_text {
                    Some(text) => text.clone(),
                    None => config.to_string().into(),
                };
                r.config = Some(config.clone());
                r.config_shared = call.literal_text.is_some();
                let policy = step.retry.unwrap_or(RetryPolicy {
                    attempts: 1,
                    backoff: Duration::ZERO,
                    max_backoff: Duration::ZERO,
                });
                let mut try_no = 1;
                let outcome = loop {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let flow_bound = remaining <= limits.timeout;
                    let timeout = limits.timeout.min(remaining);
                    let started_at = SystemTime::now();
                    let inv = connector
                        .run(
                            &exec.registry.runtime,
                            &ctx,
                            config_text.clone(),
                            input.clone(),
                            limits,
                            timeout,
                        )
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
                        let value = Arc::new(output.value);
                        r.output_text = Some(Text::new(&value, output.text.into()));
                        r.output = Some(value.clone());
                        r.status = StepStatus::Success;
                        StepOutcome::Done(value, None)
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
                let body_template = body;
                let resolved = body
                    .resolve(&data.trigger, data)
                    .and_then(|b| headers.resolve(&data.trigger, data).map(|h| (b, h)));
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
                        // What a placeholder gave must be a value HTTP carries: a line break
                        // from the request would otherwise end the header and start another.
                        let broken = headers.iter().find_map(|(k, v)| {
                            let (at, what) = crate::config::header_control(v.as_str()?)?;
                            Some(format!(
                                "header `{k}`: its value holds {what} at character {at}, which a header cannot carry; nothing was sent"
                            ))
                        });
                        if let Some(message) = broken {
                            return Ok(finish_failed(r, clock, Failure::new(ErrorKind::Template, message)));
                        }
                        let out = Arc::new(json!({ "status": status, "headers": headers, "body": body }));
                        // The body as its connector wrote it, in the output's text.
                        let body_text = data.body_text(body_template);
                        if let Some(body) = &body_text {
                            let headers = serde_json::to_string(&out["headers"]).expect("JSON values serialize");
                            let text = format!(r#"{{"status":{status},"headers":{headers},"body":{body}}}"#);
                            r.output_text = Some(Text::new(&out, text.into()));
                        }
                        r.output = Some(out.clone());
                        r.status = StepStatus::Success;
                        StepOutcome::Done(out, body_text)
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

pub(super) fn split<T>(inv: Invocation<T>, started_at: SystemTime) -> (Result<T, Failure>, Call) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_text_is_the_step_input_serialized() {
        let mut s = Sources::new(
            Arc::new(json!({"kind": "http", "body": {"id": "a\"1", "n": [1, 2.5]}})),
            None,
        );
        let whole = |s: &Sources| {
            let steps: Map<String, Value> = s.outputs.iter().map(|(n, v, _)| (n.clone(), Value::clone(v))).collect();
            serde_json::to_string(&crate::engine::StepInput {
                trigger: &s.trigger,
                steps: &steps,
            })
            .unwrap()
        };
        assert_eq!(s.input_json(), whole(&s));
        s.insert("first".into(), Arc::new(json!({"x": 1})), None);
        s.insert("sec\"ond".into(), Arc::new(json!([true, null])), None);
        assert_eq!(s.input_json(), whole(&s));
        // A paused step's output replaced when it resumes keeps its place.
        s.insert("first".into(), Arc::new(json!({"resumed_at": "now"})), None);
        assert_eq!(s.input_json(), whole(&s));
        assert!(
            s.input_json()
                .contains(r#""steps":{"first":{"resumed_at":"now"},"sec\"ond""#)
        );
    }

    #[test]
    fn a_trigger_text_written_for_the_size_check_is_the_one_the_input_carries() {
        for v in [
            json!(null),
            json!({"a": [1, 2.5, "é\n\"x\""], "b": {"c": true}}),
            json!("\u{1}"),
        ] {
            let text = serde_json::to_string(&v).unwrap();
            let given = Sources::new(Arc::new(v.clone()), Some(text.clone().into()));
            let made = Sources::new(Arc::new(v), None);
            assert_eq!(given.input_json(), made.input_json());
            assert!(given.input_json().starts_with(&format!("{{\"trigger\":{text},")));
        }
    }

    #[test]
    fn an_output_is_passed_on_as_the_text_its_connector_gave() {
        let mut s = Sources::new(Arc::new(json!({})), None);
        s.insert(
            "a".into(),
            Arc::new(json!({"x": 100.0})),
            Some(r#"{ "x" : 1e2 }"#.into()),
        );
        s.insert("b".into(), Arc::new(json!([1])), None);
        assert_eq!(s.input_json(), r#"{"trigger":{},"steps":{"a":{ "x" : 1e2 },"b":[1]}}"#);
        // Replaced (a resumed pause): written out, the old text gone.
        s.insert("a".into(), Arc::new(json!({"resumed_at": "now"})), None);
        assert_eq!(
            s.input_json(),
            r#"{"trigger":{},"steps":{"a":{"resumed_at":"now"},"b":[1]}}"#
        );
    }

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
