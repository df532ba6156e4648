//! Config diagnostics: a source file's text with its line starts (so a byte span becomes
//! `file:line:column` in logarithmic time, however large the file), and the errors config
//! loading collects instead of stopping at the first: each with the source line and the
//! span under it, an optional `help`, and other places it relates to (where a duplicated
//! key was first defined, the other flow on the same webhook path).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A config file that was read, kept so spans can be turned into lines and columns.
/// Cloning is cheap: the text and its line index are shared.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: Arc<str>,
    /// The byte offset at which each line starts; the first is 0.
    line_starts: Arc<[usize]>,
}

impl SourceFile {
    pub fn read(path: &Path) -> Result<SourceFile, ConfigError> {
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Ok(SourceFile::new(path, text)),
                Err(e) => {
                    let at = e.utf8_error().valid_up_to();
                    let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    Err(SourceFile::new(path, text).error(at..at + 1, "the file is not UTF-8 text"))
                }
            },
            Err(e) => Err(ConfigError::file(path, format!("cannot read file: {e}"))),
        }
    }

    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> SourceFile {
        let text: Arc<str> = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// The 0-based line holding a byte offset.
    fn line_index(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset) - 1
    }

    /// The text of a 0-based line, without its line break.
    fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts[line];
        let end = self.line_starts.get(line + 1).map_or(self.text.len(), |&e| e);
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = self.text.floor_char_boundary(offset.min(self.text.len()));
        let line = self.line_index(offset);
        let start = self.line_starts[line];
        let mut col = self.text[start..offset].chars().count() + 1;
        // A byte-order mark is not a column.
        if line == 0 && self.text.starts_with('\u{feff}') && offset > 0 {
            col -= 1;
        }
        (line + 1, col)
    }

    pub fn at(&self, span: Range<usize>) -> Location {
        let (line, column) = self.line_col(span.start);
        Location {
            file: self.path.clone(),
            line,
            column,
        }
    }

    /// The source line of `span`'s start with the span marked (to the end of that line
    /// when it runs over).
    fn snippet(&self, span: &Range<usize>, label: Option<String>) -> Snippet {
        let start = self.text.floor_char_boundary(span.start.min(self.text.len()));
        let line = self.line_index(start);
        let text = self.line_text(line);
        let line_start = self.line_starts[line];
        let end = self
            .text
            .floor_char_boundary(span.end.clamp(start, line_start + text.len()));
        let mut before = &self.text[line_start..start];
        let mut shown = text;
        if line == 0 && text.starts_with('\u{feff}') {
            shown = &text['\u{feff}'.len_utf8()..];
            before = before.strip_prefix('\u{feff}').unwrap_or(before);
        }
        // Control characters are shown as U+FFFD (TOML allows none but tab, and a stray
        // escape would reach the terminal); tabs as four spaces.
        let mut columns = Vec::with_capacity(shown.len());
        for c in shown.chars() {
            match c {
                '\t' => columns.extend([' '; 4]),
                c if c.is_control() => columns.push('\u{fffd}'),
                c => columns.push(c),
            }
        }
        let (start_col, width) = (display_width(before), display_width(&self.text[start..end]).max(1));
        let (text, start_col, width) = window(&columns, start_col, width);
        Snippet {
            line: line + 1,
            text,
            start: start_col,
            width,
            label,
        }
    }

    /// An error at `span` of this file.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            location: Some(self.at(span.clone())),
            message: message.into(),
            snippet: Some(Box::new(self.snippet(&span, None))),
            help: None,
            related: Vec::new(),
        }
    }

    /// Another place an error relates to, with what it is.
    pub fn related(&self, span: Range<usize>, label: impl Into<String>) -> Related {
        Related {
            location: self.at(span.clone()),
            snippet: self.snippet(&span, Some(label.into())),
        }
    }
}

/// The widest line a snippet shows: a longer one (a minified file, a long inline table)
/// is cut to this around its span, `...` marking what was left out, as rustc does.
const MAX_SHOWN: usize = 160;

/// Columns shown before the span on a cut line.
const BEFORE_SPAN: usize = 60;

/// `line` (one char per column) as shown, with the span at `start` columns, `width` wide,
/// moved to where it lands in what is shown.
fn window(line: &[char], start: usize, width: usize) -> (String, usize, usize) {
    if line.len() <= MAX_SHOWN {
        return (line.iter().collect(), start, width);
    }
    let to = (start.saturating_sub(BEFORE_SPAN) + MAX_SHOWN).min(line.len());
    let from = to.saturating_sub(MAX_SHOWN).min(start.saturating_sub(BEFORE_SPAN));
    let lead = if from > 0 { "..." } else { "" };
    let tail = if to < line.len() { "..." } else { "" };
    let text = format!("{lead}{}{tail}", line[from..to].iter().collect::<String>());
    let width = width.min(to.saturating_sub(start)).max(1);
    (text, start - from + lead.len(), width)
}

/// Columns a text takes in the snippet (tabs are shown as four spaces).
fn display_width(s: &str) -> usize {
    s.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum()
}

/// A place in a config file that is known only by its span: `error` makes located errors.
#[derive(Debug, Clone)]
pub struct Place {
    pub source: SourceFile,
    pub span: Range<usize>,
}

impl Place {
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        self.source.error(self.span.clone(), message)
    }

    pub fn related(&self, label: impl Into<String>) -> Related {
        self.source.related(self.span.clone(), label)
    }

    pub fn location(&self) -> Location {
        self.source.at(self.span.clone())
    }
}

/// Where a config problem is: `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One source line with a span marked in it, as a diagnostic shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// 1-based.
    pub line: usize,
    pub text: String,
    /// Display columns before the span, and the span's width (at least 1).
    pub start: usize,
    pub width: usize,
    pub label: Option<String>,
}

/// Another place a problem involves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    pub location: Location,
    pub snippet: Snippet,
}

/// One config problem: where, when known, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub location: Option<Location>,
    pub message: String,
    /// The source line at `location`, with the span marked.
    pub snippet: Option<Box<Snippet>>,
    /// How to fix it, when a fix is likely.
    pub help: Option<String>,
    pub related: Vec<Related>,
}

impl ConfigError {
    /// A problem with no place in a file.
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError {
            location: None,
            message: message.into(),
            snippet: None,
            help: None,
            related: Vec::new(),
        }
    }

    /// A problem with a whole file (it cannot be read, for example).
    pub fn file(path: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError::new(format!("{}: {}", path.display(), message.into()))
    }

    pub fn at(location: Location, message: impl Into<String>) -> ConfigError {
        ConfigError {
            location: Some(location),
            ..ConfigError::new(message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> ConfigError {
        self.help = Some(help.into());
        self
    }

    /// Names what the marked span is.
    pub fn with_label(mut self, label: impl Into<String>) -> ConfigError {
        if let Some(s) = &mut self.snippet {
            s.label = Some(label.into());
        }
        self
    }

    pub fn with_related(mut self, related: Related) -> ConfigError {
        self.related.push(related);
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "{loc}: {}", self.message)?,
            None => f.write_str(&self.message)?,
        }
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

/// Every problem found while loading config, in the order found.
#[derive(Debug, Default, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn push(&mut self, error: ConfigError) {
        self.0.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn extend(&mut self, other: ConfigErrors) {
        self.0.extend(other.0);
    }

    /// Errors in file order (stable: errors at one place keep the order they were found
    /// in), errors with no place first.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| match (&a.location, &b.location) {
            (Some(x), Some(y)) => (&x.file, x.line, x.column).cmp(&(&y.file, y.line, y.column)),
            // Errors about whole files name the file first.
            (None, None) => a.message.cmp(&b.message),
            (x, y) => x.is_some().cmp(&y.is_some()),
        });
    }

    /// `Ok(value)` when nothing was reported, else the errors in file order.
    pub fn into_result<T>(mut self, value: T) -> Result<T, ConfigErrors> {
        if self.0.is_empty() {
            return Ok(value);
        }
        self.sort();
        Err(self)
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Edit distance between two short texts: insertions, deletions, substitutions and
/// swaps of neighbours each count 1 (optimal string alignment, by characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `given`, if it is close enough to be a likely typo (as cargo
/// and rustc suggest: at most a third of the length apart, case differences free).
pub fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = given.to_lowercase();
    let limit = (given.chars().count().max(3)) / 3;
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit.max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `help: did you mean ...` for an unknown name, when one of `known` is close.
pub fn did_you_mean<'a>(given: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(given, known).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let s = SourceFile::new("f.toml", "a = 1\nname = \"é\" x\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        // The byte offset of `x` is past the two-byte `é`, but the column counts characters.
        let x = s.text.find('x').unwrap();
        assert_eq!(s.line_col(x), (2, 12));
        assert_eq!(s.line_col(s.text.len()), (3, 1));
    }

    #[test]
    fn crlf_and_byte_order_mark() {
        let s = SourceFile::new("f.toml", "\u{feff}a = 1\r\nb = x\r\n");
        assert_eq!(s.line_col(s.text.find('a').unwrap()), (1, 1));
        let x = s.text.find('x').unwrap();
        assert_eq!(s.line_col(x), (2, 5));
        let e = s.error(x..x + 1, "bad");
        let snip = e.snippet.unwrap();
        assert_eq!(
            (snip.line, snip.text.as_str(), snip.start, snip.width),
            (2, "b = x", 4, 1)
        );
    }

    #[test]
    fn a_long_line_is_cut_around_its_span() {
        let long = format!(
            "x = [{}]\n",
            (0..600).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
        );
        let s = SourceFile::new("f.toml", long.as_str());
        for needle in ["x", "300, 301", "599]"] {
            let at = s.text.find(needle).unwrap();
            let snip = s.error(at..at + needle.len(), "bad").snippet.unwrap();
            assert!(snip.text.chars().count() <= MAX_SHOWN + 6, "{needle}: {}", snip.text);
            // The span is marked under the same text.
            let marked: String = snip.text.chars().skip(snip.start).take(snip.width).collect();
            assert_eq!(marked, needle, "{}", snip.text);
        }
        let at = s.text.find("300, 301").unwrap();
        let snip = s.error(at..at + 8, "bad").snippet.unwrap();
        assert!(
            snip.text.starts_with("...") && snip.text.ends_with("..."),
            "{}",
            snip.text
        );
        // A span running past the cut is marked to it.
        let snip = s.error(at..s.text.len() - 1, "bad").snippet.unwrap();
        assert_eq!(snip.start + snip.width, snip.text.chars().count() - 3, "{}", snip.text);
    }

    #[test]
    fn control_characters_are_shown_as_replacement_characters() {
        let s = SourceFile::new("f.toml", "a = \"\u{1b}[2Jx\"\n");
        let at = s.text.find('x').unwrap();
        let snip = s.error(at..at + 1, "bad").snippet.unwrap();
        assert_eq!((snip.text.as_str(), snip.start), ("a = \"\u{fffd}[2Jx\"", 9));
    }

    #[test]
    fn suggestions_are_close_names_only() {
        let known = ["transform", "reshape", "log", "http"];
        assert_eq!(closest("transfrom", known), Some("transform"));
        assert_eq!(closest("Reshape", known), Some("reshape"));
        assert_eq!(closest("slack", known), None);
        assert_eq!(closest("timout", ["name", "timeout", "throttle"]), Some("timeout"));
    }
}
