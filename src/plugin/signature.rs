//! The exports' types against the world: linking checks only that each function is
//! there, so a `run` without `ctx` would load and then fail at its first call with a
//! tuple-arity message that blames whatever was called first. Here each function of the
//! world's interface is written out as WIT (named types by their WIT names) and compared
//! with the world's, before anything runs.

use super::{LoadError, World};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};

/// The world's types as this module writes them, to name them in a signature.
const NAMED: &[(&str, &str)] = &[
    (
        "context",
        "record { job-id: string, project: string, flow: string, step: string, attempt: u32, environment: string }",
    ),
    (
        "step-error",
        "record { code: string, message: string, retryable: bool }",
    ),
    ("config-error", "record { path: string, message: string }"),
    (
        "http-request",
        "record { method: string, path: string, query: string, headers: list<tuple<string, string>>, body: list<u8> }",
    ),
    ("schedule-tick", "record { scheduled-at: string, fired-at: string }"),
    (
        "event",
        "variant { http(http-request), schedule(schedule-tick), manual(string) }",
    ),
];

/// Each function of a world's interface, as WIT.
fn expected(world: World) -> &'static [(&'static str, &'static str)] {
    match world {
        World::Action => &[
            ("validate", "validate(config: string) -> result<_, list<config-error>>"),
            (
                "run",
                "run(ctx: context, config: string, input: string) -> result<string, step-error>",
            ),
        ],
        World::Trigger => &[
            ("validate", "validate(config: string) -> result<_, list<config-error>>"),
            (
                "accept",
                "accept(ctx: context, config: string, event: event) -> result<option<string>, step-error>",
            ),
        ],
    }
}

/// Checks every function of the world's interface that the component exports (a missing
/// one is for the linker to name) against the world.
pub fn check(engine: &Engine, component: &Component, world: World) -> Result<(), LoadError> {
    let export = match world {
        World::Action => super::ACTION_EXPORT,
        World::Trigger => super::TRIGGER_EXPORT,
    };
    let ty = component.component_type();
    let Some(instance) = ty.exports(engine).find(|(n, _)| *n == export).map(|(_, e)| e.ty) else {
        return Ok(());
    };
    let ComponentItem::ComponentInstance(instance) = instance else {
        return Ok(());
    };
    for (name, want) in expected(world) {
        let Some(item) = instance.get_export(engine, name) else {
            continue;
        };
        let ComponentItem::ComponentFunc(func) = item.ty else {
            continue;
        };
        let found = signature(name, &func);
        if strip_names(&found) != strip_names(want) {
            return Err(LoadError::Signature {
                function: (*name).to_string(),
                found,
                expected: (*want).to_string(),
            });
        }
    }
    Ok(())
}

/// A function as WIT: `name(param: type, …) -> result`.
fn signature(name: &str, func: &ComponentFunc) -> String {
    let params: Vec<String> = func.params().map(|(n, t)| format!("{n}: {}", wit(&t))).collect();
    let results: Vec<String> = func.results().map(|t| wit(&t)).collect();
    let mut s = format!("{name}({})", params.join(", "));
    if !results.is_empty() {
        s.push_str(" -> ");
        s.push_str(&results.join(", "));
    }
    s
}

/// The signature without its parameter names, which the component model does not
/// check either.
fn strip_names(sig: &str) -> String {
    let Some((head, rest)) = sig.split_once('(') else {
        return sig.to_string();
    };
    let Some((params, tail)) = rest
        .split_once(") -> ")
        .or_else(|| rest.strip_suffix(')').map(|p| (p, "")))
    else {
        return sig.to_string();
    };
    let types: Vec<&str> = split_top(params)
        .into_iter()
        .map(|p| p.split_once(": ").map_or(p, |(_, t)| t))
        .collect();
    format!("{head}({}) -> {tail}", types.join(", "))
}

/// Splits a parameter list at its top-level commas.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '<' | '(' | '{' => depth += 1,
            '>' | ')' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !s[start..].trim().is_empty() {
        out.push(s[start..].trim());
    }
    out
}

/// A type as WIT, a world's named type by its name.
fn wit(t: &Type) -> String {
    let s = structural(t);
    NAMED
        .iter()
        .find(|(_, shape)| *shape == s)
        .map_or(s, |(name, _)| (*name).to_string())
}

fn structural(t: &Type) -> String {
    match t {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", wit(&l.ty())),
        Type::Record(r) => {
            let fields: Vec<String> = r.fields().map(|f| format!("{}: {}", f.name, wit(&f.ty))).collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(t) => {
            let types: Vec<String> = t.types().map(|t| wit(&t)).collect();
            format!("tuple<{}>", types.join(", "))
        }
        Type::Variant(v) => {
            let cases: Vec<String> = v
                .cases()
                .map(|c| match c.ty {
                    Some(t) => format!("{}({})", c.name, wit(&t)),
                    None => c.name.to_string(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Option(o) => format!("option<{}>", wit(&o.ty())),
        Type::Result(r) => {
            let ok = r.ok().map_or("_".to_string(), |t| wit(&t));
            match r.err() {
                Some(e) => format!("result<{ok}, {}>", wit(&e)),
                None if ok == "_" => "result".into(),
                None => format!("result<{ok}>"),
            }
        }
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(_) => "future".into(),
        Type::Stream(_) => "stream".into(),
        Type::ErrorContext => "error-context".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::strip_names;

    #[test]
    fn parameter_names_do_not_count() {
        assert_eq!(
            strip_names("run(a: context, b: string, c: list<tuple<string, string>>) -> result<string, step-error>"),
            "run(context, string, list<tuple<string, string>>) -> result<string, step-error>"
        );
        assert_ne!(
            strip_names("run(config: string, input: string) -> result<string, step-error>"),
            strip_names("run(ctx: context, config: string, input: string) -> result<string, step-error>")
        );
    }
}
