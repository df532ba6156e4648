//! `{{ trigger.… }}` / `{{ steps.<name>.… }}` placeholders in step config: parsed and
//! checked when a flow is loaded, resolved against the execution's data before each call.
//!
//! A string that is exactly one placeholder becomes the referenced JSON value (of any
//! type); a placeholder inside longer text is replaced by the value's text (strings
//! as-is, anything else as compact JSON).

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// Where a placeholder points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ref {
    /// `None` for `trigger`, `Some(step)` for `steps.<step>`.
    pub step: Option<String>,
    /// Keys (or array indexes) below the root.
    pub path: Vec<String>,
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            None => f.write_str("trigger")?,
            Some(s) => write!(f, "steps.{s}")?,
        }
        for p in &self.path {
            write!(f, ".{p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Part {
    Text(String),
    Ref(Ref),
}

/// A config value with its placeholders parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Template {
    /// Any JSON value without placeholders, shared by every execution that resolves it.
    Literal(Arc<Value>),
    /// A string containing at least one placeholder.
    Text(Vec<Part>),
    Array(Vec<Template>),
    Object(Vec<(String, Template)>),
}

/// A problem with a placeholder: the text that was wrong and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceholderError {
    /// The offending text as written (`{{ step.x }}`), to locate it in the file.
    pub text: String,
    pub message: String,
    /// A likely fix (the closest earlier step's name).
    pub help: Option<String>,
}

/// What a step may refer to: the steps before it.
pub trait Scope {
    fn is_earlier_step(&self, name: &str) -> bool;
    fn describe_earlier(&self) -> String;
    /// The earlier step whose name is closest to `name`, when one is close.
    fn closest_earlier(&self, _name: &str) -> Option<String> {
        None
    }
}

impl Template {
    /// Parses every string in `value`, reporting every bad placeholder.
    pub fn parse(value: &Value, scope: &dyn Scope, errors: &mut Vec<PlaceholderError>) -> Template {
        match value {
            Value::String(s) if s.contains("{{") => match parse_text(s, scope) {
                Ok(parts) => Template::Text(parts),
                Err(e) => {
                    errors.push(e);
                    Template::Literal(Arc::new(value.clone()))
                }
            },
            Value::Array(items) if items.iter().any(has_placeholder) => {
                Template::Array(items.iter().map(|v| Template::parse(v, scope, errors)).collect())
            }
            Value::Object(map) if map.values().any(has_placeholder) => Template::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Template::parse(v, scope, errors)))
                    .collect(),
            ),
            other => Template::Literal(Arc::new(other.clone())),
        }
    }

    /// The steps this template reads from.
    pub fn dependencies(&self, out: &mut BTreeSet<String>) {
        match self {
            Template::Literal(_) => {}
            Template::Text(parts) => {
                for p in parts {
                    if let Part::Ref(Ref { step: Some(s), .. }) = p {
                        out.insert(s.clone());
                    }
                }
            }
            Template::Array(items) => items.iter().for_each(|t| t.dependencies(out)),
            Template::Object(fields) => fields.iter().for_each(|(_, t)| t.dependencies(out)),
        }
    }

    /// The step whose whole output this template is (`"{{ steps.<name> }}"` alone).
    pub fn whole_output(&self) -> Option<&str> {
        match self {
            Template::Text(parts) => match parts.as_slice() {
                [Part::Ref(Ref { step: Some(s), path })] if path.is_empty() => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    /// [`Template::resolve`], a value without placeholders shared rather than copied.
    pub fn resolve_shared<O: Outputs + ?Sized>(&self, trigger: &Value, steps: &O) -> Result<Arc<Value>, String> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            _ => self.resolve(trigger, steps).map(Arc::new),
        }
    }

    /// The value with placeholders replaced from a step's input (the trigger payload and
    /// the outputs of earlier steps). Fails with a message naming the placeholder.
    pub fn resolve<O: Outputs + ?Sized>(&self, trigger: &Value, steps: &O) -> Result<Value, String> {
        Ok(match self {
            Template::Literal(v) => Value::clone(v),
            Template::Text(parts) => match parts.as_slice() {
                [Part::Ref(r)] => lookup(trigger, steps, r)?.clone(),
                parts => {
                    let mut out = String::new();
                    for p in parts {
                        match p {
                            Part::Text(t) => out.push_str(t),
                            Part::Ref(r) => match lookup(trigger, steps, r)? {
                                Value::String(s) => out.push_str(s),
                                other => out.push_str(&other.to_string()),
                            },
                        }
                    }
                    Value::String(out)
                }
            },
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.resolve(trigger, steps))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Object(fields) => {
                let mut map = Map::new();
                for (k, t) in fields {
                    map.insert(k.clone(), t.resolve(trigger, steps)?);
                }
                Value::Object(map)
            }
        })
    }
}

/// The outputs of earlier steps that placeholders read, by step name.
pub trait Outputs {
    fn output(&self, step: &str) -> Option<&Value>;
}

impl Outputs for Map<String, Value> {
    fn output(&self, step: &str) -> Option<&Value> {
        self.get(step)
    }
}

fn has_placeholder(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("{{"),
        Value::Array(items) => items.iter().any(has_placeholder),
        Value::Object(map) => map.values().any(has_placeholder),
        _ => false,
    }
}

fn lookup<'a, O: Outputs + ?Sized>(trigger: &'a Value, steps: &'a O, r: &Ref) -> Result<&'a Value, String> {
    let mut cur = match &r.step {
        None => Some(trigger),
        Some(s) => steps.output(s),
    }
    .ok_or_else(|| {
        format!(
            "placeholder {{{{ {r} }}}}: no value for {}",
            r.step
                .as_deref()
                .map_or("the trigger".to_string(), |s| format!("step \"{s}\""))
        )
    })?;
    let mut walked = match &r.step {
        None => "trigger".to_string(),
        Some(s) => format!("steps.{s}"),
    };
    for key in &r.path {
        let next = match cur {
            Value::Object(map) => map.get(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        cur = next.ok_or_else(|| {
            let what = match cur {
                Value::Object(_) => format!("{walked} has no key \"{key}\""),
                Value::Array(items) => format!("{walked} has {} items, no item \"{key}\"", items.len()),
                other => format!("{walked} is {}, not an object", json_kind(other)),
            };
            format!("placeholder {{{{ {r} }}}}: {what}")
        })?;
        walked.push('.');
        walked.push_str(key);
    }
    Ok(cur)
}

pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_text(s: &str, scope: &dyn Scope) -> Result<Vec<Part>, PlaceholderError> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(PlaceholderError {
                text: rest[start..].to_string(),
                message: "unclosed placeholder: `{{` without a matching `}}`".into(),
                help: Some("close it with `}}`".into()),
            });
        };
        let text = &rest[start..start + 2 + end + 2];
        parts.push(Part::Ref(parse_ref(after[..end].trim(), text, scope)?));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

fn parse_ref(expr: &str, text: &str, scope: &dyn Scope) -> Result<Ref, PlaceholderError> {
    let err = |message: String| PlaceholderError {
        text: text.to_string(),
        message,
        help: None,
    };
    if expr.is_empty() {
        return Err(err("empty placeholder: expected `trigger…` or `steps.<name>…`".into()));
    }
    let segments: Vec<&str> = expr.split('.').collect();
    if let Some(bad) = segments
        .iter()
        .find(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(err(format!(
            "placeholder {text}: invalid segment {bad:?}; segments are letters, digits, `_` and `-`, separated by dots"
        )));
    }
    match segments[0] {
        "trigger" => Ok(Ref {
            step: None,
            path: segments[1..].iter().map(|s| s.to_string()).collect(),
        }),
        "steps" => {
            let Some(name) = segments.get(1) else {
                return Err(err(format!(
                    "placeholder {text}: `steps` needs a step name (`steps.<name>`)"
                )));
            };
            if !scope.is_earlier_step(name) {
                return Err(PlaceholderError {
                    help: scope
                        .closest_earlier(name)
                        .map(|c| format!("did you mean `steps.{c}`?")),
                    ..err(format!(
                        "placeholder {text}: no earlier step named \"{name}\" ({})",
                        scope.describe_earlier()
                    ))
                });
            }
            Ok(Ref {
                step: Some(name.to_string()),
                path: segments[2..].iter().map(|s| s.to_string()).collect(),
            })
        }
        other => Err(PlaceholderError {
            help: super::diag::did_you_mean(other, ["trigger", "steps"]),
            ..err(format!(
                "placeholder {text}: unknown root \"{other}\"; expected `trigger` or `steps.<name>`"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Earlier(&'static [&'static str]);
    impl Scope for Earlier {
        fn is_earlier_step(&self, name: &str) -> bool {
            self.0.contains(&name)
        }
        fn describe_earlier(&self) -> String {
            format!("earlier steps: {}", self.0.join(", "))
        }
    }

    fn parse(v: Value) -> Result<Template, Vec<PlaceholderError>> {
        let mut errors = Vec::new();
        let t = Template::parse(&v, &Earlier(&["fetch"]), &mut errors);
        if errors.is_empty() { Ok(t) } else { Err(errors) }
    }

    /// Resolves against an input written as `{"trigger": …, "steps": {…}}`.
    fn resolve(t: &Template, input: &Value) -> Result<Value, String> {
        let steps = input
            .get("steps")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        t.resolve(&input["trigger"], &steps)
    }

    #[test]
    fn whole_string_placeholder_keeps_the_type() {
        let t = parse(json!({"id": "{{ trigger.body.id }}", "n": "items: {{steps.fetch.items}}", "k": 1})).unwrap();
        let input = json!({"trigger": {"body": {"id": 42}}, "steps": {"fetch": {"items": [1, "a"]}}});
        assert_eq!(
            resolve(&t, &input).unwrap(),
            json!({"id": 42, "n": "items: [1,\"a\"]", "k": 1})
        );
        let mut deps = BTreeSet::new();
        t.dependencies(&mut deps);
        assert_eq!(deps.into_iter().collect::<Vec<_>>(), ["fetch"]);
    }

    #[test]
    fn array_indexes_and_missing_paths() {
        let t = parse(json!("{{ trigger.items.1 }}")).unwrap();
        assert_eq!(
            resolve(&t, &json!({"trigger": {"items": ["a", "b"]}})).unwrap(),
            json!("b")
        );
        let err = resolve(&t, &json!({"trigger": {"items": ["a"]}})).unwrap_err();
        assert_eq!(
            err,
            "placeholder {{ trigger.items.1 }}: trigger.items has 1 items, no item \"1\""
        );
    }

    #[test]
    fn bad_placeholders_are_reported() {
        let errs = parse(json!([
            "{{ steps.later.x }}",
            "{{ env.HOME }}",
            "{{ trigger",
            "{{ trigger..x }}"
        ]))
        .unwrap_err();
        let msgs: Vec<_> = errs.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "placeholder {{ steps.later.x }}: no earlier step named \"later\" (earlier steps: fetch)",
                "placeholder {{ env.HOME }}: unknown root \"env\"; expected `trigger` or `steps.<name>`",
                "unclosed placeholder: `{{` without a matching `}}`",
                "placeholder {{ trigger..x }}: invalid segment \"\"; segments are letters, digits, `_` and `-`, separated by dots",
            ]
        );
    }
}
