//! Executions recorded by `flowd run --data-dir` in the redb store, and read back offline
//! with `flowd executions list|show` and `flowd logs`.

mod support;

use serde_json::{Value, json};
use support::Setup;

use support::data_cli as cli;

fn run_recorded(setup: &Setup, flow: &std::path::Path, input: &Value) -> Value {
    support::run_recorded(setup, flow, input).1
}

#[test]
fn runs_are_recorded_with_steps_payloads_and_logs() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "rec",
        r#"
[flow]
name = "rec"
project = "p1"
[trigger.manual]

[[steps]]
name = "first"
connector = "echo"
config = { id = "{{ trigger.body.id }}" }

[[steps]]
name = "second"
connector = "fail"
on_error = "continue"
config = { message = "no luck" }

[[steps]]
name = "third"
connector = "echo"
config = { from = "{{ steps.second.x }}" }
"#,
    );
    let r1 = run_recorded(&setup, &flow, &json!({"id": 1}));
    let r2 = run_recorded(&setup, &flow, &json!({"id": 2}));
    assert_eq!(r2["status"], "partially_executed");

    let (code, out, err) = cli(&setup, &["executions", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    // The admin API's page: the rows, with their durations, and the next page's cursor.
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["next_cursor"], Value::Null, "{page}");
    let rows = page["executions"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|r| r["duration"].as_f64().is_some_and(|d| d >= 0.0)),
        "{page}"
    );
    assert_eq!(rows[0]["job_id"], r2["job_id"], "newest first");
    assert_eq!(rows[1]["job_id"], r1["job_id"]);
    let row = &rows[0];
    assert_eq!(row["status"], "partially_executed");
    assert_eq!(row["flow"], "rec");
    assert_eq!(row["project"], "p1");
    assert_eq!(row["trigger_kind"], "manual");
    assert_eq!(row["attempt"], 1);
    assert_eq!(row["steps_total"], 3);
    assert_eq!(row["steps_executed"], 2);
    assert_eq!(row["environment"], "test");
    assert_eq!(row["flow_version"], r2["flow_version"]);

    // Paging: everything older than the newest is the other one.
    let job2 = r2["job_id"].as_str().unwrap();
    let (_, out, _) = cli(&setup, &["executions", "list", "--json", "--before", job2]);
    let older: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(older["executions"].as_array().unwrap().len(), 1);
    assert_eq!(older["executions"][0]["job_id"], r1["job_id"]);
    // A full page names the next one's cursor, in JSON and under the table.
    let (_, out, _) = cli(&setup, &["executions", "list", "--json", "--limit", "1"]);
    let first: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(first["next_cursor"], r2["job_id"], "{first}");
    let (_, out, _) = cli(&setup, &["executions", "list", "--limit", "1"]);
    assert!(
        out.ends_with(&format!("more: add --cursor {job2} for the next page\n")),
        "{out}"
    );
    let (_, out, _) = cli(&setup, &["executions", "list", "--json", "--status", "success"]);
    let none: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(none["executions"].as_array().unwrap().len(), 0);

    let (code, out, err) = cli(&setup, &["executions", "show", job2, "--json"]);
    assert_eq!(code, 0, "{err}");
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["trigger"], json!({"kind": "manual", "body": {"id": 2}}));
    let steps = d["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0]["status"], "success");
    assert_eq!(steps[0]["config"], json!({"id": 2}));
    assert_eq!(steps[0]["output"]["config"], json!({"id": 2}));
    assert_eq!(steps[0]["input"]["trigger"]["body"], json!({"id": 2}));
    assert_eq!(steps[0]["connector"]["name"], "echo");
    assert_eq!(steps[1]["status"], "failed");
    assert_eq!(steps[1]["error"]["kind"], "connector");
    assert_eq!(steps[1]["error"]["message"], "no luck");
    assert_eq!(steps[2]["status"], "skipped");
    assert_eq!(steps[2]["note"], "needs steps.second, which failed");

    let (code, out, _) = cli(&setup, &["logs", "--json", "--job", job2]);
    assert_eq!(code, 0);
    let logs: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        logs.len(),
        2,
        "the step's record and the host's of the failure: {logs:?}"
    );
    assert_eq!(
        (
            &logs[1]["level"],
            &logs[1]["category"],
            &logs[1]["step"],
            &logs[1]["message"]
        ),
        (
            &json!("error"),
            &json!("step_failed"),
            &json!("second"),
            &json!("step \"second\" failed: connector (boom): no luck")
        )
    );
    assert_eq!(logs[0]["message"], "echo called");
    assert_eq!(logs[0]["step"], "first");
    assert_eq!(logs[0]["connector"], "echo");
    assert_eq!(logs[0]["flow"], "rec");
    assert_eq!(logs[0]["project"], "p1");
    assert_eq!(logs[0]["environment"], "test");
    let (_, out, _) = cli(&setup, &["logs", "--json", "--contains", "called"]);
    assert_eq!(out.lines().count(), 2, "both executions' records");
    let (_, out, _) = cli(&setup, &["logs", "--json", "--level", "warn"]);
    assert_eq!(out.lines().count(), 2, "each execution's failure, nothing else");
}

#[test]
fn reading_a_missing_data_dir_or_job_is_a_clear_error() {
    let setup = Setup::new("");
    let (code, _, err) = cli(&setup, &["executions", "list"]);
    assert_eq!(code, 2);
    assert!(err.contains("no flowd database there"), "{err}");
    let flow = setup.flow("t", &support::one_step("echo", "{}", ""));
    run_recorded(&setup, &flow, &json!(null));
    let (code, _, err) = cli(&setup, &["executions", "show", "01a206ad-8323-7527-8e3f-b446ca522af9"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no execution 01a206ad-8323-7527-8e3f-b446ca522af9"),
        "{err}"
    );
    let (code, _, err) = cli(&setup, &["executions", "show", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid job id \"nope\""), "{err}");
}

#[test]
fn a_trigger_payload_over_the_limit_fails_the_run_and_records_nothing() {
    let setup = Setup::new("max_payload = \"4KiB\"");
    let flow = setup.flow("t", &support::one_step("echo", "{}", ""));
    let (code, r) = support::run_recorded(&setup, &flow, &json!({"blob": "x".repeat(5000)}));
    assert_eq!((code, &r["status"]), (1, &json!("failed")));
    let note = r["steps"][0]["note"].as_str().unwrap();
    assert!(note.contains("trigger payload is 5"), "{note}");
    assert!(
        note.ends_with("over the 4096-byte limit (limits.max_payload); nothing was recorded"),
        "{note}"
    );
    let job = r["job_id"].as_str().unwrap();
    let (code, _, err) = cli(&setup, &["executions", "show", job]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("no execution {job}")), "{err}");
}

/// A connector that logs a new category at every run (here `log`, its category from the
/// trigger) adds nothing to the redb store's names table, which is never pruned: the
/// category is stored in the record, and `flowd logs --category` still finds each one.
#[test]
fn a_category_per_run_adds_no_names_to_the_redb_store() {
    let setup = Setup::embedded("", "");
    let flow = setup.flow(
        "cats",
        &support::one_step(
            "log",
            r#"{ category = "req-{{ trigger.body.id }}", message = "record {{ trigger.body.id }}" }"#,
            "",
        ),
    );
    let names = || {
        let store = flowd::store::RedbStore::open(&setup.path("data"), 1 << 20).unwrap();
        let space = store.space().unwrap();
        space.tables.iter().find(|t| t.name == "names").map(|t| t.entries)
    };
    let run = |id: u32| {
        let (code, r) = support::run_recorded(&setup, &flow, &json!({ "id": id }));
        assert_eq!((code, &r["status"]), (0, &json!("success")), "{r}");
    };
    run(1);
    let after_one = names();
    assert!(after_one.is_some_and(|n| n > 0), "{after_one:?}");
    for id in 2..=5 {
        run(id);
    }
    assert_eq!(names(), after_one, "four more runs, four more categories");
    for id in 1..=5 {
        let (code, out, err) = cli(&setup, &["logs", "--json", "--category", &format!("req-{id}")]);
        assert_eq!(code, 0, "{err}");
        let logs: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert_eq!(logs[0]["message"], format!("record {id}"));
    }
}
