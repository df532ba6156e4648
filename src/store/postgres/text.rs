//! Text PostgreSQL cannot hold: U+0000 is refused in a `text` column and in a `jsonb`
//! string, yet a webhook's JSON, a connector's output or a log message may carry it. Such
//! text is stored with each U+0000 written as [`ESC`] `0` and each [`ESC`] doubled, and read
//! back exactly; text with neither is stored as it is. Filters are escaped the same way, so
//! equality and substring matches compare what is stored. Payloads are `json` (not
//! `jsonb`), which keeps `\u0000` as written: they are not escaped.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::borrow::Cow;

/// Private-use characters: rare in real text, so nearly all text is stored unchanged, and
/// a substring filter of ordinary characters never matches inside an escape.
const ESC: char = '\u{E000}';
const NUL: char = '\u{E001}';

/// `s` as a `text` column or a filter holds it.
pub(super) fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['\0', ESC]) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\0' => {
                out.push(ESC);
                out.push(NUL);
            }
            ESC => {
                out.push(ESC);
                out.push(ESC);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The text that `escape` stored as `s`. An [`ESC`] followed by anything else (written
/// before text was escaped) stays as it is.
pub(super) fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains(ESC) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ESC {
            match chars.peek() {
                Some(&NUL) => {
                    chars.next();
                    out.push('\0');
                    continue;
                }
                Some(&ESC) => {
                    chars.next();
                }
                _ => {}
            }
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// `v`'s JSON text for a `jsonb` column, its strings (keys too) escaped.
pub(super) fn doc<T: Serialize>(v: &T) -> String {
    let text = serde_json::to_string(v).expect("store records serialize");
    // serde_json writes U+0000 as `\u0000` (a literal backslash before "u0000" shows as
    // `\\u0000`, which only costs the slow path below).
    if !text.contains("\\u0000") && !text.contains(ESC) {
        return text;
    }
    let mut value = serde_json::to_value(v).expect("store records serialize");
    map_strings(&mut value, &|s| escape(s).into_owned());
    serde_json::to_string(&value).expect("a JSON value serializes")
}

/// The record a `jsonb` column's text holds, its strings unescaped.
pub(super) fn from_doc<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    if !text.contains(ESC) {
        return serde_json::from_str(text);
    }
    let mut value: Value = serde_json::from_str(text)?;
    map_strings(&mut value, &|s| unescape(s).into_owned());
    serde_json::from_value(value)
}

fn map_strings(v: &mut Value, f: &dyn Fn(&str) -> String) {
    match v {
        Value::String(s) => *s = f(s),
        Value::Array(items) => items.iter_mut().for_each(|i| map_strings(i, f)),
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut item) in old {
                map_strings(&mut item, f);
                map.insert(f(&k), item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_plain_text_is_untouched() {
        for s in [
            "",
            "plain",
            "a\0b",
            "\0",
            "\u{E000}",
            "\u{E000}\u{E001}",
            "\u{E001}",
            "\u{E000}\u{E000}\0\0x",
            "é\0\u{E000}",
        ] {
            let stored = escape(s);
            assert!(!stored.contains('\0'), "{s:?} stored as {stored:?}");
            assert_eq!(unescape(&stored), s);
        }
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape("a\0b"), "a\u{E000}\u{E001}b");
    }

    #[test]
    fn a_substring_filter_matches_the_stored_text() {
        let stored = escape("id \0 and \u{E000} here");
        assert!(stored.contains(&*escape("\0 and \u{E000}")));
        assert!(stored.contains(&*escape("\u{E000}")));
        assert!(
            !escape("\0").contains(|c: char| c.is_ascii()),
            "no ordinary character matches inside it"
        );
    }

    #[test]
    fn documents_round_trip_with_their_keys() {
        let v = serde_json::json!({"a\u{0}": ["x\u{0}y", {"k": "\u{E000}"}], "n": 1, "plain": "t"});
        let text = doc(&v);
        assert!(!text.contains("\\u0000"), "{text}");
        assert_eq!(from_doc::<Value>(&text).unwrap(), v);
        let plain = serde_json::json!({"a": "\\u0000 is text"});
        assert_eq!(doc(&plain), serde_json::to_string(&plain).unwrap());
        assert_eq!(from_doc::<Value>(&doc(&plain)).unwrap(), plain);
    }
}
