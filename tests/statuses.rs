//! Every execution status and transition of the contract, driven through the real
//! binary with real fixture components and recorded in a real store (a redb data
//! directory, or PostgreSQL with `FLOWD_TEST_BACKEND=postgres`):
//! success, failed, partially_executed, rejected, paused (resumed by time, by a call,
//! and across a restart), automatic retry that succeeds, manual retries from the failed
//! step and from the start, and each of the four refusals.

mod support;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use support::{Setup, data_cli, run_recorded, show};

fn config_path(setup: &Setup) -> String {
    setup.config().to_str().unwrap().to_string()
}

fn job(report: &Value) -> String {
    report["job_id"].as_str().unwrap().to_string()
}

/// The stored step rows of one attempt, by name.
fn rows(detail: &Value, attempt: u64) -> Vec<Value> {
    detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["attempt"] == attempt)
        .cloned()
        .collect()
}

fn retry(setup: &Setup, job: &str, extra: &[&str]) -> (i32, String, String) {
    let cfg = config_path(setup);
    let mut args = vec!["executions", "retry", job, "--json", "--config", cfg.as_str()];
    args.extend_from_slice(extra);
    data_cli(setup, &args)
}

#[test]
fn success_failed_and_rejected_are_recorded() {
    let setup = Setup::new("max_fuel = 10_000_000_000_000");
    let ok = setup.flow(
        "ok",
        "[flow]\nname = \"ok\"\n[trigger.manual]\n[[steps]]\nname = \"a\"\nconnector = \"echo\"\n",
    );
    let (code, r) = run_recorded(&setup, &ok, &json!(1));
    assert_eq!(code, 0);
    let d = show(&setup, &job(&r));
    assert_eq!(d["execution"]["status"], "success");
    // The run's report and the stored detail give a step the same input.
    assert_eq!(
        r["steps"][0]["input"],
        json!({"trigger": {"kind": "manual", "body": 1}, "steps": {}})
    );
    assert_eq!(r["steps"][0]["input"], d["steps"][0]["input"]);

    let failing = setup.flow(
        "failing",
        "[flow]\nname = \"failing\"\n[trigger.manual]\n[[steps]]\nname = \"a\"\nconnector = \"fail\"\n[[steps]]\nname = \"b\"\nconnector = \"echo\"\n",
    );
    let (_, r) = run_recorded(&setup, &failing, &json!(1));
    let d = show(&setup, &job(&r));
    assert_eq!(d["execution"]["status"], "failed");
    assert_eq!(rows(&d, 1)[0]["status"], "failed");
    assert_eq!(rows(&d, 1)[1]["status"], "skipped");
    assert_eq!(r["steps"][0]["input"]["trigger"]["body"], 1);
    assert!(
        r["steps"][1].get("input").is_none(),
        "a skipped step had no input: {r:#}"
    );

    let slow = setup.flow(
        "slow",
        "[flow]\nname = \"slow\"\ntimeout = \"200ms\"\n[trigger.manual]\n[[steps]]\nname = \"spin\"\nconnector = \"looper\"\nfuel = 10_000_000_000_000\n[[steps]]\nname = \"b\"\nconnector = \"echo\"\n",
    );
    let (_, r) = run_recorded(&setup, &slow, &json!(1));
    let d = show(&setup, &job(&r));
    assert_eq!(d["execution"]["status"], "rejected");
    let spin = &rows(&d, 1)[0];
    assert_eq!(spin["error"]["kind"], "timeout");
    assert_eq!(rows(&d, 1)[1]["status"], "skipped");
}

#[test]
fn automatic_retry_that_succeeds_leaves_success_with_every_try_visible() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "auto",
        "[flow]\nname = \"auto\"\n[trigger.manual]\n[[steps]]\nname = \"f\"\nconnector = \"flaky\"\nconfig = { fail_times = 2, key = \"auto\" }\nretry = { attempts = 3, backoff = \"10ms\", max_backoff = \"40ms\" }\n",
    );
    let (code, r) = run_recorded(&setup, &flow, &json!(1));
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["status"], "success");
    let d = show(&setup, &job(&r));
    assert_eq!(d["execution"]["status"], "success");
    let f = &rows(&d, 1)[0];
    assert_eq!(f["status"], "success");
    assert_eq!(f["output"], json!({"calls": 3}));
    let tries = f["tries"].as_array().unwrap();
    assert_eq!(tries.len(), 3);
    assert_eq!(tries[0]["error"]["code"], "flaky");
    assert_eq!(tries[1]["error"]["retryable"], true);
    assert!(tries[2]["error"].is_null());
}

#[test]
fn a_timed_pause_resumes_at_its_due_time() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "nap",
        "[flow]\nname = \"nap\"\n[trigger.manual]\n[[steps]]\nname = \"wait\"\npause = \"150ms\"\n[[steps]]\nname = \"after\"\nconnector = \"echo\"\nconfig = { w = \"{{ steps.wait.resumed_at }}\" }\n",
    );
    let (code, r) = run_recorded(&setup, &flow, &json!(1));
    assert_eq!(code, 0, "{r:#}");
    let d = show(&setup, &job(&r));
    let steps = rows(&d, 1);
    assert_eq!(steps[0]["status"], "success");
    assert!(steps[0]["duration"].as_f64().unwrap() >= 0.15);
    assert_eq!(steps[1]["status"], "success");
    assert_eq!(steps[1]["config"]["w"], steps[0]["output"]["resumed_at"]);
}

#[test]
fn a_pause_until_resumed_waits_for_the_call() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "gate",
        "[flow]\nname = \"gate\"\n[trigger.manual]\n[[steps]]\nname = \"a\"\nconnector = \"echo\"\n[[steps]]\nname = \"hold\"\npause = \"until_resumed\"\n[[steps]]\nname = \"b\"\nconnector = \"echo\"\nconfig = { from_a = \"{{ steps.a.config }}\" }\n",
    );
    let (code, r) = run_recorded(&setup, &flow, &json!({"k": 1}));
    assert_eq!(code, 1);
    assert_eq!(r["status"], "paused");
    let j = job(&r);
    let d = show(&setup, &j);
    assert_eq!(d["execution"]["status"], "paused");
    assert_eq!(rows(&d, 1)[1]["status"], "paused");

    let cfg = config_path(&setup);
    let (code, out, err) = data_cli(&setup, &["executions", "resume", &j, "--json", "--config", &cfg]);
    assert_eq!(code, 0, "{out}{err}");
    let d = show(&setup, &j);
    assert_eq!(d["execution"]["status"], "success");
    let steps = rows(&d, 1);
    assert_eq!(steps[1]["status"], "success");
    assert!(steps[1]["output"]["resumed_at"].is_string());
    assert_eq!(steps[2]["status"], "success");
    assert_eq!(
        steps[2]["config"],
        json!({"from_a": {}}),
        "the output of a step before the pause is still there"
    );

    // A resumed execution is not paused any more.
    let (code, _, err) = data_cli(&setup, &["executions", "resume", &j, "--config", &cfg]);
    assert_eq!(code, 1);
    assert!(err.contains("is success, not paused"), "{err}");
}

#[test]
fn a_timed_pause_survives_a_restart() {
    let setup = Setup::new("");
    if setup.database.is_some() {
        // A shared store: the killed process's claims hold until they expire.
        let toml = std::fs::read_to_string(setup.config()).unwrap() + "lease = \"1s\"\n";
        std::fs::write(setup.config(), toml).unwrap();
    }
    let flow = setup.flow(
        "long-nap",
        "[flow]\nname = \"long-nap\"\n[trigger.manual]\n[[steps]]\nname = \"wait\"\npause = \"700ms\"\n[[steps]]\nname = \"after\"\nconnector = \"echo\"\n",
    );
    let mut child = support::flowd()
        .arg("run")
        .arg(&flow)
        .args(["--config", &config_path(&setup), "--count", "2"])
        .args(support::store_flags(&setup, &["run"]))
        .envs(setup.env())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("accepted ") && second.starts_with("accepted "),
        "{first} / {second}"
    );
    // Both are paused (or about to be) now; the process dies before they are due.
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();

    // Recovery, again while what the killed process claimed is still held (`left …`).
    let mut out = String::new();
    for _ in 0..50 {
        let (code, more, err) = data_cli(
            &setup,
            &[
                "run",
                flow.to_str().unwrap(),
                "--config",
                &config_path(&setup),
                "--count",
                "0",
            ],
        );
        assert_eq!(code, 0, "{more}{err}");
        out.push_str(&more);
        if !more.contains("left ") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for line in [first, second] {
        let j = line.trim_start_matches("accepted ");
        assert!(out.contains(&format!("recovered {j} success")), "{out}");
        let d = show(&setup, j);
        assert_eq!(d["execution"]["status"], "success");
        assert_eq!(rows(&d, 1)[0]["status"], "success");
        assert_eq!(rows(&d, 1)[1]["status"], "success");
    }
}

#[test]
fn manual_retry_from_the_failed_step_and_from_the_start() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "retryable",
        "[flow]\nname = \"retryable\"\n[trigger.manual]\n[[steps]]\nname = \"first\"\nconnector = \"flaky\"\nconfig = { key = \"first\", fail_times = 0 }\n[[steps]]\nname = \"second\"\nconnector = \"flaky\"\nconfig = { key = \"second\", fail_times = 1 }\n[[steps]]\nname = \"third\"\nconnector = \"echo\"\nconfig = { got = \"{{ steps.first.calls }}\" }\n",
    );
    let (code, r) = run_recorded(&setup, &flow, &json!({"order": 7}));
    assert_eq!(code, 1);
    assert_eq!(r["status"], "failed");
    let j = job(&r);

    let (code, out, err) = retry(&setup, &j, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let d = show(&setup, &j);
    assert_eq!(d["execution"]["attempt"], 2);
    assert_eq!(d["execution"]["status"], "success");
    let a2 = rows(&d, 2);
    assert_eq!(a2[0]["status"], "success");
    assert_eq!(a2[0]["reused_from"], 1);
    assert_eq!(a2[0]["note"], "output reused from attempt 1");
    assert_eq!(a2[1]["output"], json!({"calls": 2}));
    assert_eq!(
        a2[2]["config"],
        json!({"got": 1}),
        "the reused output feeds later steps"
    );
    assert_eq!(
        a2[2]["input"]["trigger"]["body"],
        json!({"order": 7}),
        "the stored trigger payload is reused"
    );
    assert_eq!(rows(&d, 1)[1]["status"], "failed", "attempt 1 stays as it was");
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (
            &attempts[0]["attempt"],
            &attempts[0]["status"],
            &attempts[0]["from_step"]
        ),
        (&json!(1), &json!("failed"), &json!(0))
    );
    assert_eq!(
        (
            &attempts[1]["attempt"],
            &attempts[1]["status"],
            &attempts[1]["from_step"]
        ),
        (&json!(2), &json!("success"), &json!(1))
    );
    assert!(attempts[1]["finished_at"].is_string());
    assert_eq!(
        std::fs::read_to_string(setup.path("state/first")).unwrap(),
        "1",
        "the first step did not run again"
    );

    // From the start: every step runs again in the new attempt.
    std::fs::remove_file(setup.path("state/second")).unwrap();
    let (_, r) = run_recorded(&setup, &flow, &json!({"order": 8}));
    let j = job(&r);
    let (code, out, err) = retry(&setup, &j, &["--from-start"]);
    assert_eq!(code, 0, "{out}{err}");
    let a2 = rows(&show(&setup, &j), 2);
    assert!(a2[0]["reused_from"].is_null());
    assert_eq!(a2[0]["output"], json!({"calls": 3}), "the first step ran again");
}

#[test]
fn a_retry_under_a_changed_flow_keeps_the_configs_earlier_attempts_ran_with() {
    let setup = Setup::new("");
    let text = |v: &str| {
        format!(
            "[flow]\nname = \"changing\"\n[trigger.manual]\n[[steps]]\nname = \"first\"\nconnector = \"echo\"\nconfig = {{ v = \"{v}\" }}\n[[steps]]\nname = \"second\"\nconnector = \"flaky\"\nconfig = {{ key = \"second-{v}\", fail_times = 1 }}\n"
        )
    };
    let flow = setup.flow("changing", &text("old"));
    let (code, r) = run_recorded(&setup, &flow, &json!({}));
    assert_eq!((code, &r["status"]), (1, &json!("failed")));
    let j = job(&r);
    let before = show(&setup, &j);
    let version = before["execution"]["flow_version"].clone();

    // The flow changes (a new version, the same trigger), then the execution is retried.
    setup.flow("changing", &text("new"));
    let (code, out, err) = retry(&setup, &j, &["--from-start"]);
    assert_eq!(code, 1, "{out}{err}");
    let d = show(&setup, &j);
    assert_ne!(d["execution"]["flow_version"], version, "the retry ran the new version");
    let a1 = rows(&d, 1);
    assert_eq!(
        a1[0]["config"],
        json!({"v": "old"}),
        "attempt 1 ran with the old config"
    );
    assert_eq!(a1[1]["config"], json!({"key": "second-old", "fail_times": 1}));
    assert_eq!(a1, rows(&before, 1), "attempt 1 reads as it did before the retry");
    let a2 = rows(&d, 2);
    assert_eq!(a2[0]["config"], json!({"v": "new"}));
    assert_eq!(a2[0]["output"]["config"], json!({"v": "new"}));

    // A second retry, from the failed step, reuses attempt 2's first step: its config is
    // the one that step ran with.
    setup.flow("changing", &text("newer"));
    let (code, out, err) = retry(&setup, &j, &[]);
    assert_eq!(code, 1, "{out}{err}");
    let d = show(&setup, &j);
    let a3 = rows(&d, 3);
    assert_eq!(a3[0]["reused_from"], 2);
    assert_eq!(a3[0]["config"], json!({"v": "new"}));
    assert_eq!(rows(&d, 1)[0]["config"], json!({"v": "old"}));
    assert_eq!(rows(&d, 2)[0]["config"], json!({"v": "new"}));
}

#[test]
fn manual_retry_refusals() {
    let setup = Setup::new("");
    // 1. Status not retryable.
    let ok = setup.flow(
        "ok",
        "[flow]\nname = \"ok\"\n[trigger.manual]\n[[steps]]\nname = \"a\"\nconnector = \"echo\"\n",
    );
    let (_, r) = run_recorded(&setup, &ok, &json!(1));
    let (code, _, err) = retry(&setup, &job(&r), &[]);
    assert_eq!(code, 3);
    assert_eq!(
        err.trim(),
        "error: retry refused (not_retryable): status success is not retryable: only failed, partially_executed and rejected executions are; start a new execution to run the flow again"
    );

    // 2. The limit: two manual retries, three runs in all.
    let always = setup.flow(
        "always",
        "[flow]\nname = \"always\"\n[trigger.manual]\n[[steps]]\nname = \"a\"\nconnector = \"fail\"\n",
    );
    let (_, r) = run_recorded(&setup, &always, &json!(1));
    let j = job(&r);
    assert_eq!(retry(&setup, &j, &[]).0, 1, "attempt 2 runs and fails");
    assert_eq!(retry(&setup, &j, &[]).0, 1, "attempt 3 runs and fails");
    let (code, _, err) = retry(&setup, &j, &[]);
    assert_eq!(code, 3);
    assert_eq!(
        err.trim(),
        "error: retry refused (retry_limit): the 2 manual retries are used up (attempt 3 was the last); start a new execution instead"
    );
    assert_eq!(show(&setup, &j)["execution"]["attempt"], 3);
    let cfg = config_path(&setup);
    let (_, out, _) = data_cli(&setup, &["executions", "show", &j, "--json", "--config", &cfg]);
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        d["retry"],
        json!({"retries_left": 0, "possible": false, "refused": {"code": "retry_limit",
        "message": "the 2 manual retries are used up (attempt 3 was the last); start a new execution instead"}})
    );
    let (_, r) = run_recorded(&setup, &always, &json!(2));
    let (_, out, _) = data_cli(&setup, &["executions", "show", &job(&r), "--json", "--config", &cfg]);
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["retry"], json!({"retries_left": 2, "possible": true}));

    // 3. A respond step: the HTTP caller is gone.
    let responding = setup.flow(
        "responding",
        "[flow]\nname = \"responding\"\n[trigger.http]\npath = \"/r\"\n[[steps]]\nname = \"a\"\nconnector = \"fail\"\n[[steps]]\nname = \"reply\"\nrespond = { status = 200 }\n",
    );
    let (_, r) = run_recorded(&setup, &responding, &json!(1));
    let (code, _, err) = retry(&setup, &job(&r), &[]);
    assert_eq!(code, 3);
    assert_eq!(
        err.trim(),
        "error: retry refused (has_respond_step): the flow has a respond step: the HTTP caller of this execution is gone; send the request again to start a new execution"
    );

    // 4. The trigger changed since the execution was taken.
    let changing = setup.flow(
        "changing",
        "[flow]\nname = \"changing\"\n[trigger.http]\npath = \"/v1\"\n[[steps]]\nname = \"a\"\nconnector = \"fail\"\n",
    );
    let (_, r) = run_recorded(&setup, &changing, &json!(1));
    setup.flow(
        "changing",
        "[flow]\nname = \"changing\"\n[trigger.http]\npath = \"/v2\"\n[[steps]]\nname = \"a\"\nconnector = \"fail\"\n",
    );
    let (code, _, err) = retry(&setup, &job(&r), &[]);
    assert_eq!(code, 3);
    assert!(
        err.starts_with(
            "error: retry refused (trigger_changed): the flow's trigger changed since this execution was taken"
        ),
        "{err}"
    );
    assert_eq!(
        show(&setup, &job(&r))["execution"]["attempt"],
        1,
        "a refused retry changes nothing"
    );
}

/// `executions show --config` judges a retry with the flows loaded as the daemon loads
/// them: a step config its connector rejects makes the config invalid (exit 2, the
/// connector's error shown) instead of a retry said to be possible.
#[test]
fn the_retry_view_loads_flows_as_the_daemon_does() {
    let setup = Setup::new("");
    let always = setup.flow(
        "always",
        "[flow]\nname = \"always\"\n[trigger.manual]\n[[steps]]\nname = \"a\"\nconnector = \"fail\"\n",
    );
    let (_, r) = run_recorded(&setup, &always, &json!(1));
    let j = job(&r);
    let cfg = config_path(&setup);
    let (code, out, _) = data_cli(&setup, &["executions", "show", &j, "--json", "--config", &cfg]);
    assert_eq!(code, 0);
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["retry"], json!({"retries_left": 2, "possible": true}));
    // Another flow of the config that its connector refuses: the daemon would not start.
    setup.flow(
        "noisy",
        "[flow]\nname = \"noisy\"\n[trigger.manual]\n[[steps]]\nname = \"a\"\nconnector = \"log\"\nconfig = { level = \"loud\", message = \"x\" }\n",
    );
    let (code, out, err) = data_cli(&setup, &["executions", "show", &j, "--json", "--config", &cfg]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("error: step \"a\": connector \"log\" rejected the config: config.level: unknown level \"loud\""),
        "{err}"
    );
}
