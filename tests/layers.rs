//! The house rule on imports, checked from the sources: modules sit in layers (ground,
//! config, plugin, store, engine, daemon, cli) and import only from layers below their
//! own; within a module, no two files import each other, directly or around a circle.
//!
//! Paths are read from `use` trees and from `crate::`/`super::`/`self::` paths in code,
//! test modules included. A path that ends at a `mod.rs` is followed through that file's
//! `pub use` re-exports to the file that defines the item, so a re-export is not an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's layer; a module imports only from lower layers (or itself).
/// The order is `src/lib.rs`'s map, read bottom up.
const LAYERS: &[(&str, u32)] = &[
    // ground floor: vocabulary and helpers every layer may use
    ("", 0), // the crate root (its macros)
    ("status", 0),
    ("sync", 0),
    ("time_format", 0),
    ("config", 1),
    ("plugin", 2),
    ("schedule", 2),
    ("store", 3),
    ("loader", 4),
    ("engine", 5),
    ("metrics", 6),
    ("detail", 6),
    ("daemon", 7),
    ("cli", 8),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Module path of a source file: `src/engine/run.rs` → `["engine", "run"]`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source without comments and string literals (so paths in prose are not imports).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) {
            let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
            if b.get(i + 1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            i += 2 + hashes;
            while i < b.len() && !b[i..].starts_with(&close) {
                i += 1;
            }
            i += close.len();
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // a char literal such as '"' or '{'
            i += 3;
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            i += 2;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Expands one use tree (`a::{b, c::{d, e}}`) into full paths.
fn expand(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let mut base = prefix.to_vec();
        base.extend(head);
        let inner = &tree[open + 1..tree.rfind('}').expect("a use tree's braces close")];
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], &base, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &base, out);
    } else {
        let tree = tree.split(" as ").next().unwrap();
        let mut path = prefix.to_vec();
        path.extend(tree.split("::").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()));
        if path.last().is_some_and(|s| s == "self") {
            path.pop();
        }
        out.push(path);
    }
}

/// Every path a file names, made absolute (from the crate root).
fn paths_in(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut raw = Vec::new();
    // use statements, possibly spanning lines
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        expand(&rest[..end], &[], &mut raw);
        rest = &rest[end..];
    }
    // paths in code
    for anchor in ["crate::", "super::", "self::"] {
        let mut rest = code;
        while let Some(at) = rest.find(anchor) {
            let before = rest[..at].chars().last();
            let tail = &rest[at..];
            rest = &rest[at + anchor.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            raw.push(
                tail[..len]
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            );
        }
    }
    raw.into_iter()
        .filter_map(|p| {
            let mut it = p.into_iter().peekable();
            let mut base = match it.peek().map(String::as_str) {
                Some("crate") => {
                    it.next();
                    Vec::new()
                }
                // `self` is the file's own module, `super` its parent (the loop climbs)
                Some("super") | Some("self") => module.to_vec(),
                _ => return None,
            };
            for s in it {
                match s.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => base.push(s),
                }
            }
            Some(base)
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

struct Tree {
    /// module path → file
    by_module: BTreeMap<Vec<String>, PathBuf>,
    /// for each mod.rs / lib.rs: item name → the module path it re-exports it from
    reexports: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>>,
}

impl Tree {
    /// The file that defines what `path` names: its longest module prefix, followed
    /// through a directory module's re-exports.
    fn resolve(&self, path: &[String]) -> Option<Vec<String>> {
        let mut n = path.len();
        while n > 0 && !self.by_module.contains_key(&path[..n]) {
            n -= 1;
        }
        let module = path[..n].to_vec();
        let target = path
            .get(n)
            .and_then(|item| Some((item, self.reexports.get(&module)?.get(item)?)));
        if let Some((item, target)) = target.filter(|(_, t)| **t != module) {
            let mut full = target.clone();
            full.push(item.clone());
            return self.resolve(&full);
        }
        Some(module)
    }
}

/// Each file's module and the paths it names.
type Sources = Vec<(Vec<String>, Vec<Vec<String>>)>;

fn load() -> (Tree, Sources) {
    let mut all = Vec::new();
    files(&src(), &mut all);
    all.retain(|f| f.file_name().unwrap() != "main.rs");
    let mut tree = Tree {
        by_module: BTreeMap::new(),
        reexports: BTreeMap::new(),
    };
    let mut sources = Vec::new();
    for f in &all {
        let module = module_of(f);
        let name = f.file_name().unwrap().to_string_lossy();
        let is_dir_module = name == "mod.rs" || name == "lib.rs";
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        let paths = paths_in(&code, &module);
        if is_dir_module {
            // `pub use x::Y` and `pub use x::{Y, Z}` in a directory module
            let mut map = BTreeMap::new();
            for line in code.split(';') {
                let line = line.trim();
                let Some(tree_text) = line
                    .strip_prefix("pub use ")
                    .or_else(|| line.strip_prefix("pub(crate) use "))
                    .or_else(|| line.rsplit_once("\npub use ").map(|(_, t)| t))
                else {
                    continue;
                };
                let mut expanded = Vec::new();
                expand(tree_text, &[], &mut expanded);
                for mut p in expanded {
                    let Some(item) = p.pop() else { continue };
                    let mut target = match p.first().map(String::as_str) {
                        Some("crate") => p[1..].to_vec(),
                        Some("super") => {
                            let mut b = module.clone();
                            b.pop();
                            b.extend(p[1..].iter().cloned());
                            b
                        }
                        Some("self") => {
                            let mut b = module.clone();
                            b.extend(p[1..].iter().cloned());
                            b
                        }
                        _ => {
                            let mut b = module.clone();
                            b.extend(p.iter().cloned());
                            b
                        }
                    };
                    if target.is_empty() && module.is_empty() {
                        target = Vec::new();
                    }
                    map.insert(item, target);
                }
            }
            tree.reexports.insert(module.clone(), map);
        }
        tree.by_module.insert(module.clone(), f.clone());
        sources.push((module, paths));
    }
    (tree, sources)
}

fn layer(module: &[String]) -> (String, u32) {
    let top = module.first().cloned().unwrap_or_default();
    let rank = LAYERS
        .iter()
        .find(|(m, _)| *m == top)
        .unwrap_or_else(|| panic!("src/{top} has no layer: add it to LAYERS in tests/layers.rs"))
        .1;
    (top, rank)
}

fn shown(module: &[String]) -> String {
    if module.is_empty() {
        "crate".into()
    } else {
        module.join("::")
    }
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let (tree, sources) = load();
    let mut wrong = BTreeSet::new();
    for (module, paths) in &sources {
        let (top, rank) = layer(module);
        for p in paths {
            let Some(target) = tree.resolve(p) else { continue };
            let (ttop, trank) = layer(&target);
            if ttop != top && trank >= rank && !(trank == 0 && rank == 0) {
                wrong.insert(format!(
                    "{} (layer {rank}) imports {} (layer {trank})",
                    shown(module),
                    p.join("::")
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    let (tree, sources) = load();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, paths) in &sources {
        let from = edges.entry(module.clone()).or_default();
        for p in paths {
            let Some(target) = tree.resolve(p) else { continue };
            // a directory module declares its children; its own re-exports are not uses
            let is_child = target.len() > module.len() && target.starts_with(module);
            if &target != module && !is_child && !target.is_empty() {
                from.insert(target);
            }
        }
    }
    // Tarjan's strongly connected components
    struct Walk<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        circles: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a Vec<String>) {
        let i = w.index.len();
        w.index.insert(v, i);
        w.low.insert(v, i);
        w.stack.push(v);
        w.on.insert(v);
        if let Some(next) = w.edges.get(v) {
            for t in next {
                let Some((t, _)) = w.edges.get_key_value(t) else {
                    continue;
                };
                if !w.index.contains_key(t) {
                    visit(w, t);
                    let l = w.low[t].min(w.low[v]);
                    w.low.insert(v, l);
                } else if w.on.contains(t) {
                    let l = w.index[t].min(w.low[v]);
                    w.low.insert(v, l);
                }
            }
        }
        if w.low[v] == w.index[v] {
            let mut scc = Vec::new();
            while let Some(t) = w.stack.pop() {
                w.on.remove(t);
                scc.push(shown(t));
                if t == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                w.circles.push(scc);
            }
        }
    }
    let mut w = Walk {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        circles: Vec::new(),
    };
    for v in edges.keys() {
        if !w.index.contains_key(v) {
            visit(&mut w, v);
        }
    }
    let circles: Vec<String> = w.circles.iter().map(|c| c.join(" ↔ ")).collect();
    assert!(
        circles.is_empty(),
        "files that import each other:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_reader_follows_use_trees_and_re_exports() {
    // the checker itself: a grouped use tree expands, `super` climbs, re-exports resolve
    let mut out = Vec::new();
    expand("crate::{a::B, c::{d, e::F as G}, h::self}", &[], &mut out);
    let got: Vec<String> = out.iter().map(|p| p.join("::")).collect();
    assert_eq!(got, ["crate::a::B", "crate::c::d", "crate::c::e::F", "crate::h"]);
    let m = vec!["engine".to_string(), "run".to_string()];
    let p = paths_in("use super::step::StepCall; fn f() { crate::store::open(); }", &m);
    let got: Vec<String> = p.iter().map(|p| p.join("::")).collect();
    assert_eq!(got, ["engine::step::StepCall", "store::open"]);
    let (tree, _) = load();
    let via_mod = tree.resolve(&["engine".into(), "Executor".into()]).unwrap();
    assert_eq!(shown(&via_mod), "engine::executor");
    assert_eq!(
        code_only("let s = \"crate::cli\"; // crate::cli\nx"),
        "let s = \"\"; \nx"
    );
}
