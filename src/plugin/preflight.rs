//! A look at a component's bytes before the long compile (seconds for an interpreter
//! guest): its top-level imports and exports, and the mistakes common build tools make by
//! default, each named with its fix: a core module where a component is needed, the
//! component-model async ABI (componentize-qjs without `--sync`), and componentize-js's
//! default `wasi:http` (its fetch-event feature).

use super::LoadError;
use wasmparser::{CanonicalFunction, CanonicalOption, ComponentExternalKind, KnownCustom, Parser, Payload};

/// What the bytes say before compiling.
#[derive(Debug, Default)]
pub struct Preflight {
    /// Top-level imports, as named (`wasi:cli/stdout@0.2.6`).
    pub imports: Vec<String>,
    /// Top-level instance exports (`flowd:connector/action@0.1.0`).
    pub exports: Vec<String>,
    /// The tools the outer component's `producers` section names (`ComponentizeJS`).
    pub processed_by: Vec<String>,
}

impl Preflight {
    /// Built by componentize-js, which imports wasi:http unless its http and
    /// fetch-event features are disabled.
    pub fn is_componentize_js(&self) -> bool {
        self.processed_by.iter().any(|t| t == "ComponentizeJS")
    }
}

/// What a component built by componentize-js is told about wasi:http without a grant.
pub const HTTP_DEFAULT_HINT: &str = "componentize-js includes wasi:http unless told not to: rebuild with `--disable http fetch-event` (or, if it does call out, grant the origins in grants.http.allow)";

/// Reads `bytes`; `Ok(None)` when they are not a component wasmparser can read (the
/// compiler then says what is wrong).
pub fn read(bytes: &[u8]) -> Result<Option<Preflight>, LoadError> {
    if Parser::is_core_wasm(bytes) {
        return Err(LoadError::CoreModule);
    }
    if !Parser::is_component(bytes) {
        return Ok(None);
    }
    let mut found = Preflight::default();
    // Nesting depth: 1 is the outer component; nested modules and components deeper.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { return Ok(None) };
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader.into_iter().flatten() {
                    found.imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader.into_iter().flatten() {
                    if export.kind == ComponentExternalKind::Instance {
                        found.exports.push(export.name.name.to_string());
                    }
                }
            }
            Payload::CustomSection(reader) if depth == 1 => {
                if let KnownCustom::Producers(fields) = reader.as_known() {
                    for field in fields.into_iter().flatten() {
                        if field.name == "processed-by" {
                            let tools = field.values.into_iter().flatten();
                            found.processed_by.extend(tools.map(|v| v.name.to_string()));
                        }
                    }
                }
            }
            Payload::ComponentCanonicalSection(reader) => {
                for f in reader.into_iter().flatten() {
                    if let Some(name) = async_abi(&f) {
                        return Err(LoadError::AsyncAbi(name));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Some(found))
}

/// The canonical built-in of the async ABI that `f` is, if it is one.
fn async_abi(f: &CanonicalFunction) -> Option<String> {
    let async_option = |options: &[CanonicalOption]| {
        options
            .iter()
            .any(|o| matches!(o, CanonicalOption::Async | CanonicalOption::Callback(_)))
    };
    match f {
        CanonicalFunction::Lift { options, .. } if async_option(options) => Some("async lift".into()),
        CanonicalFunction::Lower { options, .. } if async_option(options) => Some("async lower".into()),
        CanonicalFunction::Lift { .. }
        | CanonicalFunction::Lower { .. }
        | CanonicalFunction::ResourceNew { .. }
        | CanonicalFunction::ResourceDrop { .. }
        | CanonicalFunction::ResourceRep { .. }
        | CanonicalFunction::ThreadSpawnRef { .. }
        | CanonicalFunction::ThreadSpawnIndirect { .. }
        | CanonicalFunction::ThreadAvailableParallelism => None,
        other => Some(builtin_name(other)),
    }
}

/// `TaskCancel` → `task.cancel`, `WaitableSetNew` → `waitable-set.new`.
fn builtin_name(f: &CanonicalFunction) -> String {
    let debug = format!("{f:?}");
    let variant = debug.split([' ', '{', '(']).next().unwrap_or_default();
    let mut words: Vec<String> = Vec::new();
    for c in variant.chars() {
        if c.is_uppercase() || words.is_empty() {
            words.push(String::new());
        }
        words.last_mut().expect("pushed above").push(c.to_ascii_lowercase());
    }
    let head = match words.as_slice() {
        [a, b, ..] if (a == "waitable" && b == "set") || (a == "error" && b == "context") => 2,
        _ => 1,
    };
    let (prefix, rest) = words.split_at(head.min(words.len()));
    if rest.is_empty() {
        prefix.join("-")
    } else {
        format!("{}.{}", prefix.join("-"), rest.join("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_named_as_the_canonical_abi_names_them() {
        assert_eq!(builtin_name(&CanonicalFunction::TaskCancel), "task.cancel");
        assert_eq!(builtin_name(&CanonicalFunction::WaitableSetNew), "waitable-set.new");
        assert_eq!(builtin_name(&CanonicalFunction::BackpressureInc), "backpressure.inc");
    }

    #[test]
    fn a_core_module_is_named_before_compiling() {
        assert!(matches!(read(b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule)));
        assert!(matches!(read(b"junk"), Ok(None)));
    }
}
