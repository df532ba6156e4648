//! `reshape`: a trigger connector. It turns the event into a document (`kind`, and for
//! HTTP `method`, `path`, `query`, `headers`, `body`; for a schedule `scheduled_at` and
//! `fired_at`; for a manual run `body`), drops it unless `filter` (a JMESPath expression)
//! is truthy, and reshapes it with the same keys as `transform` into the flow's payload.

wit_bindgen::generate!({ path: "../../wit", world: "trigger-connector" });

#[global_allocator]
static ARENA: guest_util::arena::Arena = guest_util::arena::Arena::new();

use exports::flowd::connector::trigger::{ConfigError, Context, Event, Guest, StepError};
use flowd::connector::log::{Level, log};
use guest_util::{Expr, Problem, SPEC_KEYS, Spec, config_object, kind, unknown_keys};
use serde_json::{Value, json};

/// The host's own reading of a request (repeated headers and query keys kept, binary
/// bodies as marked base64), so a reshaped payload starts from the same document.
#[allow(dead_code)]
#[path = "../../../src/engine/http_document.rs"]
mod http_document;

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

fn document(event: &Event) -> Result<Value, StepError> {
    Ok(match event {
        Event::Http(req) => http_document::document(&req.method, &req.path, &req.query, &req.headers, &req.body),
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
        if let Some(filter) = &s.filter
            && !filter.truthy(&doc).map_err(|m| fail("filter", m, false))?
        {
            // The last record before a drop is the reason the host reports.
            log(
                Level::Info,
                "reshape",
                &format!("filter `{}` is false for the event", filter.text()),
            );
            return Ok(None);
        }
        let payload = s.spec.apply(&doc).map_err(|m| fail("expression", m, false))?;
        serde_json::to_string(&payload)
            .map(Some)
            .map_err(|e| fail("output", e.to_string(), false))
    }
}

export!(Reshape);
