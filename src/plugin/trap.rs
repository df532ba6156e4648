//! Trap summaries in the guest's language, read from the stderr lines the host kept:
//! a Python traceback's exception and where it was raised, a QuickJS exception's message
//! and where it was thrown, StarlingMonkey's conversion message with what to throw
//! instead, a Rust panic's message and location; else the last line said.

/// One line saying why the guest trapped, from its last stderr lines (oldest first).
pub fn summary(stderr: &[&str]) -> Option<String> {
    python(stderr)
        .or_else(|| quickjs(stderr))
        .or_else(|| starlingmonkey(stderr))
        .or_else(|| rust(stderr))
        .or_else(|| {
            let last = stderr.iter().rev().find(|l| !l.trim().is_empty())?;
            Some(format!("stderr: {}", last.trim()))
        })
}

/// componentize-py prints the traceback, then its runtime panics: the exception line
/// and the innermost frame are what the author needs.
fn python(stderr: &[&str]) -> Option<String> {
    let start = stderr
        .iter()
        .rposition(|l| l.starts_with("Traceback (most recent call last)"))?;
    let traceback = &stderr[start + 1..];
    let frame = traceback
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with("File \""));
    // The exception is the first unindented line after the frames.
    let exception = traceback
        .iter()
        .find(|l| !l.starts_with(' ') && !l.trim().is_empty())?
        .trim();
    Some(match frame {
        Some(f) => format!("Python exception: {exception} ({f})"),
        None => format!("Python exception: {exception}"),
    })
}

/// componentize-qjs panics with the exception's Debug form:
/// `Exception { message: Some("…"), stack: Some("    at run (/a.js:29:18)\n") }`.
fn quickjs(stderr: &[&str]) -> Option<String> {
    let line = stderr
        .iter()
        .rev()
        .find(|l| l.contains("Exception { message: Some(\""))?;
    let message = quoted_after(line, "message: Some(\"")?;
    let at = quoted_after(line, "stack: Some(\"").and_then(|stack| {
        stack
            .split("\\n")
            .map(str::trim)
            .find(|f| !f.is_empty())
            .map(str::to_string)
    });
    Some(match at {
        Some(at) => format!("JavaScript exception: {} ({at})", unescape(&message)),
        None => format!("JavaScript exception: {}", unescape(&message)),
    })
}

/// StarlingMonkey (componentize-js) turns what an export throws into its error type; a
/// thrown value that is not one fails that conversion, prints the conversion's message
/// and a `Stack:` of the generated bindings, then aborts. The original message is lost.
fn starlingmonkey(stderr: &[&str]) -> Option<String> {
    if !stderr.iter().any(|l| l.contains("mozalloc_abort")) {
        return None;
    }
    let stack = stderr.iter().rposition(|l| l.trim() == "Stack:")?;
    let message = stderr[..stack].iter().rev().find(|l| !l.trim().is_empty())?.trim();
    Some(format!(
        "JavaScript: {message}: the value thrown is not the function's error type; throw \
         {{code, message, retryable}} for a step error (catch and rethrow as one to keep an \
         exception's message)"
    ))
}

/// A Rust panic: from its `panicked at` line on, without the backtrace hint.
fn rust(stderr: &[&str]) -> Option<String> {
    let start = stderr.iter().rposition(|l| l.contains("panicked at"))?;
    let lines: Vec<&str> = stderr[start..]
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.starts_with("note: ") && !l.is_empty())
        .collect();
    Some(lines.join(" "))
}

/// The text of a Debug-quoted string starting right after `marker`.
fn quoted_after(line: &str, marker: &str) -> Option<String> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                out.push(chars.next()?);
            }
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

/// Undoes Debug's escaping of quotes and backslashes.
fn unescape(s: &str) -> String {
    s.replace("\\\"", "\"").replace("\\'", "'").replace("\\\\", "\\")
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn python_names_the_exception_and_where_it_was_raised() {
        let stderr = [
            "Traceback (most recent call last):",
            "  File \"/0/app.py\", line 12, in run",
            "  File \"/0/app.py\", line 38, in greet",
            "KeyError: 'name'",
            "",
            "thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:",
            "Python function threw an unexpected exception",
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        ];
        assert_eq!(
            summary(&stderr).unwrap(),
            "Python exception: KeyError: 'name' (File \"/0/app.py\", line 38, in greet)"
        );
    }

    #[test]
    fn quickjs_names_the_exception_and_where_it_was_thrown() {
        let stderr = [
            "",
            "thread '<unnamed>' (1) panicked at crates/runtime/src/interpreter.rs:51:31:",
            "Failed to call 'run': Value(Exception(",
            "Exception { message: Some(\"cannot read property 'toUpperCase' of undefined\"), stack: Some(\"    at run (/js/action.js:29:18)\\n    at x (/js/action.js:1:1)\\n\") })",
            ")",
        ];
        assert_eq!(
            summary(&stderr).unwrap(),
            "JavaScript exception: cannot read property 'toUpperCase' of undefined (at run (/js/action.js:29:18))"
        );
    }

    #[test]
    fn starlingmonkey_gives_its_conversion_message_and_what_to_throw() {
        let stderr = [
            "expected a string, received [undefined]",
            "Stack:",
            "  _utf8AllocateAndEncode@sources/initializer.js:18:11",
            "",
            "Redirecting call to abort() to mozalloc_abort",
            "",
        ];
        let s = summary(&stderr).unwrap();
        assert!(
            s.starts_with("JavaScript: expected a string, received [undefined]: the value thrown"),
            "{s}"
        );
        assert!(s.contains("throw {code, message, retryable}"), "{s}");
    }

    #[test]
    fn rust_gives_the_panic_message_and_location() {
        let stderr = [
            "some earlier line",
            "thread '<unnamed>' (1) panicked at src/lib.rs:44:25:",
            "the config has no name",
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        ];
        assert_eq!(
            summary(&stderr).unwrap(),
            "thread '<unnamed>' (1) panicked at src/lib.rs:44:25: the config has no name"
        );
    }

    #[test]
    fn otherwise_the_last_line_said() {
        assert_eq!(summary(&["a", "b", ""]).unwrap(), "stderr: b");
        assert_eq!(summary(&[]), None);
    }
}
