//! `log`: writes one record to the execution's log. Config: `message` (required, may hold
//! placeholders), `level` (`trace`…`error`, default `info`), `category` (default `log`).
//! Output: `{"level", "category", "message"}` as logged.

wit_bindgen::generate!({ path: "../../wit", world: "action-connector" });

#[global_allocator]
static ARENA: guest_util::arena::Arena = guest_util::arena::Arena::new();

use exports::flowd::connector::action::{ConfigError, Context, Guest, StepError};
use flowd::connector::log::{Level, log};
use guest_util::{Problem, config_object, kind, unknown_keys};
use serde_json::{Value, json};

struct Log;

struct Settings {
    level: Level,
    level_name: String,
    category: String,
    message: String,
}

fn parse(config: &str) -> Result<Settings, Vec<Problem>> {
    let map = config_object(config)?;
    let mut problems = Vec::new();
    unknown_keys(&map, &["level", "category", "message"], &mut problems);
    let level_name = match map.get("level") {
        None => "info".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            problems.push(("level".into(), format!("expected a string, found {}", kind(other))));
            "info".into()
        }
    };
    let level = match level_name.as_str() {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "info" => Level::Info,
        "warn" => Level::Warn,
        "error" => Level::Error,
        other => {
            problems.push((
                "level".into(),
                format!("unknown level {other:?}; expected trace, debug, info, warn or error"),
            ));
            Level::Info
        }
    };
    let category = match map.get("category") {
        None => "log".to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(other) => {
            problems.push((
                "category".into(),
                format!("expected a non-empty string, found {}", kind(other)),
            ));
            String::new()
        }
    };
    let message = match map.get("message") {
        None => {
            problems.push(("message".into(), "missing: the text to log".into()));
            String::new()
        }
        Some(Value::String(s)) => s.clone(),
        // A placeholder that resolved to a non-string value is logged as JSON.
        Some(other) => other.to_string(),
    };
    if problems.is_empty() {
        Ok(Settings {
            level,
            level_name,
            category,
            message,
        })
    } else {
        Err(problems)
    }
}

fn to_wit(problems: Vec<Problem>) -> Vec<ConfigError> {
    problems
        .into_iter()
        .map(|(path, message)| ConfigError { path, message })
        .collect()
}

impl Guest for Log {
    fn validate(config: String) -> Result<(), Vec<ConfigError>> {
        parse(&config).map(|_| ()).map_err(to_wit)
    }

    fn run(_ctx: Context, config: String, _input: String) -> Result<String, StepError> {
        let s = parse(&config).map_err(|problems| StepError {
            code: "config".into(),
            message: problems
                .iter()
                .map(|(p, m)| format!("{p}: {m}"))
                .collect::<Vec<_>>()
                .join("; "),
            retryable: false,
        })?;
        log(s.level, &s.category, &s.message);
        Ok(json!({"level": s.level_name, "category": s.category, "message": s.message}).to_string())
    }
}

export!(Log);
