//! `transform`: reshapes the step input with JMESPath. Config keys, applied in order:
//! `from` (expression picking the document, default the whole input), then `select`
//! (one expression for the whole output) or `fields` (key = expression, over a copy of
//! the document when `keep = true`), then `rename` (old = new), `set` (literal values)
//! and `remove` (keys). With none of them the output is the document itself.

wit_bindgen::generate!({ path: "../../wit", world: "action-connector" });

use exports::flowd::connector::action::{ConfigError, Context, Guest, StepError};
use guest_util::{Failed, Problem, SPEC_KEYS, Spec, config_object, unknown_keys};

#[global_allocator]
static ARENA: guest_util::arena::Arena = guest_util::arena::Arena::new();

struct Transform;

fn parse(config: &str) -> Result<Spec, Vec<Problem>> {
    let map = config_object(config)?;
    let mut problems = Vec::new();
    unknown_keys(&map, SPEC_KEYS, &mut problems);
    let spec = Spec::parse(&map, &mut problems);
    if problems.is_empty() { Ok(spec) } else { Err(problems) }
}

fn fail(code: &str, message: String) -> StepError {
    StepError {
        code: code.into(),
        message,
        retryable: false,
    }
}

impl Guest for Transform {
    fn validate(config: String) -> Result<(), Vec<ConfigError>> {
        parse(&config).map(|_| ()).map_err(|p| {
            p.into_iter()
                .map(|(path, message)| ConfigError { path, message })
                .collect()
        })
    }

    fn run(_ctx: Context, config: String, input: String) -> Result<String, StepError> {
        let spec = parse(&config).map_err(|p| {
            fail(
                "config",
                p.iter()
                    .map(|(k, m)| format!("{k}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        spec.apply_text(&input).map_err(|f| match f {
            Failed::Input(m) => fail("input", m),
            Failed::Expression(m) => fail("expression", m),
        })
    }
}

export!(Transform);
