//! `http`: calls an HTTP API through wasi:http. Config: `url` (required), `method` (default
//! GET), `query` and `headers` (tables), `body` (a string is sent as-is, anything else as
//! JSON), `follow_redirects` (default true, at most `max_redirects`, default 5),
//! `fail_on_status` (default true: 4xx and 5xx fail, 5xx and 429 retryably).
//! Output: `{"status", "headers", "body", "url"}`, the body parsed when it is JSON.
//! Every request, redirects included, goes through the host's allow-list.

wit_bindgen::generate!({ path: "../../wit", world: "action-connector" });

#[global_allocator]
static ARENA: guest_util::arena::Arena = guest_util::arena::Arena::new();

use exports::flowd::connector::action::{ConfigError, Context, Guest, StepError};
use guest_util::{Problem, config_object, kind, unknown_keys};
use serde_json::{Map, Value, json};
use std::io::{Read, Write};
use wasi::http::outgoing_handler::handle;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

struct Http;

const KEYS: &[&str] = &[
    "url",
    "method",
    "query",
    "headers",
    "body",
    "follow_redirects",
    "max_redirects",
    "fail_on_status",
];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// How much of an error response's body is quoted in the step error.
const QUOTE: usize = 300;

struct Settings {
    url: String,
    method: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    follow_redirects: bool,
    max_redirects: u32,
    fail_on_status: bool,
}

/// Placeholders are resolved by the host before `run`; `validate` sees them unresolved.
fn templated(s: &str) -> bool {
    s.contains("{{")
}

fn parse(config: &str) -> Result<Settings, Vec<Problem>> {
    let map = config_object(config)?;
    let mut problems = Vec::new();
    unknown_keys(&map, KEYS, &mut problems);
    let url = match map.get("url") {
        Some(Value::String(u)) => {
            if !templated(u)
                && let Err(why) = Url::parse(u)
            {
                problems.push(("url".into(), why));
            }
            u.clone()
        }
        Some(other) => {
            problems.push((
                "url".into(),
                format!("expected a URL (a string), found {}", kind(other)),
            ));
            String::new()
        }
        None => {
            problems.push((
                "url".into(),
                "missing: the URL to call, such as \"https://api.example.com/v1/orders\"".into(),
            ));
            String::new()
        }
    };
    let method = match map.get("method") {
        None => "GET".to_string(),
        Some(Value::String(m)) => {
            let upper = m.to_ascii_uppercase();
            if !templated(m) && !METHODS.contains(&upper.as_str()) {
                problems.push((
                    "method".into(),
                    format!("unknown method {m:?}; expected one of: {}", METHODS.join(", ")),
                ));
            }
            upper
        }
        Some(other) => {
            problems.push(("method".into(), format!("expected a string, found {}", kind(other))));
            "GET".into()
        }
    };
    let pairs = |key: &str, problems: &mut Vec<Problem>| -> Vec<(String, String)> {
        match map.get(key) {
            None => Vec::new(),
            Some(Value::Object(m)) => m
                .iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k.clone(), s.clone())),
                    Value::Number(_) | Value::Bool(_) => Some((k.clone(), v.to_string())),
                    other => {
                        problems.push((
                            format!("{key}.{k}"),
                            format!("expected a string, found {}", kind(other)),
                        ));
                        None
                    }
                })
                .collect(),
            Some(other) => {
                problems.push((
                    key.into(),
                    format!("expected a table of name = \"value\", found {}", kind(other)),
                ));
                Vec::new()
            }
        }
    };
    let query = pairs("query", &mut problems);
    let headers = pairs("headers", &mut problems);
    for (name, _) in &headers {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            problems.push((format!("headers.{name}"), "not a valid header name".into()));
        }
    }
    let has_content_type = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    let mut headers = headers;
    let body = match map.get("body") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone().into_bytes()),
        Some(other) => {
            if !has_content_type {
                headers.push(("content-type".into(), "application/json".into()));
            }
            Some(other.to_string().into_bytes())
        }
    };
    let flag = |key: &str, default: bool, problems: &mut Vec<Problem>| match map.get(key) {
        None => default,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            problems.push((key.into(), format!("expected true or false, found {}", kind(other))));
            default
        }
    };
    let follow_redirects = flag("follow_redirects", true, &mut problems);
    let fail_on_status = flag("fail_on_status", true, &mut problems);
    let max_redirects = match map.get("max_redirects") {
        None => 5,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= 20) => n.as_u64().unwrap() as u32,
        Some(other) => {
            problems.push((
                "max_redirects".into(),
                format!("expected a number from 0 to 20, found {other}"),
            ));
            5
        }
    };
    if problems.is_empty() {
        Ok(Settings {
            url,
            method,
            query,
            headers,
            body,
            follow_redirects,
            max_redirects,
            fail_on_status,
        })
    } else {
        Err(problems)
    }
}

/// An absolute http(s) URL, split the way wasi:http takes it.
#[derive(Clone, PartialEq)]
struct Url {
    https: bool,
    authority: String,
    path_and_query: String,
}

impl Url {
    fn parse(text: &str) -> Result<Url, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?} is not an absolute URL (http://… or https://…)"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            other => return Err(format!("scheme {other:?} is not http or https")),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        let tail = tail.split('#').next().unwrap_or("");
        let path_and_query = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        Ok(Url {
            https,
            authority: authority.to_string(),
            path_and_query,
        })
    }

    /// Resolves a `Location` header against this URL.
    fn join(&self, location: &str) -> Result<Url, String> {
        if location.contains("://") {
            return Url::parse(location);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", if self.https { "https" } else { "http" }));
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let base = self.path_and_query.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Ok(Url {
            path_and_query: path,
            ..self.clone()
        })
    }

    fn with_query(mut self, query: &[(String, String)]) -> Url {
        for (i, (k, v)) in query.iter().enumerate() {
            let sep = if i == 0 && !self.path_and_query.contains('?') {
                '?'
            } else {
                '&'
            };
            self.path_and_query.push(sep);
            self.path_and_query.push_str(&encode(k));
            self.path_and_query.push('=');
            self.path_and_query.push_str(&encode(v));
        }
        self
    }

    fn origin(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.authority.to_ascii_lowercase()
        )
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.origin(), self.path_and_query)
    }
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn error(code: &str, message: impl Into<String>, retryable: bool) -> StepError {
    StepError {
        code: code.into(),
        message: message.into(),
        retryable,
    }
}

/// Transport failures worth another try; the host reports the details.
fn transport(what: &str, url: &Url, e: &ErrorCode) -> StepError {
    let retryable = !matches!(
        e,
        ErrorCode::HttpRequestDenied
            | ErrorCode::DestinationIpProhibited
            | ErrorCode::HttpRequestUriInvalid
            | ErrorCode::HttpResponseBodySize(_)
    );
    error("request", format!("{what} {url}: {e:?}"), retryable)
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn send(method: &str, url: &Url, headers: &[(String, String)], body: Option<&[u8]>) -> Result<Response, StepError> {
    let fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes()))
        .collect();
    let fields = Fields::from_list(&fields).map_err(|e| error("config", format!("headers: {e:?}"), false))?;
    let request = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        other => {
            return Err(error(
                "config",
                format!("unknown method {other:?}; expected one of: {}", METHODS.join(", ")),
                false,
            ));
        }
    };
    let bad = |what: &str| error("config", format!("{url}: invalid {what}"), false);
    request.set_method(&method).map_err(|()| bad("method"))?;
    request
        .set_scheme(Some(if url.https { &Scheme::Https } else { &Scheme::Http }))
        .map_err(|()| bad("scheme"))?;
    request.set_authority(Some(&url.authority)).map_err(|()| bad("host"))?;
    request
        .set_path_with_query(Some(&url.path_and_query))
        .map_err(|()| bad("path"))?;
    let outgoing = request.body().expect("the request body is taken once");
    let future = handle(request, None).map_err(|e| transport("sending", url, &e))?;
    if let Some(bytes) = body {
        let mut stream = outgoing.write().expect("the body stream is taken once");
        stream
            .write_all(bytes)
            .map_err(|e| error("request", format!("sending the body to {url}: {e}"), true))?;
        stream
            .flush()
            .map_err(|e| error("request", format!("sending the body to {url}: {e}"), true))?;
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| transport("sending", url, &e))?;
    future.subscribe().block();
    let response = future
        .get()
        .expect("ready after block")
        .expect("taken once")
        .map_err(|e| transport("calling", url, &e))?;
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    // Child resources (the stream, then the body) are dropped before their parents.
    let incoming = response.consume().expect("the response body is taken once");
    let mut bytes = Vec::new();
    {
        let mut stream = incoming.stream().expect("the body stream is taken once");
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| error("request", format!("reading the response from {url}: {e}"), true))?;
    }
    drop(incoming);
    Ok(Response {
        status,
        headers,
        body: bytes,
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn call(s: Settings) -> Result<Value, StepError> {
    let mut url = Url::parse(&s.url)
        .map_err(|why| error("config", format!("url: {why}"), false))?
        .with_query(&s.query);
    let first_origin = url.origin();
    let mut method = s.method.clone();
    let mut body = s.body.clone();
    let mut headers = s.headers.clone();
    let mut redirects = 0;
    let response = loop {
        let r = send(&method, &url, &headers, body.as_deref())?;
        let location = header(&r.headers, "location");
        if !s.follow_redirects || !matches!(r.status, 301 | 302 | 303 | 307 | 308) || location.is_none() {
            break r;
        }
        if redirects == s.max_redirects {
            return Err(error(
                "redirects",
                format!("{url} redirected more than {} times (max_redirects)", s.max_redirects),
                false,
            ));
        }
        redirects += 1;
        let next = url.join(location.expect("checked")).map_err(|why| {
            error(
                "redirect",
                format!("{url} redirected to an unusable location: {why}"),
                false,
            )
        })?;
        // 303, and 301/302 after anything but GET or HEAD, continue as a GET without a body.
        if r.status == 303 || (matches!(r.status, 301 | 302) && method != "GET" && method != "HEAD") {
            method = "GET".into();
            body = None;
            headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type") && !k.eq_ignore_ascii_case("content-length"));
        }
        // Credentials are for the origin they were configured for.
        if next.origin() != first_origin {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization") && !k.eq_ignore_ascii_case("cookie"));
        }
        url = next;
    };
    let is_json = header(&response.headers, "content-type").is_some_and(|c| c.contains("json"));
    let text = String::from_utf8_lossy(&response.body);
    if s.fail_on_status && response.status >= 400 {
        let quote: String = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(QUOTE)
            .collect();
        let retryable = response.status >= 500 || response.status == 429;
        return Err(error(
            "status",
            format!("{method} {url} answered {}: {}", response.status, quote.trim()),
            retryable,
        ));
    }
    let body = if is_json || text.trim_start().starts_with(['{', '[']) {
        serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned()))
    } else {
        Value::String(text.into_owned())
    };
    let mut headers = Map::new();
    for (k, v) in response.headers {
        match headers.get_mut(&k) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                headers.insert(k, Value::String(v));
            }
        }
    }
    Ok(json!({ "status": response.status, "headers": headers, "body": body, "url": url.to_string() }))
}

impl Guest for Http {
    fn validate(config: String) -> Result<(), Vec<ConfigError>> {
        parse(&config).map(|_| ()).map_err(|problems| {
            problems
                .into_iter()
                .map(|(path, message)| ConfigError { path, message })
                .collect()
        })
    }

    fn run(_ctx: Context, config: String, _input: String) -> Result<String, StepError> {
        let settings = parse(&config).map_err(|problems| {
            let text: Vec<String> = problems.into_iter().map(|(p, m)| format!("{p}: {m}")).collect();
            error("config", text.join("; "), false)
        })?;
        call(settings).map(|v| v.to_string())
    }
}

export!(Http);
