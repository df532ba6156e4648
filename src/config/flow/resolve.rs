//! Reading a flow file into a [`Flow`]: every key of the document checked (unknown
//! ones named with the closest known one), placeholders checked against earlier steps,
//! connectors and limits against the daemon config; every problem collected.

use super::*;
use crate::config::cron::CronExpr;
use crate::config::daemon::{DaemonConfig, MAX_RESPOND_TIMEOUT, MIN_TIMEOUT, NAME_RULE, check_name, valid_name};
use crate::config::diag::{ConfigErrors, Place, SourceFile, did_you_mean};
use crate::config::document::{self, Table};
use crate::config::template::{PlaceholderError, Scope, Template};
use crate::config::units::{format_bytes, format_duration};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// The steps before the one being resolved, for placeholder checks.
struct Earlier<'a> {
    names: &'a [String],
    set: &'a std::collections::HashSet<String>,
}

impl Scope for Earlier<'_> {
    fn is_earlier_step(&self, name: &str) -> bool {
        self.set.contains(name)
    }
    fn describe_earlier(&self) -> String {
        const SHOWN: usize = 10;
        match self.names.len() {
            0 => "this is the first step".into(),
            n if n <= SHOWN => format!("earlier steps: {}", self.names.join(", ")),
            n => format!("earlier steps: {}, … ({n} in all)", self.names[n - SHOWN..].join(", ")),
        }
    }
    fn closest_earlier(&self, name: &str) -> Option<String> {
        crate::config::diag::closest(name, self.names.iter().map(String::as_str)).map(str::to_string)
    }
}

impl Flow {
    /// Reads and validates a flow file against `daemon`, reporting every problem found.
    pub fn load(path: &Path, daemon: &DaemonConfig) -> Result<Flow, ConfigErrors> {
        let source = SourceFile::read(path)?;
        Self::parse(&source, daemon)
    }

    pub fn parse(source: &SourceFile, daemon: &DaemonConfig) -> Result<Flow, ConfigErrors> {
        let doc = document::parse(source)?;
        let mut errors = ConfigErrors::default();
        let limits = &daemon.limits;
        let mut root = Table::root(source, &doc);
        let header = root.table("flow", &mut errors);
        let raw_trigger = root.table("trigger", &mut errors);
        let raw_steps = root.tables("steps", &mut errors);
        let had_steps = root.has("steps");
        let had_trigger = root.has("trigger");
        root.finish(&mut errors);

        let mut name = None;
        let mut project = "default".to_string();
        let mut description = None;
        let mut timeout = limits.flow_timeout;
        let mut throttle = None;
        let mut place = source.path.file_stem().map(|_| Place {
            source: source.clone(),
            span: 0..0,
        });
        if let Some(mut h) = header {
            place = Some(h.place(h.span.clone()));
            if let Some(n) = h.string("name", &mut errors) {
                check_name(source, &n, "flow name", &mut errors);
                place = Some(h.place(n.span()));
                name = Some(n.into_inner());
            }
            if let Some(p) = h.string("project", &mut errors) {
                check_name(source, &p, "project", &mut errors);
                project = p.into_inner();
            }
            description = h.string("description", &mut errors).map(Spanned::into_inner);
            if let Some(t) = h.duration("timeout", MIN_TIMEOUT..=limits.max_flow_timeout, &mut errors) {
                timeout = t.into_inner();
            } else if let Some(e) = errors.0.last_mut()
                && h.has("timeout")
                && e.message.starts_with("flow.timeout must be from")
            {
                e.help = Some(format!(
                    "the daemon's limits.max_flow_timeout is {}",
                    format_duration(limits.max_flow_timeout)
                ));
            }
            throttle = h
                .table("throttle", &mut errors)
                .map(|t| resolve_throttle(t, &mut errors));
            h.finish(&mut errors);
        }
        let name = match name {
            Some(n) => n,
            None => {
                let stem = source
                    .path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !valid_name(&stem) {
                    errors.push(
                        source
                            .error(
                                0..0,
                                format!("the file name \"{stem}\" is not a valid flow name ({NAME_RULE})"),
                            )
                            .with_help("set `name` in [flow]"),
                    );
                }
                stem
            }
        };

        let trigger = match raw_trigger {
            Some(t) => resolve_trigger(t, daemon, &mut errors),
            None => {
                // A `trigger` that is not a table was reported as such.
                if !had_trigger {
                    errors.push(source.error(0..0, "a flow needs a [trigger] table").with_help(
                        "add `[trigger.manual]`, `[trigger.http]` with a `path`, or `[trigger.schedule]` with a `cron`",
                    ));
                }
                Trigger {
                    kind: TriggerKind::Manual,
                    connector: None,
                    place: None,
                }
            }
        };

        if raw_steps.is_empty() && !had_steps {
            errors.push(
                source
                    .error(0..0, "a flow needs at least one step")
                    .with_help("add a [[steps]] table with a `name` and a `connector`"),
            );
        }
        let mut steps: Vec<Step> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut set = std::collections::HashSet::new();
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let mut responds: Vec<(String, Place)> = Vec::new();
        for (i, mut raw_step) in raw_steps.into_iter().enumerate() {
            let Some(step_name) = raw_step.string("name", &mut errors) else {
                if !raw_step.has("name") {
                    errors.push(raw_step.error(raw_step.span.clone(), format!("steps[{i}] needs a `name`")));
                }
                continue;
            };
            let raw_step = raw_step.titled(
                format!("step \"{}\"", step_name.get_ref()),
                format!("step \"{}\": ", step_name.get_ref()),
            );
            check_name(source, &step_name, "step name", &mut errors);
            match seen.get(step_name.get_ref()) {
                Some(first) => errors.push(
                    source
                        .error(
                            step_name.span(),
                            format!("duplicate step name \"{}\"", step_name.get_ref()),
                        )
                        .with_label("used again here")
                        .with_related(source.related(first.clone(), "first used here"))
                        .with_help("give each step its own name: later steps and placeholders refer to steps by name"),
                ),
                None => {
                    seen.insert(step_name.get_ref().clone(), step_name.span());
                }
            }
            let scope = Earlier {
                names: &names,
                set: &set,
            };
            let name_place = raw_step.place(step_name.span());
            if let Some(step) = resolve_step(raw_step, daemon, step_name.get_ref(), &scope, &mut errors) {
                if matches!(step.action, Action::Respond { .. }) {
                    responds.push((step.name.clone(), name_place.clone()));
                }
                steps.push(Step {
                    place: Some(name_place),
                    ..step
                });
            }
            set.insert(step_name.get_ref().clone());
            names.push(step_name.into_inner());
        }
        check_responds(&trigger, &responds, &mut errors);

        let mut flow = Flow {
            name,
            project,
            description,
            timeout,
            throttle,
            trigger,
            steps,
            version: String::new(),
            trigger_fingerprint: String::new(),
            source: source.path.clone(),
            place,
        };
        if !errors.is_empty() {
            return errors.into_result(flow);
        }
        flow.version = short_hash(&serde_json::to_vec(&flow).expect("a flow serializes"));
        flow.trigger_fingerprint = short_hash(&serde_json::to_vec(&flow.trigger).expect("a trigger serializes"));
        Ok(flow)
    }
}

/// `redact_headers` and `keep_headers` (lower-cased, checked) and the headers a flow's
/// stored payloads redact: the defaults and the signature header, less those kept, and
/// those added.
fn resolve_redaction(
    source: &SourceFile,
    redact: Vec<Spanned<String>>,
    keep: Vec<Spanned<String>>,
    signature: Option<&str>,
    errors: &mut ConfigErrors,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut defaults: Vec<String> = DEFAULT_REDACTED_HEADERS.iter().map(|h| h.to_string()).collect();
    defaults.extend(signature.map(str::to_string));
    let mut names = |key: &str, list: Vec<Spanned<String>>| -> Vec<(String, Range<usize>)> {
        list.into_iter()
            .filter_map(|h| {
                let name = h.get_ref().to_ascii_lowercase();
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    errors.push(source.error(
                        h.span(),
                        format!("trigger.http.{key}: \"{}\" is not a header name", h.get_ref()),
                    ));
                    return None;
                }
                Some((name, h.span()))
            })
            .collect()
    };
    let redact = names("redact_headers", redact);
    let keep = names("keep_headers", keep);
    for (name, span) in &keep {
        if redact.iter().any(|(r, _)| r == name) {
            errors.push(source.error(
                span.clone(),
                format!("trigger.http.keep_headers: \"{name}\" is also in redact_headers"),
            ));
        } else if !defaults.contains(name) {
            errors.push(source.error(
                span.clone(),
                format!(
                    "trigger.http.keep_headers: \"{name}\" is not redacted by default, so there is nothing to keep (the defaults: {}{})",
                    DEFAULT_REDACTED_HEADERS.join(", "),
                    signature.map(|s| format!(" and the signature header {s}")).unwrap_or_default()
                ),
            ));
        }
    }
    let keep: Vec<String> = keep.into_iter().map(|(n, _)| n).collect();
    let redact: Vec<String> = redact.into_iter().map(|(n, _)| n).collect();
    let mut redacted: Vec<String> = defaults.into_iter().filter(|d| !keep.contains(d)).collect();
    for r in &redact {
        if !redacted.contains(r) {
            redacted.push(r.clone());
        }
    }
    (redact, keep, redacted)
}

/// A `respond` step answers an HTTP request, once.
fn check_responds(trigger: &Trigger, responds: &[(String, Place)], errors: &mut ConfigErrors) {
    if !matches!(trigger.kind, TriggerKind::Http { .. }) {
        for (name, place) in responds {
            errors.push(
                place
                    .error(format!(
                        "step \"{name}\" is a `respond` step, but this flow is started by {}: there is no HTTP request to answer",
                        match trigger.kind {
                            TriggerKind::Schedule { .. } => "a schedule",
                            _ => "hand (a manual trigger)",
                        }
                    ))
                    .with_help("remove the step, or trigger the flow with [trigger.http]"),
            );
        }
        return;
    }
    if let [(_, first), rest @ ..] = responds {
        for (name, place) in rest {
            errors.push(
                place
                    .error(format!(
                        "step \"{name}\" is a second `respond` step: an HTTP request is answered once"
                    ))
                    .with_label("second respond step")
                    .with_related(first.related("the request is answered here"))
                    .with_help("keep one `respond` step"),
            );
        }
    }
}

fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn resolve_throttle(mut t: Table, errors: &mut ConfigErrors) -> Throttle {
    let mut out = Throttle {
        max_concurrency: 1,
        rate: None,
        queue_capacity: 1000,
        max_wait: Duration::from_secs(60),
    };
    if let Some(m) = t.int("max_concurrency", 1..=100_000, errors) {
        out.max_concurrency = m.into_inner() as u32;
    }
    out.rate = t.number("rate", RATE, errors).map(Spanned::into_inner);
    if let Some(q) = t.int("queue_capacity", 1..=1_000_000, errors) {
        out.queue_capacity = q.into_inner() as u32;
    }
    if let Some(w) = t.duration("max_wait", MIN_TIMEOUT..=MAX_WAIT, errors) {
        out.max_wait = w.into_inner();
    }
    t.finish(errors);
    out
}

/// The span of the text inside a string value's quotes, when the value is written as a
/// plain one-line string (so a position in the string is a position in the file).
fn inside_quotes(source: &SourceFile, span: &Range<usize>, value: &str) -> Option<usize> {
    let raw = source.text.get(span.clone())?;
    let inner = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))?;
    (inner == value).then_some(span.start + 1)
}

fn resolve_trigger(mut t: Table, daemon: &DaemonConfig, errors: &mut ConfigErrors) -> Trigger {
    let source = t.source;
    let span = t.span.clone();
    let http = t.table("http", errors);
    let schedule = t.table("schedule", errors);
    let manual = t.table("manual", errors);
    let connector = t.string("connector", errors);
    let config = t.get("config");
    let count = http.is_some() as u8 + schedule.is_some() as u8 + manual.is_some() as u8;
    if count != 1 {
        errors.push(
            source
                .error(
                    span.clone(),
                    if count == 0 {
                        "[trigger] needs one of `http`, `schedule` or `manual`"
                    } else {
                        "[trigger] has more than one of `http`, `schedule` and `manual`: a flow has one trigger"
                    },
                )
                .with_help("write one of `[trigger.http]` with a `path`, `[trigger.schedule]` with a `cron`, or `[trigger.manual]`"),
        );
    }
    let mut place = None;
    let kind = if let Some(mut http) = http {
        let path = http.string("path", errors);
        let method = http.string("method", errors);
        let signature = http.table("signature", errors);
        let respond_timeout = http.duration("respond_timeout", MIN_TIMEOUT..=MAX_RESPOND_TIMEOUT, errors);
        let path = match path {
            Some(p) => {
                let text = p.get_ref();
                let normal = if !text.starts_with('/')
                    || text.contains(char::is_whitespace)
                    || text.contains('?')
                    || text.contains('#')
                {
                    errors.push(source.error(
                        p.span(),
                        format!("trigger.http.path \"{text}\" must start with `/` and hold no spaces, `?` or `#`"),
                    ));
                    None
                } else {
                    match crate::config::webhook_path::normalize(text) {
                        Ok(n) => Some(n.into_owned()),
                        Err(why) => {
                            errors.push(
                                source
                                    .error(p.span(), format!("trigger.http.path \"{text}\": {why}"))
                                    .with_help("write a `%` itself as `%25`"),
                            );
                            None
                        }
                    }
                };
                place = Some(http.place(p.span()));
                // Matched in the form requests are brought to (`config::webhook_path`).
                normal.unwrap_or_else(|| p.into_inner())
            }
            None => {
                if !http.has("path") {
                    errors.push(
                        source
                            .error(http.span.clone(), "[trigger.http] needs a `path`")
                            .with_help("add `path = \"/hooks/<name>\"`"),
                    );
                }
                place = Some(http.place(http.span.clone()));
                String::new()
            }
        };
        let method = match method {
            Some(m) => {
                let upper = m.get_ref().to_ascii_uppercase();
                const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
                if !METHODS.contains(&upper.as_str()) {
                    let mut e = source.error(
                        m.span(),
                        format!(
                            "trigger.http.method \"{}\" is not one of GET, POST, PUT, PATCH, DELETE",
                            m.get_ref()
                        ),
                    );
                    if let Some(h) = did_you_mean(&upper, METHODS) {
                        e = e.with_help(h);
                    }
                    errors.push(e);
                }
                upper
            }
            None => "POST".into(),
        };
        let signature = signature.and_then(|mut sig| {
            let header = sig.string("header", errors);
            let secret_env = sig.string("secret_env", errors);
            for (key, v) in [("header", &header), ("secret_env", &secret_env)] {
                if v.is_none() && !sig.has(key) {
                    errors.push(source.error(sig.span.clone(), format!("trigger.http.signature needs `{key}`")));
                }
            }
            sig.finish(errors);
            let (header, secret_env) = (header?, secret_env?);
            let name = secret_env.get_ref();
            let secret = match std::env::var(name) {
                Ok(v) if !v.is_empty() => v.into_bytes(),
                _ => {
                    errors.push(source.error(
                        secret_env.span(),
                        format!("trigger.http.signature.secret_env names \"{name}\", which is not set (or empty) in the daemon's environment"),
                    ));
                    Vec::new()
                }
            };
            Some(Signature {
                header: header.into_inner().to_ascii_lowercase(),
                secret_env: secret_env.into_inner(),
                secret,
            })
        });
        let body = match http.choice("body", &["any", "json"], errors) {
            Some(k) if *k.get_ref() == "json" => BodyKind::Json,
            _ => BodyKind::Any,
        };
        let drop_status = match http.int("drop_status", 200..=499, errors) {
            Some(s) => {
                let status = *s.get_ref() as u16;
                if !(200..300).contains(&status) && !(400..500).contains(&status) {
                    errors.push(source.error(
                        s.span(),
                        format!("trigger.http.drop_status {status} must be a 2xx or 4xx status"),
                    ));
                }
                status
            }
            None => DEFAULT_DROP_STATUS,
        };
        let redact = http.strings("redact_headers", errors).unwrap_or_default();
        let keep = http.strings("keep_headers", errors).unwrap_or_default();
        let (redact_headers, keep_headers, redacted) = resolve_redaction(
            source,
            redact,
            keep,
            signature.as_ref().map(|s| s.header.as_str()),
            errors,
        );
        http.finish(errors);
        TriggerKind::Http {
            path,
            method,
            signature,
            respond_timeout: respond_timeout.map(Spanned::into_inner),
            body,
            drop_status,
            redact_headers,
            keep_headers,
            redacted,
        }
    } else if let Some(mut s) = schedule {
        let cron = s.string("cron", errors);
        let timezone = s.string("timezone", errors);
        let catch_up = s.choice("catch_up", &["skip", "one", "all"], errors);
        let overlap = s.choice("overlap", &["allow", "skip", "queue"], errors);
        s.finish(errors);
        let cron = match cron {
            Some(c) => {
                if let Err(e) = c.get_ref().parse::<CronExpr>() {
                    let span = match inside_quotes(source, &c.span(), c.get_ref()) {
                        Some(at) => at + e.span.start..at + e.span.end,
                        None => c.span(),
                    };
                    let mut err = source.error(
                        span,
                        format!("invalid cron expression \"{}\": {}", c.get_ref(), e.message),
                    );
                    if let Some(h) = e.help {
                        err = err.with_help(h);
                    }
                    errors.push(err);
                }
                c.into_inner()
            }
            None => {
                if !s.has("cron") {
                    errors.push(
                        source
                            .error(s.span.clone(), "[trigger.schedule] needs a `cron` expression")
                            .with_help("add `cron = \"0 9 * * 1-5\"` (09:00 on weekdays)"),
                    );
                }
                String::new()
            }
        };
        let timezone = match timezone {
            Some(tz) => {
                if tz.get_ref().parse::<chrono_tz::Tz>().is_err() {
                    let mut e = source.error(
                        tz.span(),
                        format!(
                            "unknown time zone \"{}\": expected an IANA name such as \"Europe/Berlin\" or \"UTC\"",
                            tz.get_ref()
                        ),
                    );
                    if let Some(h) = did_you_mean(tz.get_ref(), chrono_tz::TZ_VARIANTS.iter().map(|z| z.name())) {
                        e = e.with_help(h);
                    }
                    errors.push(e);
                }
                tz.into_inner()
            }
            None => "UTC".into(),
        };
        TriggerKind::Schedule {
            cron,
            timezone,
            catch_up: match catch_up.as_ref().map(|c| *c.get_ref()) {
                Some("one") => CatchUp::One,
                Some("all") => CatchUp::All,
                _ => CatchUp::Skip,
            },
            overlap: match overlap.as_ref().map(|o| *o.get_ref()) {
                Some("skip") => Overlap::Skip,
                Some("queue") => Overlap::Queue,
                _ => Overlap::Allow,
            },
        }
    } else {
        if let Some(m) = manual {
            m.finish(errors);
        }
        TriggerKind::Manual
    };

    let connector = match (connector, config) {
        (Some(c), config) => {
            check_connector(source, daemon, &c, errors);
            let (value, keys, at) = match config {
                Some(cfg) => {
                    let (v, keys) = document::config_json(cfg);
                    (v, keys, cfg.span())
                }
                None => (Value::Object(Default::default()), Vec::new(), span.clone()),
            };
            if config.is_some() && value_has_placeholder(&value) {
                errors.push(source.error(
                    at.clone(),
                    "trigger config cannot hold placeholders: nothing has run yet when the trigger is called",
                ));
            }
            Some(ConnectorCall {
                connector: c.into_inner(),
                template: Template::Literal(Arc::new(value.clone())),
                literal_text: Some(value.to_string().into()),
                config: value,
                location: Some(source.at(at.clone())),
                place: Some(t.place(at)),
                keys: Arc::new(keys),
            })
        }
        (None, Some(cfg)) => {
            errors.push(source.error(
                cfg.span(),
                "trigger.config is set but trigger.connector is not: the config is for a trigger connector",
            ));
            None
        }
        (None, None) => None,
    };
    t.finish(errors);
    Trigger { kind, connector, place }
}

fn check_connector(source: &SourceFile, daemon: &DaemonConfig, name: &Spanned<String>, errors: &mut ConfigErrors) {
    if daemon.connectors.contains_key(name.get_ref()) {
        return;
    }
    let known: Vec<&str> = daemon.connectors.keys().map(String::as_str).collect();
    let mut e = source.error(
        name.span(),
        format!(
            "unknown connector \"{}\"; {} names: {}",
            name.get_ref(),
            daemon.describe(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ),
    );
    e = match did_you_mean(name.get_ref(), known.iter().copied()) {
        Some(h) => e.with_help(h),
        None if crate::config::BUNDLED.contains(&name.get_ref().as_str()) => e.with_help(format!(
            "it is bundled: add `[connectors.{n}]` with `bundled = \"{n}\"` to {}",
            daemon.describe(),
            n = name.get_ref()
        )),
        None => e,
    };
    errors.push(e);
}

fn resolve_step(
    mut t: Table,
    daemon: &DaemonConfig,
    name: &str,
    scope: &dyn Scope,
    errors: &mut ConfigErrors,
) -> Option<Step> {
    let source = t.source;
    let span = t.span.clone();
    let l = &daemon.limits;
    let before = errors.len();
    let connector = t.string("connector", errors);
    let config = t.get("config");
    let pause = t.string("pause", errors);
    let respond = t.table("respond", errors);
    let fuel = t.int("fuel", 1..=l.max_step.fuel, errors);
    cap_help(&t, "fuel", errors, || {
        format!("the daemon's limits.max_fuel is {}", l.max_step.fuel)
    });
    let timeout = t.duration("timeout", MIN_TIMEOUT..=l.max_step.timeout, errors);
    cap_help(&t, "timeout", errors, || {
        format!(
            "the daemon's limits.max_timeout is {}",
            format_duration(l.max_step.timeout)
        )
    });
    let memory = t.bytes("memory", crate::config::daemon::MIN_MEMORY..=l.max_step.memory, errors);
    cap_help(&t, "memory", errors, || {
        format!("the daemon's limits.max_memory is {}", format_bytes(l.max_step.memory))
    });
    let on_error = t.choice("on_error", &["fail", "continue"], errors);
    let retry = t.table("retry", errors);
    let kinds = t.has("connector") as u8 + t.has("pause") as u8 + t.has("respond") as u8;
    if kinds != 1 {
        errors.push(
            source
                .error(
                    span.clone(),
                    format!("step \"{name}\" needs exactly one of `connector`, `pause` or `respond`"),
                )
                .with_help(if kinds == 0 {
                    "add `connector = \"<name>\"` with its `config`, `pause = \"5m\"`, or `respond = { status = 200 }`"
                } else {
                    "split it into one step per action"
                }),
        );
    }
    let mut needs = BTreeSet::new();
    if !t.has("connector") {
        for key in ["config", "fuel", "timeout", "memory", "retry"] {
            if let Some(s) = t.key_span(key) {
                errors.push(source.error(s, format!("step \"{name}\": `{key}` applies only to connector steps")));
            }
        }
    }
    let retry = retry.and_then(|mut r| {
        let attempts = r.int("attempts", 1..=10, errors);
        let backoff = r.duration("backoff", Duration::ZERO..=MAX_BACKOFF, errors);
        let max_backoff = r.duration("max_backoff", Duration::ZERO..=MAX_BACKOFF, errors);
        if !r.has("attempts") {
            errors.push(
                source
                    .error(r.span.clone(), format!("step \"{name}\": retry needs `attempts`"))
                    .with_help("add `attempts = 3` (tries in all, the first included)"),
            );
        }
        r.finish(errors);
        let attempts = attempts?;
        let backoff = backoff.map_or(Duration::from_secs(1), Spanned::into_inner);
        let max_backoff = max_backoff.map_or(Duration::from_secs(60), Spanned::into_inner);
        if backoff > max_backoff {
            errors.push(source.error(
                attempts.span(),
                format!(
                    "step \"{name}\": retry.backoff ({}) is over retry.max_backoff ({})",
                    format_duration(backoff),
                    format_duration(max_backoff)
                ),
            ));
        }
        Some(RetryPolicy {
            attempts: attempts.into_inner() as u32,
            backoff,
            max_backoff,
        })
    });

    let action = if let Some(connector) = connector {
        check_connector(source, daemon, &connector, errors);
        let (config, keys, cfg_span) = match config {
            Some(c) => {
                let (v, keys) = document::config_json(c);
                (v, keys, c.span())
            }
            None => (Value::Object(Default::default()), Vec::new(), span.clone()),
        };
        let template = parse_template(source, &config, cfg_span.clone(), scope, errors);
        template.dependencies(&mut needs);
        let mut limits = l.step;
        if let Some(f) = fuel {
            limits.fuel = f.into_inner();
        }
        if let Some(d) = timeout {
            limits.timeout = d.into_inner();
        }
        if let Some(m) = memory {
            limits.memory = m.into_inner();
        }
        Some(Action::Connector {
            call: Box::new(ConnectorCall {
                connector: connector.into_inner(),
                literal_text: matches!(template, Template::Literal(_)).then(|| config.to_string().into()),
                config,
                template,
                location: Some(source.at(cfg_span.clone())),
                place: Some(t.place(cfg_span)),
                keys: Arc::new(keys),
            }),
            limits,
        })
    } else if let Some(pause) = pause {
        if pause.get_ref() == "until_resumed" {
            Some(Action::Pause(Pause::UntilResumed))
        } else {
            match document::duration_in(pause.get_ref(), &(Duration::ZERO..=MAX_WAIT)) {
                Ok(d) => Some(Action::Pause(Pause::For(d))),
                Err(e) => {
                    let mut e = e.error(source, pause.span(), &format!("step \"{name}\": pause"));
                    if let Some(h) = &mut e.help {
                        h.push_str(" (or \"until_resumed\" to wait for a resume)");
                    }
                    errors.push(e);
                    None
                }
            }
        }
    } else if let Some(mut respond) = respond {
        // A response ends with a final status: hyper answers a 1xx with a 500, and a 101
        // would leave the connection to a protocol nobody speaks.
        let status = respond.int("status", 200..=599, errors);
        let headers = respond.value::<BTreeMap<Spanned<String>, Spanned<String>>>(
            "headers",
            "a table of header names to text",
            errors,
        );
        if let Some(h) = &headers {
            check_respond_headers(source, respond.prefix(), h.get_ref(), errors);
        }
        let body = respond.get("body");
        // RFC 9110 §15.3.5, §15.3.6, §15.4.5: these carry no content; the listener would drop
        // a body (or, for a 205, send it against the rule).
        if let (Some(s), Some(b)) = (&status, &body)
            && matches!(*s.get_ref(), 204 | 205 | 304)
        {
            errors.push(
                source
                    .error(
                        b.span(),
                        format!("{}body: a {} response has no body", respond.prefix(), s.get_ref()),
                    )
                    .with_help("leave out `body`, or answer another status"),
            );
        }
        respond.finish(errors);
        let body = match body {
            Some(b) => {
                let t = parse_template(source, &document::config_json(b).0, b.span(), scope, errors);
                t.dependencies(&mut needs);
                t
            }
            None => Template::Literal(Arc::new(Value::Null)),
        };
        let headers = match headers {
            Some(h) => {
                let value = Value::Object(
                    h.get_ref()
                        .iter()
                        .map(|(k, v)| (k.get_ref().clone(), Value::String(v.get_ref().clone())))
                        .collect(),
                );
                let t = parse_template(source, &value, h.span(), scope, errors);
                t.dependencies(&mut needs);
                t
            }
            None => Template::Literal(Arc::new(Value::Object(Default::default()))),
        };
        Some(Action::Respond {
            status: status.map_or(200, |s| s.into_inner() as u16),
            headers,
            body,
        })
    } else {
        None
    };
    t.finish(errors);
    if errors.len() > before {
        return None;
    }
    Some(Step {
        name: name.to_string(),
        action: action?,
        on_error: match on_error.as_ref().map(|o| *o.get_ref()) {
            Some("continue") => OnError::Continue,
            _ => OnError::Fail,
        },
        retry,
        needs,
        place: None,
    })
}

/// Headers the listener writes for the response it frames: a flow's would contradict
/// them (a `content-length` other than the body's leaves its caller waiting).
const FRAMING_HEADERS: [&str; 8] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A `respond` step's headers as HTTP can carry them: names that are header names (RFC
/// 9110 §5.1), each once in any case, none the listener or flowd sets itself, and values
/// without control characters (what placeholders give is checked when the step runs).
fn check_respond_headers(
    source: &SourceFile,
    prefix: &str,
    headers: &BTreeMap<Spanned<String>, Spanned<String>>,
    errors: &mut ConfigErrors,
) {
    let key_path = |name: &str| {
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            format!("{prefix}headers.{name}")
        } else {
            format!("{prefix}headers.{name:?}")
        }
    };
    let mut seen: HashMap<String, (Range<usize>, &str)> = HashMap::new();
    for (name, value) in headers {
        let at = key_path(name.get_ref());
        if http::HeaderName::from_bytes(name.get_ref().as_bytes()).is_err() {
            errors.push(
                source
                    .error(name.span(), format!("{at}: not a header name"))
                    .with_help("a header name is letters, digits and any of !#$%&'*+-.^_`|~ (RFC 9110 §5.1)"),
            );
            continue;
        }
        let lower = name.get_ref().to_ascii_lowercase();
        if FRAMING_HEADERS.contains(&lower.as_str()) {
            errors.push(
                source
                    .error(
                        name.span(),
                        format!("{at}: `{lower}` is the listener's to set, for the body it sends"),
                    )
                    .with_help("leave it out: the listener frames each response itself"),
            );
        } else if lower == "x-flowd-job-id" {
            errors.push(source.error(
                name.span(),
                format!("{at}: `x-flowd-job-id` is flowd's own: the job id of the execution that answers"),
            ));
        }
        match seen.get(&lower) {
            Some((other, other_name)) => {
                // The table is walked in key order, not the file's.
                let (first, (again, again_name)) = if other.start < name.span().start {
                    (other.clone(), (name.span(), name.get_ref().as_str()))
                } else {
                    (name.span(), (other.clone(), *other_name))
                };
                errors.push(
                    source
                        .error(
                            again,
                            format!(
                                "{}: the header `{lower}` is set twice (header names ignore case)",
                                key_path(again_name)
                            ),
                        )
                        .with_label("again here")
                        .with_related(source.related(first, "first here")),
                );
            }
            None => {
                seen.insert(lower, (name.span(), name.get_ref().as_str()));
            }
        }
        if let Some((at_char, what)) = header_control(value.get_ref()) {
            errors.push(source.error(
                value.span(),
                format!("{at}: the value holds {what} at character {at_char}, which a header cannot carry"),
            ));
        }
    }
}

/// The first character of `value` a header cannot carry, as its position (from 1) and a
/// name for it: a control character other than tab (RFC 9110 §5.5; a CR or LF would end
/// the header, and start another).
pub fn header_control(value: &str) -> Option<(usize, String)> {
    let (i, c) = value
        .chars()
        .enumerate()
        .find(|&(_, c)| (c < ' ' && c != '\t') || c == '\u{7f}')?;
    let name = match c {
        '\r' => "a carriage return (CR)".to_string(),
        '\n' => "a line feed (LF)".to_string(),
        '\0' => "a NUL byte".to_string(),
        c => format!("the control character U+{:04X}", c as u32),
    };
    Some((i + 1, name))
}

/// Adds the daemon's cap as a `help` to the range error just reported for a step `key`.
fn cap_help(t: &Table, key: &str, errors: &mut ConfigErrors, help: impl FnOnce() -> String) {
    let prefix = format!("{}{key} must be", t.prefix());
    if let Some(e) = errors.0.last_mut()
        && e.message.starts_with(&prefix)
        && !["string", "integer", "float", "boolean", "date-time", "array", "table"]
            .iter()
            .any(|k| e.message.ends_with(k))
        && e.help.is_none()
    {
        e.help = Some(help());
    }
}

/// Parses placeholders in `value`, locating each bad one inside `span` of the file.
fn parse_template(
    source: &SourceFile,
    value: &Value,
    span: Range<usize>,
    scope: &dyn Scope,
    errors: &mut ConfigErrors,
) -> Template {
    let mut problems: Vec<PlaceholderError> = Vec::new();
    let t = Template::parse(value, scope, &mut problems);
    for p in problems {
        let region = source.text.get(span.clone()).unwrap_or("");
        let at = region.find(p.text.as_str()).map_or(span.start, |i| span.start + i);
        let len = if region.contains(p.text.as_str()) {
            p.text.len()
        } else {
            0
        };
        let mut e = source.error(at..at + len, p.message);
        if let Some(h) = p.help {
            e = e.with_help(h);
        }
        errors.push(e);
    }
    t
}

fn value_has_placeholder(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("{{"),
        Value::Array(a) => a.iter().any(value_has_placeholder),
        Value::Object(m) => m.values().any(value_has_placeholder),
        _ => false,
    }
}

/// TOML to JSON; dates and times become RFC 3339 strings.
pub fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}
