//! Keeps what a webhook sender authenticates with out of what is stored and shown: the
//! flow's redacted headers (`authorization`, `cookie` and its signature header unless it
//! keeps them, and any it adds) become `[redacted]` under the payload's `headers`, and
//! their values are cut out of every other string of the payload and of the trigger
//! connector's log records (a connector that copied one elsewhere). The trigger
//! connector itself gets the request as it came, to verify it.

use crate::plugin::{LogRecord, TriggerEvent};
use serde_json::Value;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// A value shorter than this is only redacted under `headers`: cutting a short text out
/// of everything would mangle unrelated strings.
const MIN_SCRUBBED: usize = 8;

/// The redacted headers of one request and their values.
pub(super) struct Secrets<'a> {
    names: Vec<&'a str>,
    values: Vec<&'a str>,
}

impl<'a> Secrets<'a> {
    /// The headers of `event` named in `redacted` (none for a non-HTTP event).
    pub(super) fn of(event: &'a TriggerEvent, redacted: &'a [String]) -> Secrets<'a> {
        let mut s = Secrets {
            names: Vec::new(),
            values: Vec::new(),
        };
        if let TriggerEvent::Http { headers, .. } = event {
            for (k, v) in headers {
                if redacted.iter().any(|r| r == k) {
                    s.names.push(k);
                    if v.len() >= MIN_SCRUBBED {
                        s.values.push(v);
                    }
                }
            }
        }
        s
    }

    pub(super) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Redacts `payload`: its `headers` entries, then the values anywhere.
    pub(super) fn payload(&self, payload: &mut Value) {
        if self.is_empty() {
            return;
        }
        if let Some(Value::Object(headers)) = payload.get_mut("headers") {
            for name in &self.names {
                if let Some(v) = headers.get_mut(*name) {
                    *v = Value::String(REDACTED.into());
                }
            }
        }
        if !self.values.is_empty() {
            self.scrub_value(payload);
        }
    }

    /// Cuts the values out of log messages.
    pub(super) fn logs(&self, logs: &mut [LogRecord]) {
        for l in logs {
            self.scrub(&mut l.message);
        }
    }

    fn scrub_value(&self, v: &mut Value) {
        match v {
            Value::String(s) => self.scrub(s),
            Value::Array(items) => items.iter_mut().for_each(|i| self.scrub_value(i)),
            Value::Object(map) => map.values_mut().for_each(|i| self.scrub_value(i)),
            _ => {}
        }
    }

    fn scrub(&self, s: &mut String) {
        for v in &self.values {
            if s.contains(v) {
                *s = s.replace(v, REDACTED);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(headers: &[(&str, &str)]) -> TriggerEvent {
        TriggerEvent::Http {
            method: "POST".into(),
            path: "/p".into(),
            query: String::new(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn named_headers_and_their_values_anywhere_are_redacted() {
        let e = event(&[
            ("authorization", "Bearer s3cr3t-token"),
            ("cookie", "a=1"),
            ("x-ok", "fine"),
        ]);
        let names = vec!["authorization".to_string(), "cookie".to_string()];
        let s = Secrets::of(&e, &names);
        let mut p = json!({
            "headers": { "authorization": "Bearer s3cr3t-token", "cookie": "a=1", "x-ok": "fine" },
            "copy": ["authorization", "Bearer s3cr3t-token"],
            "text": "sent Bearer s3cr3t-token and a=1",
        });
        s.payload(&mut p);
        assert_eq!(
            p,
            json!({
                "headers": { "authorization": REDACTED, "cookie": REDACTED, "x-ok": "fine" },
                "copy": ["authorization", REDACTED],
                "text": "sent [redacted] and a=1",
            }),
            "a short value is redacted under headers only"
        );
        let untouched = Secrets::of(&e, &[]);
        assert!(untouched.is_empty());
    }
}
