//! `reshape`: a trigger connector. It turns the event into a document (`kind`, and for
//! HTTP `method`, `path`, `query`, `headers`, `body`; for a schedule `scheduled_at` and
//! `fired_at`; for a manual run `body`), drops it unless `filter` (a JMESPath expression)
//! is truthy, and reshapes it with the same keys as `transform` into the flow's payload.

wit_bindgen::generate!({ path: "../../wit", world: "trigger-connector" });

use exports::flowd::connector::trigger::{ConfigError, Context, Event, Guest, StepError};
use flowd::connector::log::{Level, log};
use guest_util::{Expr, Problem, SPEC_KEYS, Spec, config_object, kind, unknown_keys};
use serde_json::{Map, Value, json};

struct Reshape;

struct Settings {
    filter: Option<Expr>,
    spec: Spec,
}

fn parse(config: &str) -> Result<Settings, Vec<Problem>> {
    let map = config_object(config)?;
    let mut problems = Vec::new();
    let mut known = vec!["filter"];
    known.extend_from_slice(SPEC_KEYS);
    unknown_keys(&map, &known, &mut problems);
    let filter = match map.get("filter") {
        None => None,
        Some(Value::String(text)) => Expr::compile("filter", text, &mut problems),
        Some(other) => {
            problems.push((
                "filter".into(),
                format!("expected a JMESPath expression (a string), found {}", kind(other)),
            ));
            None
        }
    };
    let spec = Spec::parse(&map, &mut problems);
    if problems.is_empty() {
        Ok(Settings { filter, spec })
    } else {
        Err(problems)
    }
}

fn fail(code: &str, message: String, retryable: bool) -> StepError {
    StepError {
        code: code.into(),
        message,
        retryable,
    }
}

/// The body as JSON when it parses, else as text, else as an array of bytes.
fn body_value(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
        Err(_) => Value::Array(body.iter().map(|b| json!(b)).collect()),
    }
}

fn document(event: &Event) -> Result<Value, StepError> {
    Ok(match event {
        Event::Http(req) => {
            let mut query = Map::new();
            for (k, v) in form_urlencoded::parse(req.query.as_bytes()) {
                query.insert(k.into_owned(), Value::String(v.into_owned()));
            }
            let mut headers = Map::new();
            for (k, v) in &req.headers {
                headers.insert(k.clone(), Value::String(v.clone()));
            }
            json!({"kind": "http", "method": req.method, "path": req.path, "query": query,
                   "headers": headers, "body": body_value(&req.body)})
        }
        Event::Schedule(tick) => {
            json!({"kind": "schedule", "scheduled_at": tick.scheduled_at, "fired_at": tick.fired_at})
        }
        Event::Manual(body) => {
            let body: Value = serde_json::from_str(body)
                .map_err(|e| fail("body", format!("manual payload is not JSON: {e}"), false))?;
            json!({"kind": "manual", "body": body})
        }
    })
}

impl Guest for Reshape {
    fn validate(config: String) -> Result<(), Vec<ConfigError>> {
        parse(&config).map(|_| ()).map_err(|p| {
            p.into_iter()
                .map(|(path, message)| ConfigError { path, message })
                .collect()
        })
    }

    fn accept(_ctx: Context, config: String, event: Event) -> Result<Option<String>, StepError> {
        let s = parse(&config).map_err(|p| {
            fail(
                "config",
                p.iter()
                    .map(|(k, m)| format!("{k}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; "),
                false,
            )
        })?;
        let doc = document(&event)?;
        if let Some(filter) = &s.filter {
            if !filter.truthy(&doc).map_err(|m| fail("filter", m, false))? {
                log(Level::Info, "reshape", "event dropped by filter");
                return Ok(None);
            }
        }
        let payload = s.spec.apply(&doc).map_err(|m| fail("expression", m, false))?;
        Ok(Some(payload.to_string()))
    }
}

export!(Reshape);
