//! Config errors as people and tools read them: rendered as cargo renders its
//! diagnostics (the message, `--> file:line:column`, the source line with the span marked,
//! related places, `= help:`), or as one JSON object per line for editors and CI.

use super::diag::{ConfigError, ConfigErrors, Snippet};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// One error as cargo shows a diagnostic, ending with an empty line.
pub fn render(e: &ConfigError) -> String {
    let mut out = format!("error: {}\n", e.message);
    let lines = e
        .snippet
        .iter()
        .map(|s| s.line)
        .chain(e.related.iter().map(|r| r.snippet.line));
    let width = lines.max().map_or(0, |l| l.to_string().len());
    let pad = " ".repeat(width);
    if let Some(loc) = &e.location {
        let _ = writeln!(out, "{pad}--> {loc}");
    }
    if let Some(s) = &e.snippet {
        snippet(&mut out, &pad, s, '^');
    }
    for r in &e.related {
        if e.snippet.is_some() {
            let _ = writeln!(out, "{pad} |");
        }
        let _ = writeln!(out, "{pad}::: {}", r.location);
        snippet(&mut out, &pad, &r.snippet, '-');
    }
    if let Some(help) = &e.help {
        if e.snippet.is_some() {
            let _ = writeln!(out, "{pad} |");
        }
        let _ = writeln!(out, "{pad} = help: {help}");
    }
    out.push('\n');
    out
}

fn snippet(out: &mut String, pad: &str, s: &Snippet, mark: char) {
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{:>w$} | {}", s.line, s.text, w = pad.len());
    let marks: String = std::iter::repeat_n(mark, s.width).collect();
    let label = s.label.as_deref().map(|l| format!(" {l}")).unwrap_or_default();
    let _ = writeln!(out, "{pad} | {}{marks}{label}", " ".repeat(s.start));
}

/// Every error, then the line that sums them up (`what` says what was checked, such as
/// `0 of 2 flows valid`).
pub fn render_all(errors: &ConfigErrors, what: &str) -> String {
    let mut out: String = errors.0.iter().map(render).collect();
    let n = errors.len();
    let _ = writeln!(
        out,
        "error: could not load the config: {n} error{}{}",
        if n == 1 { "" } else { "s" },
        if what.is_empty() {
            String::new()
        } else {
            format!(" ({what})")
        }
    );
    out
}

/// One error as a JSON object (the rendered text included, as cargo's `rendered`).
pub fn json(e: &ConfigError) -> Value {
    let place = |loc: &super::Location, s: &Snippet| {
        json!({
            "file": loc.file.display().to_string(),
            "line": loc.line,
            "column": loc.column,
            "width": s.width,
            "label": s.label,
        })
    };
    let primary = match (&e.location, &e.snippet) {
        (Some(l), Some(s)) => place(l, s),
        (Some(l), None) => json!({ "file": l.file.display().to_string(), "line": l.line, "column": l.column }),
        _ => Value::Null,
    };
    json!({
        "reason": "config-error",
        "level": "error",
        "message": e.message,
        "location": primary,
        "related": e.related.iter().map(|r| place(&r.location, &r.snippet)).collect::<Vec<_>>(),
        "help": e.help,
        "rendered": render(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceFile;

    #[test]
    fn renders_like_cargo() {
        let s = SourceFile::new("flows/a.toml", "[[steps]]\nname = \"b\"\nconnector = \"transfrom\"\n");
        let at = s.text.find("\"transfrom").unwrap();
        let e = s
            .error(at..at + 11, "unknown connector \"transfrom\"")
            .with_help("did you mean `transform`?");
        assert_eq!(
            render(&e),
            "error: unknown connector \"transfrom\"\n --> flows/a.toml:3:13\n  |\n3 | connector = \"transfrom\"\n  |             ^^^^^^^^^^^\n  |\n  = help: did you mean `transform`?\n\n"
        );
    }
}
