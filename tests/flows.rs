//! Whole flows through `flowd run`: placeholders between steps, `on_error`, skipped
//! dependents, the flow's allocated time, pauses, respond, and the command's own errors.

mod support;

use serde_json::json;
use support::{Setup, step};

#[test]
fn continue_on_error_skips_dependents_and_ends_partially_executed() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "p",
        r#"
[flow]
name = "p"
[trigger.manual]

[[steps]]
name = "flaky"
connector = "fail"
on_error = "continue"

[[steps]]
name = "uses_flaky"
connector = "echo"
config = { x = "{{ steps.flaky.value }}" }

[[steps]]
name = "uses_dependent"
connector = "echo"
config = { y = "{{ steps.uses_flaky.config }}" }

[[steps]]
name = "independent"
connector = "echo"
config = { z = "{{ trigger.body.z }}" }
"#,
    );
    let (code, r) = setup.run(&flow, Some(&json!({"z": 3})));
    assert_eq!(code, 1);
    assert_eq!(r["status"], "partially_executed");
    assert_eq!(step(&r, "flaky")["status"], "failed");
    assert_eq!(step(&r, "uses_flaky")["status"], "skipped");
    assert_eq!(step(&r, "uses_flaky")["note"], "needs steps.flaky, which failed");
    assert_eq!(step(&r, "uses_dependent")["status"], "skipped");
    assert_eq!(
        step(&r, "uses_dependent")["note"],
        "needs steps.uses_flaky, which was skipped"
    );
    assert_eq!(step(&r, "independent")["status"], "success");
    assert_eq!(step(&r, "independent")["output"]["config"], json!({"z": 3}));
}

#[test]
fn a_failed_step_fails_the_execution_and_skips_the_rest() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "f",
        "[flow]\nname = \"f\"\n[trigger.manual]\n\n[[steps]]\nname = \"a\"\nconnector = \"fail\"\n\n[[steps]]\nname = \"b\"\nconnector = \"echo\"\n",
    );
    let (code, r) = setup.run(&flow, None);
    assert_eq!(code, 1);
    assert_eq!(r["status"], "failed");
    assert_eq!(step(&r, "b")["status"], "skipped");
    assert_eq!(step(&r, "b")["note"], "step \"a\" failed");
}

#[test]
fn the_flow_timeout_interrupts_the_running_step_and_rejects() {
    let setup = Setup::new("max_fuel = 10_000_000_000_000");
    let flow = setup.flow(
        "slow",
        r#"
[flow]
name = "slow"
timeout = "300ms"
[trigger.manual]

[[steps]]
name = "spin"
connector = "looper"
fuel = 10_000_000_000_000
timeout = "20s"

[[steps]]
name = "after"
connector = "echo"
"#,
    );
    let (code, r) = setup.run(&flow, None);
    assert_eq!(code, 1);
    assert_eq!(r["status"], "rejected");
    let spin = step(&r, "spin");
    assert_eq!(spin["status"], "failed");
    assert_eq!(spin["error"]["kind"], "timeout");
    assert!(
        spin["error"]["message"]
            .as_str()
            .unwrap()
            .contains("flow's timeout of 300ms"),
        "{spin:#}"
    );
    assert!(spin["duration"].as_f64().unwrap() < 5.0);
    assert_eq!(step(&r, "after")["status"], "skipped");
}

#[test]
fn a_missing_value_is_a_template_error() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "t",
        &support::one_step("echo", "{ id = \"{{ trigger.body.order.id }}\" }", ""),
    );
    let (_, r) = setup.run(&flow, Some(&json!({"order": {}})));
    let s = step(&r, "only");
    assert_eq!(s["error"]["kind"], "template");
    assert_eq!(
        s["error"]["message"],
        "placeholder {{ trigger.body.order.id }}: trigger.body.order has no key \"id\""
    );
    assert!(s["tries"].as_array().unwrap().is_empty(), "the connector is not called");
}

#[test]
fn pauses_and_responds() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "pr",
        r#"
[flow]
name = "pr"
[trigger.http]
path = "/pr"

[[steps]]
name = "wait"
pause = "50ms"

[[steps]]
name = "reply"
respond = { status = 201, headers = { "x-id" = "{{ trigger.body.id }}" }, body = { got = "{{ trigger.body }}" } }
"#,
    );
    let (code, r) = setup.run(&flow, Some(&json!({"id": 9})));
    assert_eq!(code, 0, "{r:#}");
    assert!(step(&r, "wait")["output"]["resumed_at"].is_string(), "{r:#}");
    assert!(step(&r, "wait")["duration"].as_f64().unwrap() >= 0.05);
    assert_eq!(
        r["response"],
        json!({"status": 201, "headers": {"x-id": "9"}, "body": {"got": {"id": 9}}})
    );

    let held = setup.flow(
        "held",
        "[flow]\nname = \"held\"\n[trigger.manual]\n\n[[steps]]\nname = \"gate\"\npause = \"until_resumed\"\n\n[[steps]]\nname = \"b\"\nconnector = \"echo\"\n",
    );
    let (code, r) = setup.run(&held, None);
    assert_eq!(code, 1);
    assert_eq!(r["status"], "paused");
    assert_eq!(step(&r, "gate")["status"], "paused");
    assert_eq!(step(&r, "b")["status"], "pending");
}

#[test]
fn bad_input_and_unknown_files_are_reported() {
    let setup = Setup::new("");
    let flow = setup.flow("t", &support::one_step("echo", "{}", ""));
    std::fs::write(setup.path("bad.json"), "{\"a\": 1,}").unwrap();
    let out = support::flowd()
        .arg("run")
        .arg(&flow)
        .arg("--config")
        .arg(setup.config())
        .arg("--input")
        .arg(setup.path("bad.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json: not JSON: trailing comma at line 1 column 9"),
        "{err}"
    );
    assert!(!err.contains("(at line"), "the place is said once: {err}");
    // A byte order mark (a Windows editor's) is not an error (RFC 8259 §8.1).
    let (code, r) = setup.run_text(&flow, "\u{feff}{\"a\": 1}");
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["trigger"]["payload"]["body"], json!({"a": 1}), "{r}");

    let out = support::flowd()
        .arg("run")
        .arg(setup.path("flows/none.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("none.toml: cannot read file"));
}

#[test]
fn a_component_file_can_be_used_directly_with_connector() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("f.toml");
    std::fs::write(&flow, support::one_step("mine", "{ k = 1 }", "")).unwrap();
    let out = support::flowd()
        .arg("run")
        .arg(&flow)
        .arg("--json")
        .arg("--connector")
        .arg(format!("mine={}", support::fixture("echo").display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(step(&r, "only")["output"]["config"], json!({"k": 1}));
    assert_eq!(r["environment"], "local");
}
