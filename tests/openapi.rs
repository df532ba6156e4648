//! `docs/openapi.json` against the code it documents. It proves that (1) the document's
//! paths and methods are exactly the route table (`flowd::daemon::admin::routes::ROUTES`)
//! and each operation's `x-flowd-role` and security are the route's `Access`; (2) the
//! document is OpenAPI 3.0.3 that the `openapiv3` model reads without leaving anything
//! out (its re-serialization is the document again, so no key is unknown anywhere), is
//! its own pretty-printing, every `$ref` resolves and every `{capture}` of a path is
//! declared as an `in: path` parameter; and (3) over the real daemon, a viewer gets the
//! document byte for byte at `GET /v1/openapi.json`; every documented GET route answers
//! 200 in a documented content type (`/v1/logs/follow` is skipped: it streams forever),
//! its JSON fitting the documented schema with no undocumented field; each route's
//! documented query parameters are exactly the ones its handler accepts (as its 400 for
//! an unknown one lists them); every documented path answers 405 to an undocumented
//! method with `Allow` naming the documented ones; and every 401 carries a documented
//! `WWW-Authenticate` challenge. (4) The trigger listener's answers, which are not paths
//! of this API, fit the top-level `x-flowd-webhooks` (statuses, bodies, required headers,
//! the `x-flowd-job-id` of a held-open answer).

mod support;

use flowd::daemon::admin::routes::{Access, ROUTES};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use support::admin::{BY_HAND, NIGHTLY, OPERATOR, TOKENS, VIEWER, route_path, start};
use support::{Daemon, Setup};

const DOCUMENT: &str = include_str!("../docs/openapi.json");

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON")
}

/// Every operation of the document: (METHOD, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if METHODS.contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

fn role(access: Access) -> &'static str {
    match access {
        Access::Public => "public",
        Access::Viewer => "viewer",
        Access::Operator => "operator",
    }
}

/// The target of a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// `v`, or what it refers to when it is a `$ref`.
fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => resolve(doc, r).unwrap_or_else(|| panic!("unresolved $ref {r}")),
        None => v,
    }
}

/// The operation's parameters, references resolved.
fn parameters<'a>(doc: &'a Value, op: &'a Value) -> Vec<&'a Value> {
    op["parameters"]
        .as_array()
        .map(|ps| ps.iter().map(|p| deref(doc, p)).collect())
        .unwrap_or_default()
}

fn query_names(doc: &Value, op: &Value) -> BTreeSet<String> {
    parameters(doc, op)
        .into_iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().expect("a parameter name").to_string())
        .collect()
}

fn captures(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_document_lists_exactly_the_route_table_with_each_routes_role() {
    let doc = document();
    let documented: BTreeSet<(String, String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, op)| {
            let role = op["x-flowd-role"]
                .as_str()
                .unwrap_or_else(|| panic!("{m} {p} has no x-flowd-role"));
            (m, p, role.to_string())
        })
        .collect();
    let table: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string(), role(r.access).to_string()))
        .collect();
    assert_eq!(ROUTES.len(), table.len(), "the route table has a route twice");
    let missing: Vec<_> = table.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes not documented (or with another role): {missing:?}\ndocumented but not routes: {extra:?}"
    );

    // Security follows the role: bearer everywhere, /healthz exempt.
    assert_eq!(doc["security"], serde_json::json!([{ "bearer": [] }]));
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!((&bearer["type"], &bearer["scheme"]), (&"http".into(), &"bearer".into()));
    for r in ROUTES {
        let op = &doc["paths"][r.path][r.method.to_lowercase()];
        let at = format!("{} {}", r.method, r.path);
        let responses = op["responses"].as_object().expect("responses");
        match r.access {
            Access::Public => {
                assert_eq!(op["security"], serde_json::json!([]), "{at}: a public route is exempt");
                // Signing in may be refused a token; nothing else public answers 401.
                assert_eq!(
                    responses.contains_key("401"),
                    r.endpoint == flowd::daemon::admin::routes::Endpoint::SignIn,
                    "{at}"
                );
            }
            Access::Viewer | Access::Operator => {
                assert!(op.get("security").is_none(), "{at} takes the global bearer security");
                assert!(responses.contains_key("401"), "{at} documents its 401");
            }
        }
        assert_eq!(
            responses.contains_key("403"),
            r.access == Access::Operator,
            "{at}: a 403 exactly when an operator token is needed"
        );
        if !captures(r.path).is_empty() {
            assert!(responses.contains_key("404"), "{at} documents its 404");
        }
        // Every handler refuses unknown query parameters.
        assert!(responses.contains_key("400"), "{at} documents its 400");
    }
}

/// Where `a` and `b` first differ, as a JSON pointer with both sides; `None` when equal.
fn difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => difference(v, w, &here),
                    (v, w) => Some(format!("{here}: {v:?} / {w:?}")),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| difference(v, w, &format!("{at}/{i}"))),
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        _ if a == b => None,
        _ => Some(format!("{at}: {a} / {b}")),
    }
}

fn walk<'a>(v: &'a Value, at: &str, visit: &mut impl FnMut(&str, &'a Map<String, Value>)) {
    match v {
        Value::Object(m) => {
            visit(at, m);
            for (k, w) in m {
                walk(w, &format!("{at}/{k}"), visit);
            }
        }
        Value::Array(a) => {
            for (i, w) in a.iter().enumerate() {
                walk(w, &format!("{at}/{i}"), visit);
            }
        }
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_with_nothing_unknown_and_every_reference_resolved() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.0.3");
    let pretty = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    assert!(
        pretty == DOCUMENT,
        "docs/openapi.json is not its own pretty-printing (2-space indent, a final newline)"
    );

    // The model reads it; written out again it is the document: nothing was dropped as
    // unknown (the model ignores unknown keys) and nothing is missing.
    let model: openapiv3::OpenAPI = serde_json::from_str(DOCUMENT).expect("docs/openapi.json is an OpenAPI 3 document");
    let again = serde_json::to_value(&model).unwrap();
    if let Some(d) = difference(&doc, &again, "") {
        panic!("the OpenAPI model does not read the document as written (document / model): {d}");
    }
    let top: BTreeSet<&str> = doc.as_object().unwrap().keys().map(String::as_str).collect();
    let known: BTreeSet<&str> = [
        "openapi",
        "info",
        "servers",
        "paths",
        "components",
        "security",
        "tags",
        "externalDocs",
        // The trigger listener's answers: not paths of this API (see below).
        "x-flowd-webhooks",
    ]
    .into();
    assert!(top.is_subset(&known), "top-level keys beyond OpenAPI 3.0's: {top:?}");
    assert_eq!(model.paths.paths.len(), doc["paths"].as_object().unwrap().len());

    // Every $ref points at something in the document.
    let mut refs = 0;
    walk(&doc, "", &mut |at, m| {
        if let Some(r) = m.get("$ref") {
            let r = r.as_str().unwrap_or_else(|| panic!("{at}: $ref is not a string"));
            assert!(r.starts_with("#/components/"), "{at}: {r} is not a local component");
            assert!(resolve(&doc, r).is_some(), "{at}: $ref {r} resolves to nothing");
            refs += 1;
        }
    });
    assert!(refs > 50, "only {refs} references: the walk missed the document");

    // Times are date-times (RFC 3339).
    walk(&doc["components"]["schemas"], "#/components/schemas", &mut |at, m| {
        if let Some(Value::Object(props)) = m.get("properties") {
            for (name, p) in props {
                if name.ends_with("_at") || name == "time" || name == "last_fire" {
                    assert_eq!(p["format"], "date-time", "{at}/properties/{name}");
                }
            }
        }
    });

    // Each path's captures are its `in: path` parameters, required; nothing is declared
    // twice; every operation is named and described.
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let at = format!("{method} {path}");
        let ps = parameters(&doc, op);
        let declared: BTreeSet<String> = ps
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(
                    p["required"], true,
                    "{at}: path parameter {} must be required",
                    p["name"]
                );
                p["name"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(declared, captures(&path), "{at}: path parameters");
        let mut seen = BTreeSet::new();
        for p in &ps {
            assert!(
                seen.insert((p["in"].to_string(), p["name"].to_string())),
                "{at}: {} declared twice",
                p["name"]
            );
            assert!(p["schema"].is_object(), "{at}: {} has no schema", p["name"]);
            assert!(p["description"].is_string(), "{at}: {} is not described", p["name"]);
        }
        for key in ["summary", "description", "operationId"] {
            assert!(op[key].is_string(), "{at} has no {key}");
        }
        assert!(
            ids.insert(op["operationId"].as_str().unwrap()),
            "{at}: operationId twice"
        );
        for (code, r) in op["responses"].as_object().unwrap() {
            assert!(deref(&doc, r)["description"].is_string(), "{at} {code}");
        }
    }
}

/// Every way `value` breaks `schema` (the OpenAPI 3.0 subset the document uses: `$ref`,
/// `allOf`, `type`, `nullable`, `enum`, `properties`, `required`, `items`, `minimum`,
/// `maximum`, `format` date-time and uuid), strictly: an object may hold only the
/// properties its schema (with its `allOf` parts) names.
fn violations(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let schema = deref(doc, schema);
    if value.is_null() && (schema["nullable"] == true || schema.as_object().is_some_and(|m| m.is_empty())) {
        return;
    }
    if let Some(parts) = schema["allOf"].as_array() {
        for part in parts {
            violations(doc, part, value, at, out);
        }
    }
    let Some(ty) = schema["type"].as_str() else {
        if value.is_null() && schema["allOf"].is_array() {
            out.push(format!("{at}: null, not nullable"));
        }
        return;
    };
    let fits = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        other => panic!("{at}: type {other} is not handled"),
    };
    if !fits {
        out.push(format!("{at}: {value} is not {ty}"));
        return;
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {options:?}"));
    }
    if let Some(n) = value.as_f64()
        && (schema["minimum"].as_f64().is_some_and(|m| n < m) || schema["maximum"].as_f64().is_some_and(|m| n > m))
    {
        out.push(format!("{at}: {n} is out of range"));
    }
    if let Some(text) = value.as_str() {
        match schema["format"].as_str() {
            Some("date-time") if !(text.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(text).is_ok()) => {
                out.push(format!("{at}: {text:?} is not an RFC 3339 UTC time"))
            }
            Some("uuid") if uuid::Uuid::parse_str(text).is_err() => out.push(format!("{at}: {text:?} is not a UUID")),
            _ => {}
        }
    }
    if let Value::Object(fields) = value {
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap();
            if !fields.contains_key(r) {
                out.push(format!("{at}: no {r}"));
            }
        }
        if let Some(props) = schema["properties"].as_object() {
            for (k, v) in fields {
                if let Some(p) = props.get(k) {
                    violations(doc, p, v, &format!("{at}/{k}"), out);
                }
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            violations(doc, item, v, &format!("{at}/{i}"), out);
        }
    }
}

/// `schema` and, through `$ref` and `allOf`, every schema it is made of.
fn parts<'a>(doc: &'a Value, schema: &'a Value, out: &mut Vec<&'a Value>) {
    let schema = deref(doc, schema);
    out.push(schema);
    for part in schema["allOf"].as_array().into_iter().flatten() {
        parts(doc, part, out);
    }
}

/// The fields of `value`'s objects that none of `schemas` (which all apply to it) names.
fn extras(doc: &Value, schemas: Vec<&Value>, value: &Value, at: &str, out: &mut Vec<String>) {
    let mut all = Vec::new();
    for s in schemas {
        parts(doc, s, &mut all);
    }
    match value {
        Value::Object(fields) => {
            let named: Vec<&Map<String, Value>> = all.iter().filter_map(|s| s["properties"].as_object()).collect();
            if named.is_empty() {
                return; // any object (a payload)
            }
            for (k, v) in fields {
                let subs: Vec<&Value> = named.iter().filter_map(|p| p.get(k)).collect();
                if subs.is_empty() {
                    out.push(format!("{at}/{k}: not in the schema"));
                } else {
                    extras(doc, subs, v, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            let subs: Vec<&Value> = all.iter().filter_map(|s| s.get("items")).collect();
            for (i, v) in items.iter().enumerate() {
                extras(doc, subs.clone(), v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Panics unless the JSON `body` of `method path` fits the operation's documented
/// `status` answer.
fn conforms(doc: &Value, op: &Value, status: u16, body: &[u8], what: &str) {
    let response = deref(doc, &op["responses"][status.to_string()]);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{what}: no JSON schema documented for {status}");
    let value: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e})"));
    let mut out = Vec::new();
    violations(doc, schema, &value, "", &mut out);
    extras(doc, vec![schema], &value, "", &mut out);
    assert!(
        out.is_empty(),
        "{what} ({status}) does not fit its schema:\n{}\n{value:#}",
        out.join("\n")
    );
}

/// The names a 400 for an unknown query parameter says the endpoint accepts.
fn accepted(message: &str) -> BTreeSet<String> {
    if message.ends_with("unknown; this endpoint takes no query parameters") {
        return BTreeSet::new();
    }
    let list = message
        .split_once("this endpoint accepts:")
        .unwrap_or_else(|| panic!("not an unknown-parameter message: {message}"))
        .1;
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_daemon_serves_the_document_and_answers_as_documented() {
    let doc = document();
    let setup = Setup::with_server("", TOKENS);
    setup.flow("by-hand", BY_HAND);
    setup.flow("nightly", NIGHTLY);
    let d = start(&setup);

    // The document, byte for byte.
    let r = d.admin("GET", "/v1/openapi.json", Some(VIEWER), b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.body == DOCUMENT.as_bytes(),
        "GET /v1/openapi.json is not docs/openapi.json"
    );

    // One execution, ended, so that every documented GET has something to show.
    let ops = operations(&doc);
    let op_of = |method: &str, path: &str| {
        ops.iter()
            .find(|(m, p, _)| m == method && p == path)
            .map(|(.., op)| *op)
            .unwrap()
    };
    let r = d.admin("POST", "/v1/flows/by-hand/run", Some(OPERATOR), b"{\"n\": 1}");
    assert_eq!(r.status, 202);
    conforms(
        &doc,
        op_of("POST", "/v1/flows/{name}/run"),
        202,
        &r.body,
        "POST /v1/flows/by-hand/run",
    );
    let job = r.json()["job_id"].as_str().unwrap().to_string();
    d.wait_ended("by-hand", 1, 60);

    // Every documented GET (captures filled in): 200 in one of its documented content
    // types, and a JSON answer fits its schema. The live tail never ends: not read here.
    for (method, path, op) in &ops {
        if method != "GET" || path == "/v1/logs/follow" {
            continue;
        }
        let url = route_path(path, &job);
        let r = d.admin("GET", &url, Some(VIEWER), b"");
        assert_eq!(r.status, 200, "GET {url}: {}", String::from_utf8_lossy(&r.body));
        let essence = r
            .header("content-type")
            .unwrap_or_else(|| panic!("GET {url} has no Content-Type"))
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_string();
        let documented = op["responses"]["200"]["content"].as_object().expect("200 content");
        assert!(
            documented.contains_key(&essence),
            "GET {url} answers {essence}, documented: {:?}",
            documented.keys().collect::<Vec<_>>()
        );
        if essence == "application/json" {
            conforms(&doc, op, 200, &r.body, &format!("GET {url}"));
        }
    }

    // Each route's query parameters are the ones its handler accepts: an unknown one is
    // refused (before anything is done) with a 400 that lists them. Follow mode accepts
    // `from`, `to` and `preset` only to refuse them with their own message: undocumented.
    let follow_only_refused: BTreeSet<String> = ["from", "to", "preset"].map(String::from).into();
    for (method, path, op) in &ops {
        let token = if op["x-flowd-role"] == "operator" {
            OPERATOR
        } else {
            VIEWER
        };
        let url = format!("{}?zz_unknown=1", route_path(path, &job));
        let body = if path == "/v1/session" && method == "POST" {
            format!("{{\"token\": \"{VIEWER}\"}}")
        } else {
            String::new()
        };
        let r = d.admin(method, &url, Some(token), body.as_bytes());
        assert_eq!(r.status, 400, "{method} {url}: {}", String::from_utf8_lossy(&r.body));
        conforms(&doc, op, 400, &r.body, &format!("{method} {url}"));
        let v = r.json();
        assert_eq!(v["error"]["code"], "bad_parameter", "{method} {url}");
        let mut handler = accepted(v["error"]["message"].as_str().unwrap());
        if path == "/v1/logs/follow" {
            for p in &follow_only_refused {
                assert!(handler.remove(p), "follow mode no longer accepts {p}");
                let r = d.admin("GET", &format!("{path}?{p}=today"), Some(VIEWER), b"");
                assert_eq!(r.status, 400, "follow with {p}");
            }
        }
        assert_eq!(
            query_names(&doc, op),
            handler,
            "{method} {path}: documented query parameters (left) vs the handler's (right)"
        );
    }

    // Every 401 carries one of the documented challenges.
    let unauthorized = deref(&doc, &op_of("GET", "/v1/executions")["responses"]["401"]);
    let challenges = unauthorized["headers"]["WWW-Authenticate"]["schema"]["enum"]
        .as_array()
        .expect("the 401's WWW-Authenticate is documented");
    for (path, authorization) in [
        ("/v1/executions", None),
        ("/v1/flows", Some("Bearer not-a-configured-token")),
        ("/metrics", Some("Bearer")),
        ("/v1/reload", Some("Basic b3BzOnNlY3JldA==")),
    ] {
        let headers: Vec<(&str, &str)> = authorization.iter().map(|a| ("Authorization", *a)).collect();
        let r = support::http_request(d.admin, "GET", path, &headers, b"");
        assert_eq!(r.status, 401, "{path} with {authorization:?}");
        conforms(&doc, unauthorized_op(), 401, &r.body, path);
        let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
        assert!(
            challenges.contains(&Value::from(challenge)),
            "{challenge} is not documented"
        );
    }

    // A documented path answers 405 to another method (PATCH: no route takes it), with
    // Allow naming its methods.
    let mut methods: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (method, path, _) in &ops {
        methods.entry(path.as_str()).or_default().insert(method.as_str());
    }
    let method_not_allowed = serde_json::json!({
        "responses": { "405": { "$ref": "#/components/responses/MethodNotAllowed" } }
    });
    for (path, allowed) in &methods {
        let url = route_path(path, &job);
        let r = d.admin("PATCH", &url, Some(VIEWER), b"");
        assert_eq!(r.status, 405, "PATCH {url}");
        conforms(&doc, &method_not_allowed, 405, &r.body, &format!("PATCH {url}"));
        let allow: BTreeSet<&str> = r.header("allow").expect("Allow").split(", ").collect();
        assert_eq!(&allow, allowed, "Allow of {path}");
    }
    d.stop();
}

/// An operation answering the shared 401.
fn unauthorized_op() -> &'static Value {
    static OP: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    OP.get_or_init(|| serde_json::json!({ "responses": { "401": { "$ref": "#/components/responses/Unauthorized" } } }))
}

#[test]
fn the_trigger_listener_answers_as_x_flowd_webhooks_documents() {
    let doc = document();
    let hooks = &doc["x-flowd-webhooks"];
    let setup = Setup::with_server(
        "",
        "max_body = \"1KiB\"\nrespond_timeout = \"5s\"\nbody_read_timeout = \"500ms\"",
    );
    let flow = |name: &str, http: &str, rest: &str| {
        setup.flow(
            name,
            &format!("[flow]\nname = \"{name}\"\n[trigger.http]\npath = \"/{name}\"\n{http}\n{rest}"),
        );
    };
    let echo = "[[steps]]\nname = \"s\"\nconnector = \"echo\"\n";
    let filter = "[trigger]\nconnector = \"reshape\"\nconfig = { filter = \"body.keep\" }\n";
    flow("plain", "body = \"json\"", echo);
    flow("dropping", "", &format!("{filter}{echo}"));
    flow("refusing", "drop_status = 422", &format!("{filter}{echo}"));
    flow(
        "signed",
        "signature = { header = \"X-Signature\", secret_env = \"FLOWD_TEST_SECRET\" }",
        echo,
    );
    flow(
        "replying",
        "",
        &format!("{echo}[[steps]]\nname = \"reply\"\nrespond = {{ status = 201, body = {{ ok = true }} }}\n"),
    );
    let d = Daemon::start_with_env(&setup, &[("FLOWD_TEST_SECRET", "s3cret")]);
    let check = |r: &support::HttpResponse, status: u16, what: &str| {
        assert_eq!(r.status, status, "{what}: {}", String::from_utf8_lossy(&r.body));
        let documented = deref(&doc, &hooks["responses"][status.to_string()]);
        for (name, h) in documented["headers"].as_object().into_iter().flatten() {
            if h["required"] == true {
                assert!(r.header(name).is_some(), "{what}: no {name} header");
            }
        }
        conforms(&doc, hooks, status, &r.body, what);
    };
    check(&d.request("POST", "/plain", &[], b"{}"), 202, "accepted");
    check(&d.request("POST", "/dropping", &[], b"{}"), 200, "dropped");
    check(&d.request("POST", "/refusing", &[], b"{}"), 422, "dropped with 422");
    check(&d.request("POST", "/plain", &[], b"{\"a\""), 400, "invalid JSON");
    check(&d.request("POST", "/signed", &[], b"{}"), 401, "no signature");
    check(&d.request("POST", "/nowhere", &[], b"{}"), 404, "no flow");
    check(&d.request("GET", "/plain", &[], b""), 405, "another method");
    check(&d.request("POST", "/plain", &[], &[b' '; 2048]), 413, "over max_body");
    let encoded = |coding: &str, body: &[u8]| d.request("POST", "/plain", &[("content-encoding", coding)], body);
    check(&encoded("gzip", &support::gzip(b"{}")), 202, "gzip");
    check(
        &encoded("gzip", &support::gzip(&[b' '; 2048])),
        413,
        "over max_body once decoded",
    );
    check(&encoded("gzip", b"{}"), 400, "not gzip");
    check(&encoded("br", b"{}"), 415, "a coding not undone");
    // What the listener answers before a flow sees the request.
    let raw = |bytes: &[u8]| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(d.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        let _ = s.write_all(bytes);
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no answer: {text:?}"));
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        support::HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    };
    check(&raw(b"NOT HTTP\r\n\r\n"), 400, "not HTTP");
    check(
        &raw(b"POST /plain HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 2\r\n\r\n{}"),
        400,
        "two Host headers",
    );
    let huge = format!("POST /plain HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(70_000));
    check(&raw(huge.as_bytes()), 431, "a head over 64 KiB");
    check(
        &raw(b"POST /plain HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{}"),
        408,
        "a body that never arrives",
    );

    // Held open: the respond step's answer, with the job id.
    let r = d.request("POST", "/replying", &[], b"{}");
    assert_eq!(r.status, 201);
    let held = &hooks["responses"]["default"];
    for name in held["headers"].as_object().unwrap().keys() {
        let v = r
            .header(name)
            .unwrap_or_else(|| panic!("the held-open answer has no {name}"));
        assert!(uuid::Uuid::parse_str(v).is_ok(), "{name}: {v}");
    }
    d.stop();
}
