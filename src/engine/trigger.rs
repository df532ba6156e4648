//! What an event becomes before any step runs: the payload a flow starts with, made by
//! the flow's trigger connector or, without one, from the event itself (the document of
//! an HTTP request, a schedule's tick, a manual body), with credentials redacted and its
//! size checked; and the events a local run hands to a flow.

use super::executor::Executor;
use super::redact::Secrets;
use super::report::TriggerReport;
use super::step::split;
use crate::config::{Flow, TriggerKind};
use crate::plugin::{CallContext, Failure, TriggerEvent, World};
use crate::status::ConnectorUse;
use serde_json::{Value, json};
use std::time::SystemTime;

/// What the trigger made of an event.
pub(super) enum Triggered {
    /// The payload, with its JSON text when the size check wrote it already.
    Payload(Value, Option<String>),
    /// The trigger connector returned none.
    Dropped,
    /// The payload the event itself makes (no trigger connector) is over the limit.
    TooLarge(String),
    Failed(Failure),
}

impl Executor {
    /// The payload the flow starts with (credentials redacted, see [`super::redact`]), or
    /// why there is none.
    pub(super) async fn trigger_payload(
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
            let text = serde_json::to_string(&payload).expect("JSON values serialize");
            let size = text.len() as u64;
            if size > max {
                return Triggered::TooLarge(format!(
                    "the trigger payload is {size} bytes, over the {max}-byte limit (limits.max_payload)"
                ));
            }
            return Triggered::Payload(payload, Some(text));
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
            // Its text is the payload's while nothing was redacted.
            Ok(Some(out)) if secrets.is_empty() => Triggered::Payload(out.value, Some(out.text)),
            Ok(Some(out)) => {
                let mut payload = out.value;
                secrets.payload(&mut payload);
                Triggered::Payload(payload, None)
            }
            Ok(None) => Triggered::Dropped,
            Err(f) => Triggered::Failed(f),
        }
    }
}

/// Why a trigger connector dropped an event: its last log record of level `info` or
/// above, else its last record.
pub(super) fn drop_reason(logs: &[crate::plugin::LogRecord]) -> Option<String> {
    logs.iter()
        .rev()
        .find(|l| l.level >= crate::plugin::Level::Info)
        .or(logs.last())
        .map(|l| l.message.clone())
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
        TriggerKind::Schedule { .. } => TriggerEvent::schedule(std::time::SystemTime::now()),
        TriggerKind::Manual => TriggerEvent::Manual(input),
    }
}
