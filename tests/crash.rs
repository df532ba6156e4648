//! Crash consistency: the real `flowd` binary runs batches of executions on one data
//! directory and is killed with SIGKILL at many points (while opening the database,
//! accepting, mid-step, between steps, mid-commit, during recovery). After every kill
//! the database must open, and after a final restart every accepted execution must be
//! present and finished, with no step that had completed before a kill lost or run again.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::process::Stdio;
use std::time::Duration;
use support::{Setup, data_cli, show, spawn_recorded};

const FLOW: &str = r#"
[flow]
name = "crashy"
[trigger.manual]

[[steps]]
name = "one"
connector = "echo"
config = { n = "{{ trigger.body.n }}" }

[[steps]]
name = "two"
connector = "sleeper"
config = { ms = 15 }

[[steps]]
name = "three"
connector = "echo"
config = { slept = "{{ steps.two.slept_ms }}" }
"#;

fn list(setup: &Setup) -> Vec<Value> {
    if !setup.path("data/flowd.redb").exists() {
        return Vec::new(); // killed before it created the database
    }
    let (code, out, err) = data_cli(setup, &["executions", "list", "--json", "--limit", "100000"]);
    assert_eq!(code, 0, "the database must open after a kill: {err}");
    let page: Value = serde_json::from_str(&out).unwrap();
    serde_json::from_value(page["executions"].clone()).unwrap()
}

fn steps(setup: &Setup, job: &str) -> Vec<Value> {
    let (code, out, err) = data_cli(setup, &["executions", "show", job, "--json"]);
    assert_eq!(code, 0, "{err}");
    let d: Value = serde_json::from_str(&out).unwrap();
    d["steps"].as_array().unwrap().clone()
}

#[test]
fn sigkill_at_many_points_loses_nothing_accepted() {
    let setup = Setup::new("");
    let flow = setup.flow("crashy", FLOW);
    std::fs::write(setup.path("input.json"), r#"{"n": 1}"#).unwrap();
    let cmd = |count: &str| {
        let mut c = support::flowd();
        c.arg("run")
            .arg(&flow)
            .args(["--config", setup.config().to_str().unwrap()])
            .args(["--data-dir", setup.path("data").to_str().unwrap()])
            .args(["--input", setup.path("input.json").to_str().unwrap()])
            .args(["--count", count])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        c
    };

    // Kill delays spread over start-up, acceptance, steps and recovery of earlier rounds.
    let delays = [0u64, 3, 8, 15, 25, 40, 60, 90, 130, 180, 250, 350, 500, 5, 70, 160];
    let mut accepted: Vec<String> = Vec::new();
    // (job, step) → when it started, for every step stored as done at some kill.
    let mut done_at_kill: BTreeMap<(String, String), Value> = BTreeMap::new();
    let (mut mid_step, mut between_steps, mut not_started, mut finished_at_kill) = (0, 0, 0, 0);
    for (round, delay) in delays.iter().enumerate() {
        let mut child = cmd("12").spawn().unwrap();
        std::thread::sleep(Duration::from_millis(*delay));
        child.kill().unwrap();
        child.wait().unwrap();
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        accepted.extend(
            out.lines()
                .filter_map(|l| l.strip_prefix("accepted "))
                .map(str::to_string),
        );

        for e in list(&setup) {
            let job = e["job_id"].as_str().unwrap().to_string();
            match e["status"].as_str().unwrap() {
                "pending" => not_started += 1,
                "running" => {
                    let rows = steps(&setup, &job);
                    if rows.iter().any(|s| s["status"] == "running") {
                        mid_step += 1;
                    } else {
                        between_steps += 1;
                    }
                    for s in rows.iter().filter(|s| s["status"] == "success") {
                        done_at_kill.insert(
                            (job.clone(), s["name"].as_str().unwrap().to_string()),
                            s["started_at"].clone(),
                        );
                    }
                }
                _ => finished_at_kill += 1,
            }
        }
        let _ = round;
    }

    // The final restart recovers everything that is left.
    let out = cmd("0").output().unwrap();
    assert!(
        out.status.success(),
        "recovery failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let all = list(&setup);
    let by_id: BTreeMap<String, &Value> = all
        .iter()
        .map(|e| (e["job_id"].as_str().unwrap().to_string(), e))
        .collect();
    for job in &accepted {
        let e = by_id
            .get(job)
            .unwrap_or_else(|| panic!("accepted execution {job} is missing"));
        assert_eq!(e["status"], "success", "{e:#}");
        assert_eq!(e["steps_executed"], 3);
    }
    for e in &all {
        assert_eq!(e["status"], "success", "every stored execution finishes: {e:#}");
    }
    for ((job, step), started) in &done_at_kill {
        let rows = steps(&setup, job);
        let row = rows.iter().find(|s| s["name"] == step.as_str()).unwrap();
        assert_eq!(row["status"], "success");
        assert_eq!(
            &row["started_at"], started,
            "{job}/{step} completed before a kill and must not run again"
        );
    }
    assert!(!accepted.is_empty());
    println!(
        "crash test: {} SIGKILLs; {} executions accepted, {} stored; states seen at kills: {mid_step} mid-step, \
         {between_steps} between steps, {not_started} accepted but not started, {finished_at_kill} finished; \
         {} completed steps checked after recovery",
        delays.len(),
        accepted.len(),
        all.len(),
        done_at_kill.len()
    );
}

#[test]
fn a_long_step_without_effects_is_stored_running_while_it_runs() {
    // A step that cannot reach outside its sandbox starts without waiting for a commit;
    // its start still reaches the store while it runs, so the execution log shows it.
    let setup = Setup::new("");
    let flow = setup.flow(
        "long",
        "[flow]\nname = \"long\"\n[trigger.manual]\n[[steps]]\nname = \"nap\"\nconnector = \"sleeper\"\nconfig = { ms = 5000 }\n",
    );
    let mut child = spawn_recorded(&setup, &flow, &serde_json::json!({}));
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    let all = list(&setup);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["status"], "running");
    let d = show(&setup, all[0]["job_id"].as_str().unwrap());
    assert_eq!(d["steps"][0]["name"], "nap");
    assert_eq!(d["steps"][0]["status"], "running", "{d:#}");
}

#[test]
fn answered_webhooks_killed_before_a_checkpoint_come_back_from_the_write_ahead_log() {
    // Batches reach the database file only at checkpoints; in between, the write-ahead
    // log alone holds them. Whatever was answered before a SIGKILL must be there after.
    let setup = Setup::new("");
    setup.flow(
        "held",
        "[flow]\nname = \"held\"\n[trigger.http]\npath = \"/held\"\n[[steps]]\nname = \"a\"\nconnector = \"echo\"\n\
         config = { n = \"{{ trigger.body.n }}\" }\n[[steps]]\nname = \"reply\"\n\
         respond = { status = 200, body = { n = \"{{ steps.a.config.n }}\" } }\n",
    );
    let mut answered = 0;
    let mut replayed = 0;
    // A slow machine may reach a checkpoint right before the kill: a few rounds make
    // sure one kill lands while the log holds batches.
    for _ in 0..5 {
        let mut d = support::Daemon::start(&setup);
        for _ in 0..20 {
            let r = support::http_request(
                d.addr,
                "POST",
                "/held",
                &[("content-type", "application/json")],
                format!("{{\"n\": {answered}}}").as_bytes(),
            );
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            assert_eq!(r.json()["n"], answered);
            answered += 1;
        }
        d.child.kill().unwrap();
        d.child.wait().unwrap();
        // The restart applies what only the log held before anything else runs.
        let d = support::Daemon::start(&setup);
        if d.log
            .lock()
            .unwrap()
            .contains("of the write-ahead log that the database did not hold yet")
        {
            replayed += 1;
        }
        d.stop();
        let all = support::list_executions(&setup, Some("held"));
        assert_eq!(all.len(), answered as usize, "every answered execution is stored");
        let mut seen: Vec<u64> = all
            .iter()
            .map(|e| {
                assert_eq!(e["status"], "success", "{e:#}");
                let shown = show(&setup, e["job_id"].as_str().unwrap());
                shown["trigger"]["body"]["n"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{shown:#}"))
            })
            .collect();
        seen.sort();
        assert_eq!(seen, (0..answered).collect::<Vec<_>>());
        if replayed > 0 {
            break;
        }
    }
    assert!(replayed > 0, "no kill landed while the log held batches");
}
