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

/// What a file that does not start as WebAssembly (`\0asm`) looks like instead.
fn what_it_is(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "the file is empty".into();
    }
    let head = &bytes[..bytes.len().min(64)];
    // Text cut inside a character at 64 bytes is still text.
    let valid = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).expect("valid up to there"),
    };
    let text = Some(valid)
        .filter(|t| t.len() + 4 > head.len() && t.chars().all(|c| !c.is_control() || c.is_ascii_whitespace()));
    let hint = match text.map(str::trim_start) {
        Some(t) if t.starts_with("(component") || t.starts_with("(module") => {
            " (WebAssembly text: turn it into a binary with `wasm-tools parse`)"
        }
        Some(t) if t.starts_with('<') => " (HTML or XML: a web page saved in place of the file?)",
        Some(_) => "",
        None if bytes.starts_with(b"\x7fELF") => " (an ELF executable: a native program, not WebAssembly)",
        None if bytes.starts_with(&[0x1f, 0x8b]) => " (gzip-compressed: unpack it first)",
        None if bytes.starts_with(b"PK") => " (a zip archive: unpack it first)",
        None => "",
    };
    let shown = match text {
        Some(t) => format!(
            "text, {:?}",
            t.lines().next().unwrap_or("").chars().take(40).collect::<String>()
        ),
        None => {
            let hex: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
            format!("bytes {}", hex.join(" "))
        }
    };
    format!("it starts with {shown}, where a component starts with \\0asm{hint}")
}

/// What a component built by componentize-js is told about wasi:http without a grant.
pub const HTTP_DEFAULT_HINT: &str = "componentize-js includes wasi:http unless told not to: rebuild with `--disable http fetch-event` (or, if it does call out, grant the origins in grants.http.allow)";

/// Reads `bytes`; `Ok(None)` when they are not a component wasmparser can read (the
/// compiler then says what is wrong).
pub fn read(bytes: &[u8]) -> Result<Option<Preflight>, LoadError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(LoadError::NotWasm(what_it_is(bytes)));
    }
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
        assert!(matches!(read(b"\0asm\x99\0\0\0"), Ok(None)));
    }

    #[test]
    fn a_file_that_is_not_webassembly_says_what_it_looks_like() {
        let said = |bytes: &[u8]| match read(bytes) {
            Err(LoadError::NotWasm(why)) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(said(b""), "the file is empty");
        assert_eq!(
            said(b"hello\nworld"),
            "it starts with text, \"hello\", where a component starts with \\0asm"
        );
        assert!(
            said(b"(component\n  (core module))")
                .ends_with("(WebAssembly text: turn it into a binary with `wasm-tools parse`)")
        );
        assert!(said(b"<!DOCTYPE html><html>").contains("a web page saved in place of the file?"));
        assert!(said(b"\x7fELF\x02\x01\x01\0").starts_with("it starts with bytes 7f 45 4c 46,"));
        assert!(said(b"\x1f\x8b\x08\0rest").ends_with("(gzip-compressed: unpack it first)"));
        // Text cut inside a character at 64 bytes is text still.
        let long = format!("{}é and more", "a".repeat(63));
        assert!(
            said(long.as_bytes()).starts_with("it starts with text, \"aaaa"),
            "{}",
            said(long.as_bytes())
        );
    }
}
