//! A spec applied to the input's JSON text. When every expression past `from` only picks
//! (plain field chains), the document a `from` chain names and the members the fields
//! pick pass through as the text they came with, checked to be JSON but never parsed into
//! values and written out again; otherwise the document is parsed into values in the pass
//! that finds it.

use super::{Failed, Spec};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::marker::PhantomData;

/// A visitor's answer to every value but an object: None, an array skipped whole.
macro_rules! none_but_for_objects {
    ($de:lifetime) => {
        fn visit_seq<A: SeqAccess<$de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
}

/// A member's value: the text the input gave, or a value made here.
enum Piece<'a> {
    Text(&'a RawValue),
    Made(Value),
}

/// An object's members in order, each key once: a repeated key keeps its first place and
/// takes the later value, as inserting into a parsed `Value`'s map does.
#[derive(Default)]
struct Members<'a> {
    list: Vec<(Cow<'a, str>, Piece<'a>)>,
    /// Where each key is, once there are enough members that a scan would cost more.
    index: Option<HashMap<Cow<'a, str>, usize>>,
}

/// Members past which a key is found through an index rather than a scan.
const SCANNED: usize = 16;

impl<'a> Members<'a> {
    fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.list.iter().position(|(k, _)| k == key),
        }
    }

    fn get(&self, key: &str) -> Option<&Piece<'a>> {
        self.position(key).map(|i| &self.list[i].1)
    }

    fn insert(&mut self, key: Cow<'a, str>, piece: Piece<'a>) {
        match self.position(&key) {
            Some(i) => self.list[i].1 = piece,
            None => {
                if self.index.is_none() && self.list.len() >= SCANNED {
                    self.index = Some(self.list.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect());
                }
                if let Some(index) = &mut self.index {
                    index.insert(key.clone(), self.list.len());
                }
                self.list.push((key, piece));
            }
        }
    }

    fn shift_remove(&mut self, key: &str) -> Option<Piece<'a>> {
        let i = self.position(key)?;
        let (_, piece) = self.list.remove(i);
        if let Some(index) = &mut self.index {
            index.clear();
            index.extend(self.list.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)));
        }
        Some(piece)
    }

    /// The object as JSON text.
    fn write(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.push(b'{');
        for (i, (key, piece)) in self.list.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, key)?;
            out.push(b':');
            piece.write(out)?;
        }
        out.push(b'}');
        Ok(())
    }
}

impl Piece<'_> {
    fn write(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        match self {
            Piece::Text(raw) => out.extend_from_slice(raw.get().as_bytes()),
            Piece::Made(v) => serde_json::to_writer(&mut *out, v)?,
        }
        Ok(())
    }
}

/// The JSON type name of a value given as text, for error messages (as [`super::kind`]).
fn kind_of(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => "a table",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

impl Spec {
    /// Applies the spec to the JSON text `input` and gives the output's text; the input
    /// past the document a `from` chain names is only checked to be JSON (a step's input
    /// holds the trigger and every earlier output).
    pub fn apply_text(&self, input: &str) -> Result<String, Failed> {
        let not_json = |e: serde_json::Error| Failed::Input(format!("input is not JSON: {e}"));
        // As text when every expression past `from` only picks: what a call computes is
        // read from values parsed once, in the pass that finds the document.
        let picks = self.select.as_ref().is_none_or(|s| s.fields().is_some())
            && self.fields.iter().all(|(_, e)| e.fields().is_some());
        let chain = match &self.from {
            None => Some(&[][..]),
            Some(from) => from.fields(),
        };
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        match chain {
            Some(chain) if picks => match pick::<&RawValue>(input, chain).map_err(not_json)? {
                Some(doc) => self.apply_on_text(doc, &mut out)?,
                None => self.write_value(Value::Null, &mut out)?,
            },
            Some(chain) => {
                let doc = pick::<Value>(input, chain).map_err(not_json)?;
                self.write_value(doc.unwrap_or(Value::Null), &mut out)?
            }
            None => {
                let input: Value = serde_json::from_str(input).map_err(not_json)?;
                let doc = match &self.from {
                    Some(from) => from.search(&input).map_err(Failed::Expression)?,
                    None => input,
                };
                self.write_value(doc, &mut out)?
            }
        }
        // SAFETY: `out` holds only `&str` slices of the input and serde_json's output,
        // each whole, so it is UTF-8 (serde_json's `to_string` makes its string alike).
        Ok(unsafe { String::from_utf8_unchecked(out) })
    }

    /// [`Spec::apply_to`] on a document parsed into values, its output written to `out`.
    fn write_value(&self, doc: Value, out: &mut Vec<u8>) -> Result<(), Failed> {
        let value = self.apply_to(doc).map_err(Failed::Expression)?;
        write_piece(&Piece::Made(value), out)
    }

    /// [`Spec::apply_to`] on a document given as text, writing the output's text to `out`.
    fn apply_on_text(&self, doc: &RawValue, out: &mut Vec<u8>) -> Result<(), Failed> {
        let failed = |e: serde_json::Error| Failed::Expression(format!("reading the document: {e}"));
        let reshaping = !self.rename.is_empty() || !self.set.is_empty() || !self.remove.is_empty();
        let mut object = if let Some(select) = &self.select {
            let chain = select.fields().unwrap_or_default();
            match pick::<&RawValue>(doc.get(), chain).map_err(failed)? {
                Some(raw) if reshaping => members(raw)
                    .map_err(failed)?
                    .ok_or_else(|| not_an_object(kind_of(raw.get())))?,
                Some(raw) => return write_piece(&Piece::Text(raw), out),
                None if reshaping => return Err(not_an_object("null")),
                None => return write_piece(&Piece::Made(Value::Null), out),
            }
        } else if !self.fields.is_empty() {
            let source = members(doc).map_err(failed)?;
            if self.keep && source.is_none() {
                return Err(Failed::Expression(format!(
                    "`keep` needs the document to be an object, but it is {}",
                    kind_of(doc.get())
                )));
            }
            let mut made = Members::default();
            for (name, expr) in &self.fields {
                let piece = field_at(expr.fields().unwrap_or_default(), source.as_ref())?;
                made.insert(Cow::Owned(name.clone()), piece);
            }
            // With `keep`, every expression saw the document as it came.
            match source {
                Some(mut kept) if self.keep => {
                    for (k, p) in made.list {
                        kept.insert(k, p);
                    }
                    kept
                }
                _ => made,
            }
        } else if reshaping {
            members(doc)
                .map_err(failed)?
                .ok_or_else(|| not_an_object(kind_of(doc.get())))?
        } else {
            return write_piece(&Piece::Text(doc), out);
        };
        for (old, new) in &self.rename {
            if let Some(p) = object.shift_remove(old) {
                object.insert(Cow::Owned(new.clone()), p);
            }
        }
        for (k, v) in &self.set {
            object.insert(Cow::Owned(k.clone()), Piece::Made(v.clone()));
        }
        for k in &self.remove {
            object.shift_remove(k);
        }
        object
            .write(out)
            .map_err(|e| Failed::Expression(format!("writing the output: {e}")))
    }
}

/// The text at a `fields` chain in the document (`source`: its members, when an object).
fn field_at<'a>(chain: &[String], source: Option<&Members<'a>>) -> Result<Piece<'a>, Failed> {
    let at = match (source, chain.split_first()) {
        (Some(members), Some((first, rest))) => match members.get(first) {
            Some(Piece::Text(raw)) => pick::<&RawValue>(raw.get(), rest)
                .map_err(|e| Failed::Expression(format!("reading the document: {e}")))?,
            Some(Piece::Made(_)) | None => None,
        },
        _ => None,
    };
    Ok(at.map_or(Piece::Made(Value::Null), Piece::Text))
}

fn not_an_object(kind: &str) -> Failed {
    Failed::Expression(format!(
        "`rename`, `set` and `remove` need an object, but the output is {kind}"
    ))
}

fn write_piece(piece: &Piece<'_>, out: &mut Vec<u8>) -> Result<(), Failed> {
    piece
        .write(out)
        .map_err(|e| Failed::Expression(format!("writing the output: {e}")))
}

/// The members of `raw` when it is an object, each value left as its text.
fn members(raw: &RawValue) -> Result<Option<Members<'_>>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let found = de.deserialize_any(ObjectVisitor)?;
    de.end()?;
    Ok(found)
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Option<Members<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Members::default();
        while let Some(key) = map.next_key_seed(Key)? {
            let value: &'de RawValue = map.next_value()?;
            members.insert(key, Piece::Text(value));
        }
        Ok(Some(members))
    }

    none_but_for_objects!('de);
}

/// An object's key, borrowed from the text unless it holds escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }
    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

/// The value at `fields` in the JSON text `input` (its text, with `T = &RawValue`), in one
/// pass over it, the values on the way only checked to be JSON; None (null) when a field
/// is missing or a value on the way is not an object, as [`super::follow`] gives (the
/// last of repeated keys wins); an error when `input` is not JSON.
fn pick<'a, T: Deserialize<'a>>(input: &'a str, fields: &[String]) -> Result<Option<T>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(input);
    let value = Path(fields, PhantomData).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Deserializes the value at a chain of field names, skipping everything else.
struct Path<'a, T>(&'a [String], PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Path<'_, T> {
    type Value = Option<T>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match self.0.split_first() {
            None => T::deserialize(d).map(Some),
            Some((first, rest)) => d.deserialize_any(Member {
                name: first,
                rest,
                found: PhantomData,
            }),
        }
    }
}

/// Finds member `name` of an object and follows `rest` of the chain in it; any other
/// value gives None (and is skipped whole).
struct Member<'a, T> {
    name: &'a str,
    rest: &'a [String],
    found: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Member<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(matches) = map.next_key_seed(KeyIs(self.name))? {
            if matches {
                found = map.next_value_seed(Path(self.rest, PhantomData))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    none_but_for_objects!('de);
}

/// Whether an object's key is `.0`, without making a string of it.
struct KeyIs<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}
