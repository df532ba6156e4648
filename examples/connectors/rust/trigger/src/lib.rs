//! The greet trigger in Rust: the same logic as the JavaScript and Python examples.
//! `Ok(Some(payload))` starts an execution, `Ok(None)` drops the event,
//! `Err(StepError)` is its step-error, a panic a trap.

wit_bindgen::generate!({ path: "../../../../wit", world: "trigger-connector" });

use exports::flowd::connector::trigger::{ConfigError, Context, Event, Guest, StepError};
use flowd::connector::log::{Level, log};
use serde_json::{Value, json};

fn problems(config: &str) -> Vec<ConfigError> {
    let problem = |path: &str, message: &str| {
        vec![ConfigError {
            path: path.into(),
            message: message.into(),
        }]
    };
    match serde_json::from_str(config) {
        Ok(Value::Null) => Vec::new(),
        Ok(Value::Object(c)) if c.get("greeting").is_some_and(|g| !g.is_string()) => {
            problem("greeting", "expected a string")
        }
        Ok(Value::Object(_)) => Vec::new(),
        Ok(_) => problem("", "expected a table"),
        Err(e) => problem("", &format!("not JSON: {e}")),
    }
}

fn payload(event: &Event) -> Value {
    match event {
        Event::Http(request) => serde_json::from_slice(&request.body).unwrap_or(Value::Null),
        Event::Manual(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        Event::Schedule(_) => json!({ "name": "schedule" }),
    }
}

struct Greet;

impl Guest for Greet {
    fn validate(config: String) -> Result<(), Vec<ConfigError>> {
        let found = problems(&config);
        if found.is_empty() { Ok(()) } else { Err(found) }
    }

    fn accept(ctx: Context, config: String, event: Event) -> Result<Option<String>, StepError> {
        let config: Value = serde_json::from_str(&config).unwrap_or(Value::Null);
        let greeting = config.get("greeting").and_then(Value::as_str).unwrap_or("Hello");
        let body = payload(&event);
        let name = body.get("name").and_then(Value::as_str);
        match name {
            Some("nobody") => return Ok(None),
            Some("busy") => {
                return Err(StepError {
                    code: "busy".into(),
                    message: "the greeter is busy, try again".into(),
                    retryable: true,
                });
            }
            _ => {}
        }
        // An event without a name is a bug in the sender: this panics (a trap).
        let name = name.expect("the event has no name").to_uppercase();
        log(Level::Info, "greet", &format!("greeting {name} in {}", ctx.flow));
        Ok(Some(json!({ "name": name, "message": format!("{greeting}, {name}!") }).to_string()))
    }
}

export!(Greet);
