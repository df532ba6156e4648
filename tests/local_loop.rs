//! The connector author's local loop for triggers: `flowd run` hands an http trigger a
//! raw request (method, headers, query, a body of any bytes), and `flowd validate
//! --connector NAME=FILE` checks flows against a component not yet in the config.

mod support;

use serde_json::json;
use support::Setup;

const HTTP_FLOW: &str = r#"
[flow]
name = "hook"

[trigger.http]
path = "/hooks/signed"
method = "POST"

[trigger]
connector = "trigger-echo"

[[steps]]
name = "only"
connector = "echo"
"#;

#[test]
fn run_sends_an_http_event_with_method_headers_query_and_a_raw_body() {
    let setup = Setup::new("");
    let flow = setup.flow("hook", HTTP_FLOW);
    let body = setup.path("form.txt");
    std::fs::write(&body, "name=ada&sig=1\n").unwrap();
    let out = setup.run_raw(
        &flow,
        None,
        &[
            "--json",
            "--method",
            "post",
            "--header",
            "X-Signature: sha256=abc",
            "--header",
            "Content-Type: application/x-www-form-urlencoded",
            "--query",
            "a=1&b=2",
            "--body",
            body.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report["trigger"]["payload"]["event"],
        json!({
            "kind": "http",
            "method": "POST",
            "path": "/hooks/signed",
            "query": "a=1&b=2",
            "headers": [["x-signature", "sha256=abc"], ["content-type", "application/x-www-form-urlencoded"]],
            "body": "name=ada&sig=1\n",
        }),
        "{report:#}"
    );
}

#[test]
fn http_event_flags_need_an_http_trigger_and_well_formed_headers() {
    let setup = Setup::new("");
    // `flowd run` must refuse (exit 2); what it said.
    let refused = |flow: &std::path::Path, input: Option<&serde_json::Value>, args: &[&str]| {
        let out = setup.run_raw(flow, input, args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        err
    };
    let manual = setup.flow("m", &support::one_step("echo", "{}", ""));
    let err = refused(&manual, None, &["--query", "a=1"]);
    assert!(
        err.contains("--query needs a flow with an http trigger; \"t\" has none"),
        "{err}"
    );

    let hook = setup.flow("hook", HTTP_FLOW);
    let err = refused(&hook, None, &["--header", "no colon"]);
    assert!(err.contains("expected `Name: value`"), "{err}");

    let err = refused(&hook, Some(&json!({})), &["--body", "-"]);
    assert!(err.contains("cannot be used with"), "{err}");

    // A method the trigger does not take never reaches it from the daemon (405): nor here.
    let err = refused(&hook, None, &["--method", "PUT"]);
    assert!(
        err.contains("--method PUT: flow \"hook\" takes POST requests (the daemon answers any other method 405)"),
        "{err}"
    );
}

#[test]
fn input_is_the_body_of_an_http_event_the_flags_describe_once_or_count_times() {
    let setup = Setup::new("");
    let hook = setup.flow("hook", HTTP_FLOW);
    let event = |args: &[&str]| {
        let out = setup.run_raw(&hook, Some(&json!({"id": 7})), args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    // --input's JSON went nowhere once a flag described the request: the body was empty.
    let report: serde_json::Value = serde_json::from_str(&event(&["--json", "--query", "a=1"])).unwrap();
    assert_eq!(
        report["trigger"]["payload"]["event"],
        json!({
            "kind": "http",
            "method": "POST",
            "path": "/hooks/signed",
            "query": "a=1",
            "headers": [["content-type", "application/json"]],
            "body": "{\"id\":7}",
        }),
        "{report:#}"
    );
    // A content type given is kept.
    let report: serde_json::Value =
        serde_json::from_str(&event(&["--json", "--header", "Content-Type: application/vnd.x+json"])).unwrap();
    assert_eq!(
        report["trigger"]["payload"]["event"]["headers"],
        json!([["content-type", "application/vnd.x+json"]])
    );
    // --count runs the event the flags describe, each time (it ran the trigger's default).
    let dir = setup.path("data");
    let out = event(&["--count", "3", "--query", "n=3", "--data-dir", dir.to_str().unwrap()]);
    assert_eq!(out.lines().filter(|l| l.starts_with("finished ")).count(), 3, "{out}");
    let offline = |args: &[&str]| -> serde_json::Value {
        let out = support::flowd()
            .args(args)
            .arg("--json")
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let listed = offline(&["executions", "list"]);
    let jobs: Vec<&str> = listed["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(jobs.len(), 3, "{listed}");
    for job in jobs {
        let shown = offline(&["executions", "show", job]);
        assert_eq!(shown["trigger"]["event"]["query"], "n=3", "{shown}");
    }
}

#[test]
fn validate_takes_a_connector_from_a_file() {
    let setup = Setup::new("");
    std::fs::write(
        setup.path("flows/greet.toml"),
        "[flow]\nname = \"greet\"\n\n[trigger.manual]\n\n[[steps]]\nname = \"hi\"\nconnector = \"fresh\"\nconfig = { invalid = 1 }\n",
    )
    .unwrap();
    let validate = |extra: &[&str]| {
        let out = support::flowd()
            .arg("validate")
            .arg("--config")
            .arg(setup.config())
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = validate(&[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("fresh"), "{text}");
    // The component is loaded and asked about the step's config: echo rejects `invalid`.
    let connector = format!("fresh={}", support::fixture("echo").display());
    let (code, text) = validate(&["--connector", &connector]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("echo rejects this key"), "{text}");
    std::fs::write(
        setup.path("flows/greet.toml"),
        "[flow]\nname = \"greet\"\n\n[trigger.manual]\n\n[[steps]]\nname = \"hi\"\nconnector = \"fresh\"\n",
    )
    .unwrap();
    let (code, text) = validate(&["--connector", &connector]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("ok: "), "{text}");
}

#[test]
fn run_json_prints_load_errors_as_json_lines() {
    let setup = Setup::new("");
    let flow = setup.flow("t", &support::one_step("nope", "{}", ""));
    let out = setup.run_raw(&flow, None, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["reason"], "config-error", "{stdout}");
    assert!(lines[0]["message"].as_str().unwrap().contains("nope"), "{stdout}");
    assert_eq!(lines[1]["reason"], "summary", "{stdout}");
}

#[test]
fn the_trigger_line_shows_its_time_fuel_and_error() {
    let setup = Setup::new("");
    let flow = setup.flow("hook", HTTP_FLOW);
    let out = setup.run_raw(&flow, Some(&json!({"a": 1})), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let line = stdout.lines().find(|l| l.trim_start().starts_with("trigger")).unwrap();
    assert!(line.contains(" ms  fuel ") || line.contains(" s  fuel "), "{line}");

    let setup = Setup::new("");
    let failing = HTTP_FLOW.replace("connector = \"trigger-echo\"", "connector = \"greet\"");
    let flow = setup.flow("hook", &failing);
    let greet = format!("greet={}", support::fixture("example-rust-trigger").display());
    let out = setup.run_raw(&flow, Some(&json!({"name": "busy"})), &["--connector", &greet]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with("trigger"))
        .unwrap();
    assert!(lines[at].contains("fuel "), "{stdout}");
    assert_eq!(
        lines[at + 1].trim(),
        "error: connector (busy): the greeter is busy, try again",
        "{stdout}"
    );
}

#[test]
fn a_skipped_step_shows_the_connector_it_would_have_called() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "f",
        "[flow]\nname = \"f\"\n[trigger.manual]\n\n[[steps]]\nname = \"first\"\nconnector = \"fail\"\n\n[[steps]]\nname = \"second\"\nconnector = \"echo\"\n\n[[steps]]\nname = \"wait\"\npause = \"1h\"\n",
    );
    let out = setup.run_raw(&flow, None, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |step: &str| -> Vec<&str> {
        let l = stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(step))
            .unwrap_or_else(|| panic!("no line for {step} in\n{stdout}"));
        l.split_whitespace().collect()
    };
    assert_eq!(line("first")[..4], ["FAIL", "first", "fail", "failed"], "{stdout}");
    assert_eq!(line("second")[..4], ["skip", "second", "echo", "skipped"], "{stdout}");
    assert_eq!(line("wait")[..4], ["skip", "wait", "pause", "skipped"], "{stdout}");
}
