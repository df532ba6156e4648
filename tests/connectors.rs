//! Conformance of the example connectors (examples/connectors): the same greet logic in
//! Rust, JavaScript (componentize-js and componentize-qjs) and Python, each in both worlds,
//! through `flowd plugin check` and `flowd run`: the output, a log record with its
//! category, a config error at its path, a retryable step error and a trap.
//!
//! The Rust ones are built by tests/fixtures/build.rs; the others by
//! `examples/connectors/build.sh` (which `.ci/run` runs first) into `target/connectors`,
//! or the directory named by `FLOWD_CONNECTORS_DIR`.

mod support;

use serde_json::{Value, json};
use std::path::PathBuf;
use support::Setup;

/// Where `examples/connectors/build.sh` put the JavaScript and Python components.
fn built_dir() -> PathBuf {
    match std::env::var_os("FLOWD_CONNECTORS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/connectors"),
    }
}

/// The component of one build (`rust`, `js`, `qjs`, `python`) for one world.
fn component(build: &str, world: &str) -> PathBuf {
    if build == "rust" {
        return support::fixture(&format!("example-rust-{world}"));
    }
    let path = built_dir().join(format!("{build}-{world}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the example connectors with examples/connectors/build.sh",
        path.display()
    );
    path
}

/// `flowd run --json` of `flow` with `input` and the build's two connectors as `greet`
/// and `greet-trigger`: the exit code, the report (or Null) and what else it said.
fn run(setup: &Setup, build: &str, flow: &str, input: &Value) -> (i32, Value, String) {
    let flow = setup.flow("greet", flow);
    let action = format!("greet={}", component(build, "action").display());
    let trigger = format!("greet-trigger={}", component(build, "trigger").display());
    let out = setup.run_raw(
        &flow,
        Some(input),
        &["--json", "--connector", &action, "--connector", &trigger],
    );
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    // Without a report, stdout holds the load errors as JSON lines.
    let mut said = String::from_utf8_lossy(&out.stderr).into_owned();
    if report.is_null() {
        said.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    (out.status.code().unwrap(), report, said)
}

const ACTION_FLOW: &str = r#"
[flow]
name = "greet"

[trigger.manual]

[[steps]]
name = "hello"
connector = "greet"
config = { greeting = "Hi", name = "{{ trigger.body.name }}" }
"#;

const TRIGGER_FLOW: &str = r#"
[flow]
name = "greet"

[trigger.http]
path = "/hooks/greet"
method = "POST"

[trigger]
connector = "greet-trigger"
config = { greeting = "Hey" }

[[steps]]
name = "hello"
connector = "greet"
config = { name = "{{ trigger.name }}" }
"#;

/// The log records of one call (a step's last try, or the trigger's call).
fn logs(call: &Value) -> &Vec<Value> {
    call["logs"].as_array().unwrap_or_else(|| panic!("no logs in {call:#}"))
}

/// What each build's trap summary must say about a payload without a name.
fn trap_words(build: &str) -> &'static [&'static str] {
    match build {
        "rust" => &["the config has no name"],
        "python" => &["KeyError", "'name'"],
        "qjs" => &["toUpperCase"],
        _ => &["expected a string"],
    }
}

fn conformance(build: &str) {
    for world in ["action", "trigger"] {
        let out = support::flowd()
            .args(["plugin", "check"])
            .arg(component(build, world))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{build} {world}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("world:    flowd:connector/{world}-connector")),
            "{text}"
        );
        assert!(text.contains("can run:  yes"), "{text}");
    }

    let setup = Setup::new("");
    // The action: output, and a log record with its category.
    let (code, report, err) = run(&setup, build, ACTION_FLOW, &json!({"name": "ada"}));
    assert_eq!(code, 0, "{build}: {report:#}{err}");
    let hello = support::step(&report, "hello");
    assert_eq!(hello["output"], json!({"message": "Hi, ADA!"}), "{build}");
    let record = &logs(&hello["tries"][0])[0];
    assert_eq!(record["category"], "greet", "{build}: {record}");
    assert_eq!(record["level"], "info", "{build}: {record}");
    assert_eq!(record["message"], "greeting ADA in greet", "{build}: {record}");

    // A retryable step error, with the connector's code.
    let (code, report, err) = run(&setup, build, ACTION_FLOW, &json!({"name": "busy"}));
    assert_eq!(code, 1, "{build}: {err}");
    let error = &support::step(&report, "hello")["error"];
    assert_eq!(error["kind"], "connector", "{build}: {error}");
    assert_eq!(error["code"], "busy", "{build}: {error}");
    assert_eq!(error["retryable"], true, "{build}: {error}");

    // A trap, summarised in the guest's language.
    let nameless = ACTION_FLOW.replace(", name = \"{{ trigger.body.name }}\"", "");
    let (code, report, err) = run(&setup, build, &nameless, &json!({"name": "ada"}));
    assert_eq!(code, 1, "{build}: {err}");
    let error = &support::step(&report, "hello")["error"];
    assert_eq!(error["kind"], "trap", "{build}: {error}");
    let message = error["message"].as_str().unwrap();
    for word in trap_words(build) {
        assert!(
            message.contains(word),
            "{build}: {word:?} not in the trap summary {message:?}"
        );
    }

    // A config error at its path, before anything runs.
    let bad = ACTION_FLOW.replace("greeting = \"Hi\"", "greeting = 5");
    let (code, _, err) = run(&setup, build, &bad, &json!({"name": "ada"}));
    assert_eq!(code, 2, "{build}: {err}");
    assert!(
        err.contains("greeting: expected a string") || err.contains("`greeting`: expected a string"),
        "{build}: {err}"
    );

    // The trigger: the HTTP body becomes the payload the action greets.
    let (code, report, err) = run(&setup, build, TRIGGER_FLOW, &json!({"name": "grace"}));
    assert_eq!(code, 0, "{build}: {report:#}{err}");
    let trigger = &report["trigger"];
    assert_eq!(
        trigger["payload"],
        json!({"name": "GRACE", "message": "Hey, GRACE!"}),
        "{build}: {trigger:#}"
    );
    let record = &logs(&trigger["call"])[0];
    assert_eq!(record["category"], "greet", "{build}: {record}");
    assert_eq!(record["message"], "greeting GRACE in greet", "{build}: {record}");
    assert_eq!(
        support::step(&report, "hello")["output"],
        json!({"message": "Hello, GRACE!"}),
        "{build}"
    );

    // A dropped event runs nothing.
    let (_, report, err) = run(&setup, build, TRIGGER_FLOW, &json!({"name": "nobody"}));
    assert_eq!(report["trigger"]["dropped"], true, "{build}: {report:#}{err}");

    // The trigger's retryable error and its trap.
    let (code, report, err) = run(&setup, build, TRIGGER_FLOW, &json!({"name": "busy"}));
    assert_eq!(code, 1, "{build}: {err}");
    let error = &report["trigger"]["call"]["error"];
    assert_eq!(error["kind"], "connector", "{build}: {report:#}");
    assert_eq!(error["code"], "busy", "{build}: {error}");
    assert_eq!(error["retryable"], true, "{build}: {error}");
    let (code, report, err) = run(&setup, build, TRIGGER_FLOW, &json!({"other": 1}));
    assert_eq!(code, 1, "{build}: {err}");
    let error = &report["trigger"]["call"]["error"];
    assert_eq!(error["kind"], "trap", "{build}: {report:#}");

    // The trigger's config error at its path.
    let bad = TRIGGER_FLOW.replace("greeting = \"Hey\"", "greeting = [1]");
    let (code, _, err) = run(&setup, build, &bad, &json!({"name": "ada"}));
    assert_eq!(code, 2, "{build}: {err}");
    assert!(
        err.contains("greeting") && err.contains("expected a string"),
        "{build}: {err}"
    );
}

#[test]
fn rust() {
    conformance("rust");
}

#[test]
fn javascript_componentize_js() {
    conformance("js");
}

#[test]
fn javascript_componentize_qjs() {
    conformance("qjs");
}

#[test]
fn python_componentize_py() {
    conformance("python");
}

/// `flowd plugin check` of a built file with an empty cache: exit code, stdout, and
/// whether anything was compiled into the cache.
fn check_uncached(file: &str) -> (i32, String, bool) {
    let cache = tempfile::tempdir().unwrap();
    let path = built_dir().join(file);
    assert!(
        path.is_file(),
        "{} is missing: run examples/connectors/build.sh",
        path.display()
    );
    let out = support::flowd()
        .env("XDG_CACHE_HOME", cache.path())
        .args(["plugin", "check"])
        .arg(path)
        .output()
        .unwrap();
    let compiled = walk(cache.path())
        .iter()
        .any(|f| f.extension().is_some_and(|e| e == "cwasm"));
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        compiled,
    )
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() { walk(&p) } else { vec![p] }
        })
        .collect()
}

#[test]
fn componentize_qjs_without_sync_is_told_to_add_it_before_compiling() {
    let (code, text, compiled) = check_uncached("qjs-async-action.wasm");
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("can run:  no: uses the component-model async ABI (`task.cancel`), which this host does not run: build it synchronously (componentize-qjs: add `--sync`)"),
        "{text}"
    );
    assert!(!compiled, "compiled before refusing");
}

#[test]
fn componentize_js_with_its_default_http_is_told_to_disable_it_before_compiling() {
    let (code, text, compiled) = check_uncached("js-default-action.wasm");
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("compile:  skipped: this host refuses its imports"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("wasi:http/outgoing-handler@"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("not offered: componentize-js includes wasi:http unless told not to: rebuild with `--disable http fetch-event`"),
        "{line}"
    );
    assert!(!text.contains("list the origins it may call"), "{text}");
    assert!(!compiled, "compiled before refusing");
}

#[test]
fn a_cold_compile_of_a_large_component_shows_progress_on_stderr() {
    let cache = tempfile::tempdir().unwrap();
    let qjs = component("qjs", "action");
    let check = || {
        let out = support::flowd()
            .env("XDG_CACHE_HOME", cache.path())
            .args(["plugin", "check"])
            .arg(&qjs)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = check();
    let line = first
        .lines()
        .find(|l| l.starts_with("compiling "))
        .unwrap_or_else(|| panic!("no progress line in {first:?}"));
    let rest = line
        .strip_prefix(&format!("compiling {} (1.5 MiB)… ", qjs.display()))
        .unwrap_or_else(|| panic!("{line}"));
    let (secs, tail) = rest.split_once(" s").unwrap_or_else(|| panic!("{line}"));
    assert!(secs.parse::<f64>().is_ok(), "{line}");
    assert_eq!(tail, ", cached", "{line}");
    assert!(!check().contains("compiling"), "a cached load is silent");

    // `run` names the connector; a small component compiles without a word.
    let setup = Setup::new("");
    std::fs::write(
        setup.path("flowd.toml"),
        std::fs::read_to_string(setup.config()).unwrap().replace(
            &support::cache_dir().join("flowd").display().to_string(),
            &setup.path("fresh").display().to_string(),
        ),
    )
    .unwrap();
    let (code, _, err) = run(&setup, "qjs", ACTION_FLOW, &json!({"name": "ada"}));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("compiling greet (1.5 MiB)… "), "{err}");
    let small = setup.flow("small", &support::one_step("echo", "{}", ""));
    let out = setup.run_raw(&small, None, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("compiling"));
}
