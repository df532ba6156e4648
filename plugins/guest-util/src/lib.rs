//! What flowd's bundled connectors share: a reshaping spec (`from`, `select`, `fields`,
//! `keep`, `rename`, `set`, `remove`) evaluated with JMESPath, and the config problems it
//! reports as `(path, message)` pairs that each connector turns into its WIT type.

use serde_json::{Map, Value};

/// JMESPath's functions, with `sum` kept integral: a sum of integers is an integer.
static RUNTIME: std::sync::LazyLock<jmespath::Runtime> = std::sync::LazyLock::new(|| {
    let mut runtime = jmespath::Runtime::new();
    runtime.register_builtin_functions();
    runtime.register_function("sum", Box::new(IntegralSum(jmespath::functions::SumFn::new())));
    runtime
});

/// `sum()` that returns an integer when every item is one and the total fits in 64 bits
/// (JMESPath's own adds as floating point: `sum([1, 2])` would be `3.0`).
struct IntegralSum(jmespath::functions::SumFn);

impl jmespath::functions::Function for IntegralSum {
    fn evaluate(&self, args: &[jmespath::Rcvar], ctx: &mut jmespath::Context<'_>) -> jmespath::SearchResult {
        // The built-in checks the argument and gives the floating-point sum.
        let float = self.0.evaluate(args, ctx)?;
        let integral = args[0].as_array().and_then(|items| {
            items.iter().try_fold(0i64, |total, item| match &**item {
                jmespath::Variable::Number(n) => n.as_i64().and_then(|i| total.checked_add(i)),
                _ => None,
            })
        });
        Ok(match integral {
            Some(total) => jmespath::Rcvar::new(jmespath::Variable::Number(total.into())),
            None => float,
        })
    }
}

/// A problem in a config: where (dotted keys) and what.
pub type Problem = (String, String);

/// A compiled JMESPath expression with the text it came from.
pub struct Expr {
    text: String,
    compiled: jmespath::Expression<'static>,
    /// Set when the expression is a plain chain of field names (`a.b.c`): it is then
    /// evaluated on the JSON value directly, without converting the document for
    /// JMESPath, with the same result (a missing field or a non-object gives null).
    fields: Option<Vec<String>>,
}

/// The field names of `a.b.c` when `text` is nothing more than that.
fn field_chain(text: &str) -> Option<Vec<String>> {
    let plain = |seg: &str| {
        let mut chars = seg.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let segs: Vec<&str> = text.split('.').collect();
    segs.iter()
        .all(|s| plain(s))
        .then(|| segs.into_iter().map(str::to_string).collect())
}

/// A document converted for JMESPath at most once, however many expressions need it.
pub struct Doc<'a> {
    value: &'a Value,
    converted: Option<jmespath::Rcvar>,
}

impl<'a> Doc<'a> {
    pub fn new(value: &'a Value) -> Doc<'a> {
        Doc { value, converted: None }
    }

    fn converted(&mut self) -> Result<jmespath::Rcvar, jmespath::JmespathError> {
        if let Some(v) = &self.converted {
            return Ok(v.clone());
        }
        let v = jmespath::Rcvar::new(jmespath::Variable::try_from(self.value)?);
        self.converted = Some(v.clone());
        Ok(v)
    }
}

impl Expr {
    pub fn compile(path: &str, text: &str, problems: &mut Vec<Problem>) -> Option<Expr> {
        match RUNTIME.compile(text) {
            Ok(compiled) => Some(Expr {
                text: text.to_string(),
                compiled,
                fields: field_chain(text),
            }),
            Err(err) => {
                let reason = err.reason.to_string();
                problems.push((
                    path.to_string(),
                    format!(
                        "invalid JMESPath expression {text:?}: {reason} (at offset {})",
                        err.offset
                    ),
                ));
                None
            }
        }
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn search(&self, doc: &Value) -> Result<Value, String> {
        self.search_in(&mut Doc::new(doc))
    }

    /// Evaluates over `doc`, converting it for JMESPath only if this expression needs it.
    pub fn search_in(&self, doc: &mut Doc) -> Result<Value, String> {
        if let Some(fields) = &self.fields {
            let mut at = doc.value;
            for f in fields {
                match at.get(f.as_str()) {
                    Some(v) => at = v,
                    None => return Ok(Value::Null),
                }
            }
            return Ok(at.clone());
        }
        let fail = |e: jmespath::JmespathError| format!("evaluating {:?}: {}", self.text, e.reason);
        let result = self.compiled.search(doc.converted().map_err(fail)?).map_err(fail)?;
        serde_json::to_value(&*result).map_err(|e| format!("evaluating {:?}: {e}", self.text))
    }

    /// JMESPath truthiness: false, null, empty strings, arrays and objects are false.
    pub fn truthy(&self, doc: &Value) -> Result<bool, String> {
        let result = self
            .compiled
            .search(doc)
            .map_err(|e| format!("evaluating {:?}: {}", self.text, e.reason))?;
        Ok(result.is_truthy())
    }
}

/// Parses config text into an object, or reports why not.
pub fn config_object(config: &str) -> Result<Map<String, Value>, Vec<Problem>> {
    match serde_json::from_str::<Value>(config) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(vec![(
            String::new(),
            format!("config must be a table, not {}", kind(&other)),
        )]),
        Err(e) => Err(vec![(String::new(), format!("config is not JSON: {e}"))]),
    }
}

/// The JSON type name of a value, for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// Reports keys that are not in `known`.
pub fn unknown_keys(map: &Map<String, Value>, known: &[&str], problems: &mut Vec<Problem>) {
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            problems.push((
                key.clone(),
                format!("unknown key; expected one of: {}", known.join(", ")),
            ));
        }
    }
}

/// Reshapes a JSON document. Applied in this order: `from` picks the document, then
/// `select` (one expression) or `fields` (one expression per output key, over `keep`'s
/// copy of the document when set), then `rename`, `set` (literal values) and `remove`.
#[derive(Default)]
pub struct Spec {
    from: Option<Expr>,
    select: Option<Expr>,
    fields: Vec<(String, Expr)>,
    keep: bool,
    rename: Vec<(String, String)>,
    set: Vec<(String, Value)>,
    remove: Vec<String>,
}

/// Why [`Spec::apply_text`] gave no output.
pub enum Failed {
    /// The input is not JSON.
    Input(String),
    /// An expression could not be evaluated, or the document does not fit the spec.
    Expression(String),
}

pub const SPEC_KEYS: &[&str] = &["from", "select", "fields", "keep", "rename", "set", "remove"];

impl Spec {
    /// Reads the spec's keys out of `map`, reporting every problem found.
    pub fn parse(map: &Map<String, Value>, problems: &mut Vec<Problem>) -> Spec {
        let mut spec = Spec::default();
        let expr = |key: &str, problems: &mut Vec<Problem>| match map.get(key) {
            None => None,
            Some(Value::String(text)) => Expr::compile(key, text, problems),
            Some(other) => {
                problems.push((
                    key.into(),
                    format!("expected a JMESPath expression (a string), found {}", kind(other)),
                ));
                None
            }
        };
        spec.from = expr("from", problems);
        spec.select = expr("select", problems);
        match map.get("fields") {
            None => {}
            Some(Value::Object(fields)) => {
                for (name, value) in fields {
                    let path = format!("fields.{name}");
                    match value {
                        Value::String(text) => {
                            if let Some(e) = Expr::compile(&path, text, problems) {
                                spec.fields.push((name.clone(), e));
                            }
                        }
                        other => problems.push((
                            path,
                            format!("expected a JMESPath expression (a string), found {}", kind(other)),
                        )),
                    }
                }
            }
            Some(other) => problems.push((
                "fields".into(),
                format!("expected a table of key = \"expression\", found {}", kind(other)),
            )),
        }
        if spec.select.is_some() && map.contains_key("fields") {
            problems.push((
                "select".into(),
                "`select` and `fields` cannot both be set: `select` produces the whole output".into(),
            ));
        }
        match map.get("keep") {
            None => {}
            Some(Value::Bool(b)) => spec.keep = *b,
            Some(other) => problems.push(("keep".into(), format!("expected a boolean, found {}", kind(other)))),
        }
        match map.get("rename") {
            None => {}
            Some(Value::Object(pairs)) => {
                for (old, new) in pairs {
                    match new {
                        Value::String(new) if !new.is_empty() => spec.rename.push((old.clone(), new.clone())),
                        other => problems.push((
                            format!("rename.{old}"),
                            format!("expected the new key name (a non-empty string), found {}", kind(other)),
                        )),
                    }
                }
            }
            Some(other) => problems.push((
                "rename".into(),
                format!("expected a table of old = \"new\", found {}", kind(other)),
            )),
        }
        match map.get("set") {
            None => {}
            Some(Value::Object(pairs)) => spec.set = pairs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(other) => problems.push((
                "set".into(),
                format!("expected a table of key = value, found {}", kind(other)),
            )),
        }
        match map.get("remove") {
            None => {}
            Some(Value::Array(keys)) => {
                for (i, key) in keys.iter().enumerate() {
                    match key {
                        Value::String(k) => spec.remove.push(k.clone()),
                        other => problems.push((
                            format!("remove.{i}"),
                            format!("expected a key name (a string), found {}", kind(other)),
                        )),
                    }
                }
            }
            Some(other) => problems.push((
                "remove".into(),
                format!("expected an array of key names, found {}", kind(other)),
            )),
        }
        spec
    }

    /// Applies the spec to `input`.
    pub fn apply(&self, input: &Value) -> Result<Value, String> {
        let doc = match &self.from {
            Some(from) => from.search(input)?,
            None => input.clone(),
        };
        self.apply_to(doc)
    }

    /// Applies the spec to the JSON text `input`. When `from` is a plain chain of field
    /// names, only the document it names is parsed into values; the rest is only checked
    /// to be JSON (a step's input holds the trigger and every earlier output).
    pub fn apply_text(&self, input: &str) -> Result<Value, Failed> {
        let not_json = |e: serde_json::Error| Failed::Input(format!("input is not JSON: {e}"));
        let doc = match self.from.as_ref().and_then(|f| f.fields.as_deref()) {
            Some(fields) => {
                let raw: &serde_json::value::RawValue = serde_json::from_str(input).map_err(not_json)?;
                pick(raw, fields).map_err(not_json)?
            }
            None => {
                let input: Value = serde_json::from_str(input).map_err(not_json)?;
                match &self.from {
                    Some(from) => from.search(&input).map_err(Failed::Expression)?,
                    None => input,
                }
            }
        };
        self.apply_to(doc).map_err(Failed::Expression)
    }

    fn apply_to(&self, doc: Value) -> Result<Value, String> {
        let mut out = if let Some(select) = &self.select {
            select.search(&doc)?
        } else if !self.fields.is_empty() {
            let mut map = if self.keep {
                match &doc {
                    Value::Object(m) => m.clone(),
                    other => {
                        return Err(format!(
                            "`keep` needs the document to be an object, but it is {}",
                            kind(other)
                        ));
                    }
                }
            } else {
                Map::new()
            };
            let mut converted = Doc::new(&doc);
            for (name, expr) in &self.fields {
                map.insert(name.clone(), expr.search_in(&mut converted)?);
            }
            Value::Object(map)
        } else {
            doc
        };
        if !self.rename.is_empty() || !self.set.is_empty() || !self.remove.is_empty() {
            let Value::Object(map) = &mut out else {
                return Err(format!(
                    "`rename`, `set` and `remove` need an object, but the output is {}",
                    kind(&out)
                ));
            };
            for (old, new) in &self.rename {
                if let Some(v) = map.shift_remove(old) {
                    map.insert(new.clone(), v);
                }
            }
            for (k, v) in &self.set {
                map.insert(k.clone(), v.clone());
            }
            for k in &self.remove {
                map.shift_remove(k);
            }
        }
        Ok(out)
    }
}

/// The value at `fields` in the (valid) JSON text `raw`, parsing only the objects on the
/// way and the value found: null when a field is missing or a value on the way is not an
/// object, as [`Expr::search`] gives for a field chain (the last of repeated keys wins).
fn pick(raw: &serde_json::value::RawValue, fields: &[String]) -> Result<Value, serde_json::Error> {
    use serde_json::value::RawValue;
    let mut at = raw;
    for f in fields {
        if !at.get().trim_start().starts_with('{') {
            return Ok(Value::Null);
        }
        let members: std::collections::BTreeMap<String, &RawValue> = serde_json::from_str(at.get())?;
        match members.get(f.as_str()) {
            Some(v) => at = v,
            None => return Ok(Value::Null),
        }
    }
    serde_json::from_str(at.get())
}
