//! What flowd's bundled connectors share: a reshaping spec (`from`, `select`, `fields`,
//! `keep`, `rename`, `set`, `remove`) evaluated with JMESPath, and the config problems it
//! reports as `(path, message)` pairs that each connector turns into its WIT type.

pub mod arena;
mod text;

use serde_json::{Map, Value};

/// A runtime holding the JMESPath functions `ast` calls and no others, `sum` kept
/// integral. An instance runs one call, so registering the whole built-in table (26
/// boxed functions with their signatures) for each would cost more than most expressions
/// take to evaluate. A name that is no built-in is left out, and fails when called, as
/// it does with the full table.
fn runtime_for(ast: &jmespath::ast::Ast) -> jmespath::Runtime {
    use jmespath::functions::*;
    let mut names = Vec::new();
    function_names(ast, &mut names);
    let mut runtime = jmespath::Runtime::new();
    for name in names {
        let f: Box<dyn Function> = match name {
            "abs" => Box::new(IntegralAbs(AbsFn::new())),
            "avg" => Box::new(SpecAvg(AvgFn::new())),
            "ceil" => Box::new(Whole(CeilFn::new())),
            "contains" => Box::new(ContainsFn::new()),
            "ends_with" => Box::new(EndsWithFn::new()),
            "floor" => Box::new(Whole(FloorFn::new())),
            "join" => Box::new(JoinFn::new()),
            "keys" => Box::new(KeysFn::new()),
            "length" => Box::new(LengthFn::new()),
            "map" => Box::new(MapFn::new()),
            "min" => Box::new(MinFn::new()),
            "max" => Box::new(MaxFn::new()),
            "max_by" => Box::new(MaxByFn::new()),
            "min_by" => Box::new(MinByFn::new()),
            "merge" => Box::new(MergeFn::new()),
            "not_null" => Box::new(NotNullFn::new()),
            "reverse" => Box::new(ReverseFn::new()),
            "sort" => Box::new(SortFn::new()),
            "sort_by" => Box::new(SortByFn::new()),
            "starts_with" => Box::new(StartsWithFn::new()),
            "sum" => Box::new(IntegralSum(SumFn::new())),
            "to_array" => Box::new(ToArrayFn::new()),
            "to_number" => Box::new(ToNumberFn::new()),
            "to_string" => Box::new(ToStringFn::new()),
            "type" => Box::new(TypeFn::new()),
            "values" => Box::new(ValuesFn::new()),
            _ => continue,
        };
        runtime.register_function(name, f);
    }
    runtime
}

/// The names of the functions `ast` calls, each once.
fn function_names<'a>(ast: &'a jmespath::ast::Ast, out: &mut Vec<&'a str>) {
    use jmespath::ast::Ast::*;
    match ast {
        Function { name, args, .. } => {
            if !out.contains(&name.as_str()) {
                out.push(name);
            }
            args.iter().for_each(|a| function_names(a, out));
        }
        Comparison { lhs, rhs, .. }
        | Projection { lhs, rhs, .. }
        | And { lhs, rhs, .. }
        | Or { lhs, rhs, .. }
        | Subexpr { lhs, rhs, .. } => {
            function_names(lhs, out);
            function_names(rhs, out);
        }
        Condition { predicate, then, .. } => {
            function_names(predicate, out);
            function_names(then, out);
        }
        Expref { ast: node, .. } | Flatten { node, .. } | Not { node, .. } | ObjectValues { node, .. } => {
            function_names(node, out)
        }
        MultiList { elements, .. } => elements.iter().for_each(|a| function_names(a, out)),
        MultiHash { elements, .. } => elements.iter().for_each(|kv| function_names(&kv.value, out)),
        Identity { .. } | Field { .. } | Index { .. } | Literal { .. } | Slice { .. } => {}
    }
}

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

/// The integer a JMESPath argument holds, when it holds one.
fn integer_arg(args: &[jmespath::Rcvar]) -> Option<&serde_json::Number> {
    match args {
        [one] => match &**one {
            jmespath::Variable::Number(n) if n.is_i64() || n.is_u64() => Some(n),
            _ => None,
        },
        _ => None,
    }
}

/// `abs()` that keeps an integer an integer (JMESPath's own works in floating point:
/// `abs(-5)` would be `5.0`).
struct IntegralAbs(jmespath::functions::AbsFn);

impl jmespath::functions::Function for IntegralAbs {
    fn evaluate(&self, args: &[jmespath::Rcvar], ctx: &mut jmespath::Context<'_>) -> jmespath::SearchResult {
        let abs = integer_arg(args).and_then(|n| match n.as_i64() {
            // i64::MIN's magnitude is a u64.
            Some(i) => Some(serde_json::Number::from(i.unsigned_abs())),
            None => n.as_u64().map(serde_json::Number::from),
        });
        match abs {
            Some(n) => Ok(jmespath::Rcvar::new(jmespath::Variable::Number(n))),
            None => self.0.evaluate(args, ctx),
        }
    }
}

/// `floor()` and `ceil()` that give an integer, as the JMESPath specification describes
/// them ("the next lowest integer value"): the value itself for an integer, else the
/// built-in's result as an integer where 64 bits hold it (JMESPath's own gives `1.0`).
struct Whole<F>(F);

impl<F: jmespath::functions::Function> jmespath::functions::Function for Whole<F> {
    fn evaluate(&self, args: &[jmespath::Rcvar], ctx: &mut jmespath::Context<'_>) -> jmespath::SearchResult {
        if integer_arg(args).is_some() {
            return Ok(args[0].clone());
        }
        let result = self.0.evaluate(args, ctx)?;
        let whole = match &*result {
            // Within ±2^63 the value converts exactly (it has no fraction); -0.0 is 0.
            jmespath::Variable::Number(n) => n.as_f64().filter(|f| (i64::MIN as f64..-(i64::MIN as f64)).contains(f)),
            _ => None,
        };
        Ok(match whole {
            Some(f) => jmespath::Rcvar::new(jmespath::Variable::Number((f as i64).into())),
            None => result,
        })
    }
}

/// `avg()` of an empty array is null, as the JMESPath specification says (the crate's
/// divides by zero, and fails on the result).
struct SpecAvg(jmespath::functions::AvgFn);

impl jmespath::functions::Function for SpecAvg {
    fn evaluate(&self, args: &[jmespath::Rcvar], ctx: &mut jmespath::Context<'_>) -> jmespath::SearchResult {
        if args.len() == 1 && args[0].as_array().is_some_and(|a| a.is_empty()) {
            return Ok(jmespath::Rcvar::new(jmespath::Variable::Null));
        }
        self.0.evaluate(args, ctx)
    }
}

/// What JMESPath's `sum` and `avg` say of a result that is not finite (filed as parse
/// errors); their arguments are checked before, so this is all these can mean.
const NOT_FINITE: [&str; 2] = ["Expected to be a valid number", "Expected to be a valid f64"];

/// A problem in a config: where (dotted keys) and what.
pub type Problem = (String, String);

/// A JMESPath expression with the text it came from: a plain chain of field names
/// (`a.b.c`), and `length(a.b)` and `sum(a.b[].c)` over one, are evaluated on the JSON
/// value directly, with the same result (a missing field or a non-object gives null),
/// and never compiled (an instance runs one call, so compiling, and setting up
/// JMESPath's function table and a converted copy of the document, would be paid on
/// every call); anything else is compiled.
pub struct Expr {
    text: String,
    form: Form,
}

enum Form {
    Fields(Vec<String>),
    /// `length(chain)`, `sum(chain[].chain)`: a value where the direct reading gives one;
    /// anything else (a type JMESPath refuses, a sum that is no finite number) is left to
    /// JMESPath itself, compiled then, so errors read exactly as its own.
    Call(Call),
    Compiled(Compiled),
}

enum Call {
    Length(Vec<String>),
    Sum { array: Vec<String>, item: Vec<String> },
}

impl Call {
    /// `length(a.b)` or `sum(a.b[].c)`, written without spaces.
    fn parse(text: &str) -> Option<Call> {
        if let Some(arg) = text.strip_prefix("length(").and_then(|t| t.strip_suffix(')')) {
            return field_chain(arg).map(Call::Length);
        }
        let arg = text.strip_prefix("sum(")?.strip_suffix(')')?;
        let (array, item) = arg.split_once("[].")?;
        Some(Call::Sum {
            array: field_chain(array)?,
            item: field_chain(item)?,
        })
    }

    /// The result JMESPath gives, or None where it is left to JMESPath.
    fn eval(&self, doc: &Value) -> Option<Value> {
        self.eval_on(follow(doc, self.argument()))
    }

    /// The chain of field names the call reads first.
    fn argument(&self) -> &[String] {
        match self {
            Call::Length(fields) => fields,
            Call::Sum { array, .. } => array,
        }
    }

    /// [`Call::eval`] given the value at [`Call::argument`].
    fn eval_on(&self, arg: &Value) -> Option<Value> {
        match self {
            Call::Length(_) => match arg {
                Value::String(s) => Some(s.chars().count().into()),
                Value::Array(a) => Some(a.len().into()),
                Value::Object(o) => Some(o.len().into()),
                _ => None,
            },
            Call::Sum { item, .. } => {
                // `a[]` flattens one level of nested arrays; `.c` drops what gives null.
                let Value::Array(items) = arg else { return None };
                let mut numbers = Vec::new();
                for element in items {
                    let nested = match element {
                        Value::Array(inner) => inner.as_slice(),
                        one => std::slice::from_ref(one),
                    };
                    for e in nested {
                        match follow(e, item) {
                            Value::Null => {}
                            Value::Number(n) => numbers.push(n),
                            _ => return None,
                        }
                    }
                }
                // As `IntegralSum`: integral when every item is and the total fits.
                if let Some(total) = numbers
                    .iter()
                    .try_fold(0i64, |total, n| n.as_i64().and_then(|i| total.checked_add(i)))
                {
                    return Some(total.into());
                }
                let total = numbers.iter().fold(0.0, |acc, n| acc + n.as_f64().unwrap_or(0.0));
                serde_json::Number::from_f64(total).map(Value::Number)
            }
        }
    }
}

/// A parsed expression with the functions it calls.
struct Compiled {
    ast: jmespath::ast::Ast,
    runtime: jmespath::Runtime,
}

/// The field names of `a.b.c` when `text` is nothing more than that.
fn field_chain(text: &str) -> Option<Vec<String>> {
    let plain = |seg: &str| {
        let mut chars = seg.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    text.split('.')
        .all(plain)
        .then(|| text.split('.').map(str::to_string).collect())
}

/// The value at `fields` in `doc`: null when a field is missing or a value on the way is
/// not an object, as JMESPath gives.
fn follow<'v>(doc: &'v Value, fields: &[String]) -> &'v Value {
    static NULL: Value = Value::Null;
    let mut at = doc;
    for f in fields {
        match at.get(f.as_str()) {
            Some(v) => at = v,
            None => return &NULL,
        }
    }
    at
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
        Expr::compile_at(|| path.to_string(), text, problems)
    }

    /// [`Expr::compile`], the path written out only for a problem.
    pub fn compile_at(path: impl FnOnce() -> String, text: &str, problems: &mut Vec<Problem>) -> Option<Expr> {
        if let Some(fields) = field_chain(text) {
            return Some(Expr {
                text: text.to_string(),
                form: Form::Fields(fields),
            });
        }
        if let Some(call) = Call::parse(text) {
            return Some(Expr {
                text: text.to_string(),
                form: Form::Call(call),
            });
        }
        match jmespath::parse(text) {
            Ok(ast) => Some(Expr {
                text: text.to_string(),
                form: Form::Compiled(Compiled {
                    runtime: runtime_for(&ast),
                    ast,
                }),
            }),
            Err(err) => {
                let reason = err.reason.to_string();
                problems.push((
                    path(),
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
        let compiled;
        let compiled = match &self.form {
            Form::Fields(fields) => return Ok(follow(doc.value, fields).clone()),
            Form::Call(call) => {
                if let Some(v) = call.eval(doc.value) {
                    return Ok(v);
                }
                compiled = self.compiled()?;
                &compiled
            }
            Form::Compiled(c) => c,
        };
        let data = doc.converted().map_err(|e| self.failed(e))?;
        let result = self.interpret(compiled, &data)?;
        serde_json::to_value(&*result).map_err(|e| format!("evaluating {:?}: {e}", self.text))
    }

    /// The expression compiled, for a form evaluated directly that leaves a case to JMESPath.
    fn compiled(&self) -> Result<Compiled, String> {
        let ast = jmespath::parse(&self.text).map_err(|e| self.failed(e))?;
        Ok(Compiled {
            runtime: runtime_for(&ast),
            ast,
        })
    }

    fn interpret(&self, c: &Compiled, data: &jmespath::Rcvar) -> Result<jmespath::Rcvar, String> {
        jmespath::interpret(data, &c.ast, &mut jmespath::Context::new(&self.text, &c.runtime))
            .map_err(|e| self.failed(e))
    }

    fn failed(&self, e: jmespath::JmespathError) -> String {
        match &e.reason {
            // JMESPath's words (filed as a parse error) for a result no double holds: a sum
            // or an average past the largest one.
            jmespath::ErrorReason::Parse(m) if NOT_FINITE.contains(&m.as_str()) => format!(
                "evaluating {:?}: the result is past the largest number a double holds (±1.8e308)",
                self.text
            ),
            reason => format!("evaluating {:?}: {reason}", self.text),
        }
    }

    /// JMESPath truthiness: false, null, empty strings, arrays and objects are false.
    pub fn truthy(&self, doc: &Value) -> Result<bool, String> {
        let compiled;
        let compiled = match &self.form {
            Form::Fields(fields) => return Ok(truthy(follow(doc, fields))),
            Form::Call(call) => {
                if let Some(v) = call.eval(doc) {
                    return Ok(truthy(&v));
                }
                compiled = self.compiled()?;
                &compiled
            }
            Form::Compiled(c) => c,
        };
        let data = jmespath::Rcvar::new(jmespath::Variable::try_from(doc).map_err(|e| self.failed(e))?);
        let result = self.interpret(compiled, &data)?;
        Ok(result.is_truthy())
    }

    /// The field names of a plain chain, when it is one.
    fn fields(&self) -> Option<&[String]> {
        match &self.form {
            Form::Fields(f) => Some(f),
            Form::Call(_) | Form::Compiled(_) => None,
        }
    }
}

/// JMESPath truthiness.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(true) | Value::Number(_) => true,
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
                    let path = || format!("fields.{name}");
                    match value {
                        Value::String(text) => {
                            if let Some(e) = Expr::compile_at(path, text, problems) {
                                spec.fields.push((name.clone(), e));
                            }
                        }
                        other => problems.push((
                            path(),
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

    fn apply_to(&self, doc: Value) -> Result<Value, String> {
        let mut out = if let Some(select) = &self.select {
            select.search(&doc)?
        } else if !self.fields.is_empty() {
            if self.keep && !doc.is_object() {
                return Err(format!(
                    "`keep` needs the document to be an object, but it is {}",
                    kind(&doc)
                ));
            }
            let mut converted = Doc::new(&doc);
            let mut map = Map::new();
            for (name, expr) in &self.fields {
                map.insert(name.clone(), expr.search_in(&mut converted)?);
            }
            // With `keep`, every expression saw the document as it came; only then is it
            // taken (not copied) to hold the new fields, in their order.
            match doc {
                Value::Object(mut kept) if self.keep => {
                    kept.extend(map);
                    Value::Object(kept)
                }
                _ => Value::Object(map),
            }
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
