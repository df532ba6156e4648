//! The greet action in Rust: the same logic as the JavaScript and Python examples.
//! `Ok` is the step's output, `Err(StepError)` its step-error, a panic a trap.

wit_bindgen::generate!({ path: "../../../../wit", world: "action-connector" });

use exports::flowd::connector::action::{ConfigError, Context, Guest, StepError};
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

struct Greet;

impl Guest for Greet {
    fn validate(config: String) -> Result<(), Vec<ConfigError>> {
        let found = problems(&config);
        if found.is_empty() { Ok(()) } else { Err(found) }
    }

    /// `input` holds the trigger's payload and earlier steps' outputs; this step needs
    /// only its config, where the flow places the name (`name = "{{ trigger.body.name }}"`).
    fn run(ctx: Context, config: String, _input: String) -> Result<String, StepError> {
        let config: Value = serde_json::from_str(&config).unwrap_or(Value::Null);
        let name = config.get("name").and_then(Value::as_str);
        if name == Some("busy") {
            return Err(StepError {
                code: "busy".into(),
                message: "the greeter is busy, try again".into(),
                retryable: true,
            });
        }
        // A config without a name is a bug in the flow: this panics (a trap).
        let name = name.expect("the config has no name").to_uppercase();
        let greeting = config.get("greeting").and_then(Value::as_str).unwrap_or("Hello");
        log(Level::Info, "greet", &format!("greeting {name} in {}", ctx.flow));
        Ok(json!({ "message": format!("{greeting}, {name}!") }).to_string())
    }
}

export!(Greet);
