//! A parsed TOML document read key by key, so that every mistake in a file is reported,
//! not only the first: each value is converted on its own (a wrong one does not hide the
//! next), every number, duration and size is checked against the range the runtime can
//! represent (the range is in the message), and the keys nobody asked for are reported at
//! the end with the closest known key as a `help`.

use super::diag::{ConfigError, ConfigErrors, Place, SourceFile, did_you_mean};
use super::units::{format_bound, format_bytes};
use serde::Deserialize;
use std::ops::{Range, RangeInclusive};
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

pub(crate) type Node<'i> = Spanned<DeValue<'i>>;

/// Parses a document. Syntax errors end the file's checks: every duplicated key (with
/// where it was first defined) and the first other syntax error are reported.
pub(crate) fn parse(source: &SourceFile) -> Result<Spanned<DeTable<'_>>, ConfigErrors> {
    let (doc, mut found) = DeTable::parse_recoverable(&source.text);
    if found.is_empty() {
        return Ok(doc);
    }
    found.sort_by_key(|e| e.span().map_or(0, |s| s.start));
    let mut errors = ConfigErrors::default();
    let mut other = false;
    for e in found {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim_end();
        if message == "duplicate key" {
            let key = unquote(&source.text[span.clone()]);
            let mut error = source
                .error(span.clone(), format!("duplicate key `{key}`"))
                .with_label("defined again here");
            if let Some(first) = first_definition(doc.get_ref(), &key, span.start) {
                error = error.with_related(source.related(first, "first defined here"));
            }
            errors.push(error);
        } else if !other {
            other = true;
            errors.push(match message {
                TOO_DEEP => source
                    .error(
                        span,
                        format!(
                            "values nest more than {MAX_NESTING} levels deep here, deeper than the TOML reader goes"
                        ),
                    )
                    .with_help("flatten the value: nested inline tables and arrays count a level each"),
                _ => source.error(span, message),
            });
        }
    }
    Err(errors)
}

/// What the TOML reader says past its nesting limit.
const TOO_DEEP: &str = "cannot recurse further; max recursion depth met";

/// The most inline tables and arrays the TOML reader nests (toml 1.2's `LIMIT`; the
/// `flows-bad/too-deep` fixture holds it to that).
const MAX_NESTING: u32 = 80;

fn unquote(key: &str) -> String {
    let k = key.trim();
    k.strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .or_else(|| k.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))
        .unwrap_or(k)
        .to_string()
}

/// The span of the last definition of `key` before `before`, anywhere in the document.
fn first_definition(table: &DeTable<'_>, key: &str, before: usize) -> Option<Range<usize>> {
    fn walk(v: &DeValue<'_>, key: &str, before: usize, best: &mut Option<Range<usize>>) {
        match v {
            DeValue::Table(t) => {
                for (k, v) in t.iter() {
                    let s = k.span();
                    if k.get_ref() == key && s.start < before && best.as_ref().is_none_or(|b| b.start < s.start) {
                        *best = Some(s);
                    }
                    walk(v.get_ref(), key, before, best);
                }
            }
            DeValue::Array(a) => {
                for v in a.iter() {
                    walk(v.get_ref(), key, before, best);
                }
            }
            _ => {}
        }
    }
    let mut best = None;
    for (k, v) in table.iter() {
        let s = k.span();
        if k.get_ref() == key && s.start < before && best.as_ref().is_none_or(|b: &Range<usize>| b.start < s.start) {
            best = Some(s);
        }
        walk(v.get_ref(), key, before, &mut best);
    }
    best
}

/// What a value's type is called in messages.
fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// One table of a document being read. Every key asked for is known; `finish` reports the
/// others.
pub(crate) struct Table<'a, 'i> {
    pub source: &'a SourceFile,
    entries: &'a DeTable<'i>,
    pub span: Range<usize>,
    /// How an unknown key's message names the table: `[server]`, `step "fetch"`.
    title: String,
    /// What goes before a key in value messages: `server.`, `step "fetch": `.
    prefix: String,
    known: Vec<&'static str>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn root(source: &'a SourceFile, doc: &'a Spanned<DeTable<'i>>) -> Table<'a, 'i> {
        Table {
            source,
            entries: doc.get_ref(),
            span: doc.span(),
            title: "the top level".into(),
            prefix: String::new(),
            known: Vec::new(),
        }
    }

    /// Names the table differently in messages (an array element, for example).
    pub fn titled(mut self, title: impl Into<String>, prefix: impl Into<String>) -> Self {
        self.title = title.into();
        self.prefix = prefix.into();
        self
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn place(&self, span: Range<usize>) -> Place {
        Place {
            source: self.source.clone(),
            span,
        }
    }

    /// An error at `span` of this table's file.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        self.source.error(span, message)
    }

    /// The value of `key`, marking the key as known.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Node<'i>> {
        self.known.push(key);
        self.entries.get(key)
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The span of `key` itself (not its value).
    pub fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.entries.get_key_value(key).map(|(k, _)| k.span())
    }

    fn wrong(&self, key: &str, node: &Node<'_>, expected: &str) -> ConfigError {
        self.source.error(
            node.span(),
            format!("{}{key} must be {expected}, not {}", self.prefix, kind(node.get_ref())),
        )
    }

    pub fn string(&mut self, key: &'static str, errors: &mut ConfigErrors) -> Option<Spanned<String>> {
        let node = self.get(key)?;
        match node.get_ref() {
            DeValue::String(s) => Some(Spanned::new(node.span(), s.to_string())),
            _ => {
                errors.push(self.wrong(key, node, "a string"));
                None
            }
        }
    }

    pub fn boolean(&mut self, key: &'static str, errors: &mut ConfigErrors) -> Option<Spanned<bool>> {
        let node = self.get(key)?;
        match node.get_ref() {
            DeValue::Boolean(b) => Some(Spanned::new(node.span(), *b)),
            _ => {
                errors.push(self.wrong(key, node, "`true` or `false`"));
                None
            }
        }
    }

    /// An array of strings, each with its own span.
    pub fn strings(&mut self, key: &'static str, errors: &mut ConfigErrors) -> Option<Vec<Spanned<String>>> {
        let node = self.get(key)?;
        let DeValue::Array(items) = node.get_ref() else {
            errors.push(self.wrong(key, node, "an array of strings"));
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push(Spanned::new(item.span(), s.to_string())),
                other => errors.push(self.source.error(
                    item.span(),
                    format!("{}{key}[{i}] must be a string, not {}", self.prefix, kind(other)),
                )),
            }
        }
        Some(out)
    }

    /// One of `options`, with the closest as a `help` when it is none of them.
    pub fn choice(
        &mut self,
        key: &'static str,
        options: &[&'static str],
        errors: &mut ConfigErrors,
    ) -> Option<Spanned<&'static str>> {
        let s = self.string(key, errors)?;
        if let Some(o) = options.iter().find(|o| **o == s.get_ref()) {
            return Some(Spanned::new(s.span(), *o));
        }
        let mut e = self.source.error(
            s.span(),
            format!(
                "{}{key} \"{}\" is not one of {}",
                self.prefix,
                s.get_ref(),
                options
                    .iter()
                    .map(|o| format!("\"{o}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        if let Some(h) = did_you_mean(s.get_ref(), options.iter().copied()) {
            e = e.with_help(h);
        }
        errors.push(e);
        None
    }

    /// An integer in `range`.
    pub fn int(
        &mut self,
        key: &'static str,
        range: RangeInclusive<u64>,
        errors: &mut ConfigErrors,
    ) -> Option<Spanned<u64>> {
        let node = self.get(key)?;
        let (lo, hi) = (*range.start(), *range.end());
        let out_of_range = |shown: &str| {
            self.source.error(
                node.span(),
                format!("{}{key} must be an integer from {lo} to {hi}, not {shown}", self.prefix),
            )
        };
        match node.get_ref() {
            DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
                Ok(v) if v >= lo as i128 && v <= hi as i128 => Some(Spanned::new(node.span(), v as u64)),
                _ => {
                    errors.push(out_of_range(&i.to_string()));
                    None
                }
            },
            _ => {
                errors.push(self.wrong(key, node, &format!("an integer from {lo} to {hi}")));
                None
            }
        }
    }

    /// A number (integer or float) in `range`.
    pub fn number(
        &mut self,
        key: &'static str,
        range: RangeInclusive<f64>,
        errors: &mut ConfigErrors,
    ) -> Option<Spanned<f64>> {
        let node = self.get(key)?;
        let (lo, hi) = (*range.start(), *range.end());
        let value = match node.get_ref() {
            DeValue::Integer(_) | DeValue::Float(_) => f64::deserialize(ValueDeserializer::from(node.clone())).ok(),
            _ => {
                errors.push(self.wrong(key, node, &format!("a number from {lo} to {hi}")));
                return None;
            }
        };
        match value {
            Some(v) if range.contains(&v) => Some(Spanned::new(node.span(), v)),
            _ => {
                errors.push(self.source.error(
                    node.span(),
                    format!(
                        "{}{key} must be a number from {lo} to {hi}, not {}",
                        self.prefix,
                        &self.source.text[node.span()]
                    ),
                ));
                None
            }
        }
    }

    /// A duration written as text with a unit, in `range`.
    pub fn duration(
        &mut self,
        key: &'static str,
        range: RangeInclusive<Duration>,
        errors: &mut ConfigErrors,
    ) -> Option<Spanned<Duration>> {
        let node = self.get(key)?;
        let text = match node.get_ref() {
            DeValue::String(s) => s,
            DeValue::Integer(i) => {
                errors.push(
                    self.wrong(key, node, "a duration written as text with a unit")
                        .with_help(format!("write `\"{i}s\"` for {i} seconds")),
                );
                return None;
            }
            _ => {
                errors.push(self.wrong(key, node, "a duration such as \"500ms\", \"10s\" or \"5m\""));
                return None;
            }
        };
        match duration_in(text, &range) {
            Ok(d) => Some(Spanned::new(node.span(), d)),
            Err(e) => {
                errors.push(e.error(self.source, node.span(), &format!("{}{key}", self.prefix)));
                None
            }
        }
    }

    /// A size: an integer of bytes, or text with a unit; in `range`.
    pub fn bytes(
        &mut self,
        key: &'static str,
        range: RangeInclusive<u64>,
        errors: &mut ConfigErrors,
    ) -> Option<Spanned<u64>> {
        let node = self.get(key)?;
        let what = format!("{}{key}", self.prefix);
        let value = match node.get_ref() {
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
                .ok()
                .and_then(|v| u64::try_from(v).ok()),
            DeValue::String(s) => match s.trim().parse::<bytesize::ByteSize>() {
                Ok(b) => Some(b.as_u64()),
                Err(_) => {
                    errors.push(
                        self.source
                            .error(node.span(), format!("{what}: \"{s}\" is not a size"))
                            .with_help("write a number and a unit, such as \"512KiB\", \"64MiB\" or \"1GiB\", or a number of bytes"),
                    );
                    return None;
                }
            },
            _ => {
                errors.push(self.wrong(key, node, "a size such as \"64MiB\" or a number of bytes"));
                return None;
            }
        };
        match value {
            Some(v) if range.contains(&v) => Some(Spanned::new(node.span(), v)),
            _ => {
                errors.push(self.source.error(
                    node.span(),
                    format!(
                        "{what} must be from {} to {}, not {}",
                        format_bytes(*range.start()),
                        format_bytes(*range.end()),
                        &self.source.text[node.span()]
                    ),
                ));
                None
            }
        }
    }

    /// Any value serde can read (an inline table of strings, a connector's config).
    pub fn value<T: serde::de::DeserializeOwned>(
        &mut self,
        key: &'static str,
        expected: &str,
        errors: &mut ConfigErrors,
    ) -> Option<Spanned<T>> {
        let node = self.get(key)?;
        match T::deserialize(ValueDeserializer::from(node.clone())) {
            Ok(v) => Some(Spanned::new(node.span(), v)),
            Err(e) => {
                let span = e.span().unwrap_or(node.span());
                errors.push(self.source.error(
                    span,
                    format!("{}{key} must be {expected} ({})", self.prefix, e.message().trim_end()),
                ));
                None
            }
        }
    }

    /// The table under `key`.
    pub fn table(&mut self, key: &'static str, errors: &mut ConfigErrors) -> Option<Table<'a, 'i>> {
        let node = self.get(key)?;
        match node.get_ref() {
            DeValue::Table(t) => Some(self.child(key, t, node.span())),
            _ => {
                errors.push(self.wrong(key, node, "a table"));
                None
            }
        }
    }

    fn child(&self, key: &str, t: &'a DeTable<'i>, span: Range<usize>) -> Table<'a, 'i> {
        let path = format!("{}{key}", self.prefix);
        Table {
            source: self.source,
            entries: t,
            span,
            title: format!("[{path}]"),
            prefix: format!("{path}."),
            known: Vec::new(),
        }
    }

    /// Every table of the array under `key` (`[[steps]]`, or an inline array of tables).
    pub fn tables(&mut self, key: &'static str, errors: &mut ConfigErrors) -> Vec<Table<'a, 'i>> {
        let Some(node) = self.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = node.get_ref() else {
            errors.push(self.wrong(key, node, "an array of tables"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(t) => {
                    let path = format!("{}{key}[{i}]", self.prefix);
                    out.push(self.child(key, t, item.span()).titled(path.clone(), format!("{path}.")));
                }
                other => errors.push(self.source.error(
                    item.span(),
                    format!("{}{key}[{i}] must be a table, not {}", self.prefix, kind(other)),
                )),
            }
        }
        out
    }

    /// Every key of this table with its value, for tables whose keys are names
    /// (`[connectors.<name>]`).
    pub fn entries(&mut self) -> impl Iterator<Item = (Spanned<&'a str>, &'a Node<'i>)> {
        // A table read by its entries has no unknown keys.
        self.known.push("*");
        self.entries
            .iter()
            .map(|(k, v)| (Spanned::new(k.span(), k.get_ref().as_ref()), v))
    }

    /// The table of one entry (see [`Table::entries`]).
    pub fn entry_table(&self, key: &str, node: &'a Node<'i>, errors: &mut ConfigErrors) -> Option<Table<'a, 'i>> {
        match node.get_ref() {
            DeValue::Table(t) => Some(self.child(key, t, node.span())),
            other => {
                errors.push(self.source.error(
                    node.span(),
                    format!("{}{key} must be a table, not {}", self.prefix, kind(other)),
                ));
                None
            }
        }
    }

    /// Reports every key that nobody asked for.
    pub fn finish(&self, errors: &mut ConfigErrors) {
        if self.known.contains(&"*") {
            return;
        }
        for (k, _) in self.entries.iter() {
            let key = k.get_ref().as_ref();
            if self.known.contains(&key) {
                continue;
            }
            let mut e = self
                .source
                .error(k.span(), format!("unknown key `{key}` in {}", self.title));
            e = match did_you_mean(key, self.known.iter().copied()) {
                Some(h) => e.with_help(h),
                None => e.with_help(format!(
                    "{} takes: {}",
                    self.title,
                    self.known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            errors.push(e);
        }
    }
}

/// Why a duration text was refused.
pub(crate) enum DurationError {
    Invalid {
        text: String,
        help: String,
    },
    Range {
        text: String,
        range: RangeInclusive<Duration>,
    },
}

impl DurationError {
    pub fn error(self, source: &SourceFile, span: Range<usize>, what: &str) -> ConfigError {
        match self {
            DurationError::Invalid { text, help } => source
                .error(span, format!("{what}: \"{text}\" is not a duration"))
                .with_help(help),
            DurationError::Range { text, range } => source.error(
                span,
                format!(
                    "{what} must be from {} to {}, not \"{text}\"",
                    format_bound(*range.start()),
                    format_bound(*range.end())
                ),
            ),
        }
    }
}

/// Units humantime reads, for suggestions.
const UNITS: &[&str] = &[
    "ns", "us", "ms", "s", "secs", "sec", "seconds", "second", "m", "mins", "min", "minutes", "minute", "h", "hrs",
    "hr", "hours", "hour", "d", "days", "day", "w", "weeks", "week",
];

/// Parses a duration and checks it is in `range`.
pub(crate) fn duration_in(text: &str, range: &RangeInclusive<Duration>) -> Result<Duration, DurationError> {
    let d = match humantime::parse_duration(text.trim()) {
        Ok(d) => d,
        // A number and a unit too long for any duration: out of range, not malformed.
        Err(humantime::DurationError::NumberOverflow) => {
            return Err(DurationError::Range {
                text: text.to_string(),
                range: range.clone(),
            });
        }
        Err(_) => {
            return Err(DurationError::Invalid {
                text: text.to_string(),
                help: duration_help(text),
            });
        }
    };
    if range.contains(&d) {
        Ok(d)
    } else {
        Err(DurationError::Range {
            text: text.to_string(),
            range: range.clone(),
        })
    }
}

/// The likely fix for a duration text that does not parse.
fn duration_help(text: &str) -> String {
    let t = text.trim();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let unit = t[digits.len()..].trim();
    if let Ok(n) = digits.parse::<u64>() {
        if unit.starts_with("fortnight") {
            return format!("a fortnight is two weeks: write \"{}w\"", n.saturating_mul(2));
        }
        if unit.is_empty() {
            return format!("add a unit: \"{n}s\" for seconds, \"{n}m\" for minutes");
        }
        if let Some(u) = super::diag::closest(unit, UNITS.iter().copied()) {
            let space = if u.len() > 2 { " " } else { "" };
            return format!("did you mean \"{n}{space}{u}\"?");
        }
    }
    "write a number and a unit, such as \"500ms\", \"10s\", \"5m\", \"2h\" or \"1d\"".into()
}

/// A connector config as JSON, with the span of every key (dotted path, array items by
/// index) so that a problem the connector reports at `fields.total` points at that key.
pub(crate) fn config_json(node: &Node<'_>) -> (serde_json::Value, Vec<(String, Range<usize>)>) {
    let mut spans = Vec::new();
    let value = json(node, "", &mut spans);
    (value, spans)
}

fn json(node: &Node<'_>, path: &str, spans: &mut Vec<(String, Range<usize>)>) -> serde_json::Value {
    use serde_json::Value;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match node.get_ref() {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
            .ok()
            .and_then(|v| {
                i64::try_from(v)
                    .ok()
                    .map(Value::from)
                    .or_else(|| u64::try_from(v).ok().map(Value::from))
            })
            .unwrap_or(Value::Null),
        DeValue::Float(_) => f64::deserialize(ValueDeserializer::from(node.clone()))
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| {
                    let p = join(&i.to_string());
                    spans.push((p.clone(), v.span()));
                    json(v, &p, spans)
                })
                .collect(),
        ),
        DeValue::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| {
                    let p = join(k.get_ref());
                    spans.push((p.clone(), k.span()));
                    (k.get_ref().to_string(), json(v, &p, spans))
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, f: impl FnOnce(&mut Table, &mut ConfigErrors)) -> Vec<String> {
        let source = SourceFile::new("t.toml", text);
        let doc = parse(&source).map_err(|e| e.to_string()).unwrap();
        let mut errors = ConfigErrors::default();
        let mut t = Table::root(&source, &doc);
        f(&mut t, &mut errors);
        t.finish(&mut errors);
        errors.0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn every_bad_value_and_unknown_key_is_reported() {
        let errors = read("a = \"x\"\nb = 99999999999\nc = \"soon\"\ntimout = 1\n", |t, e| {
            t.int("a", 1..=10, e);
            t.int("b", 1..=10, e);
            t.duration("c", Duration::ZERO..=Duration::from_secs(1), e);
            t.string("timeout", e);
        });
        assert_eq!(
            errors,
            [
                "t.toml:1:5: a must be an integer from 1 to 10, not a string",
                "t.toml:2:5: b must be an integer from 1 to 10, not 99999999999",
                "t.toml:3:5: c: \"soon\" is not a duration (help: write a number and a unit, such as \"500ms\", \"10s\", \"5m\", \"2h\" or \"1d\")",
                "t.toml:4:1: unknown key `timout` in the top level (help: did you mean `timeout`?)",
            ]
        );
    }

    #[test]
    fn a_duration_too_long_for_any_clock_is_out_of_range_not_malformed() {
        let range = Duration::from_millis(10)..=Duration::from_secs(600);
        for text in ["584942417355y", "99999999999999999999s", "18446744073709551615d"] {
            assert!(
                matches!(duration_in(text, &range), Err(DurationError::Range { .. })),
                "{text}"
            );
        }
        assert!(matches!(
            duration_in("5 parsecs", &range),
            Err(DurationError::Invalid { .. })
        ));
    }

    #[test]
    fn duration_hints() {
        assert_eq!(duration_help("2 fortnights"), "a fortnight is two weeks: write \"4w\"");
        assert_eq!(duration_help("5 minuts"), "did you mean \"5 minutes\"?");
        assert_eq!(
            duration_help("30"),
            "add a unit: \"30s\" for seconds, \"30m\" for minutes"
        );
    }

    #[test]
    fn a_duplicate_key_names_where_it_was_first_defined() {
        let source = SourceFile::new("t.toml", "[flow]\nname = \"a\"\nname = \"b\"\n");
        let errors = parse(&source).unwrap_err();
        assert_eq!(errors.len(), 1);
        let e = &errors.0[0];
        assert_eq!(e.to_string(), "t.toml:3:1: duplicate key `name`");
        assert_eq!(e.related[0].location.line, 2);
    }

    #[test]
    fn config_keys_have_spans() {
        let source = SourceFile::new("t.toml", "c = { fields = { total = 1 }, list = [1, 2] }\n");
        let doc = parse(&source).unwrap();
        let (json, spans) = config_json(doc.get_ref().get("c").unwrap());
        assert_eq!(json["fields"]["total"], 1);
        let at = |p: &str| {
            spans
                .iter()
                .find(|(k, _)| k == p)
                .map(|(_, s)| source.line_col(s.start))
        };
        assert_eq!(at("fields.total"), Some((1, 18)));
        assert_eq!(at("list.1"), Some((1, 42)));
    }
}
