//! Every fixture connector, run through the real `flowd run` binary: each ends with the
//! error kind the contract names for it, within its limit, with fuel and time recorded.

mod support;

use serde_json::{Value, json};
use support::{Setup, one_step, step};

/// Runs a one-step flow with `connector` and returns the exit code and the step.
fn run_one(setup: &Setup, connector: &str, config: &str, keys: &str) -> (i32, Value, Value) {
    let flow = setup.flow(connector, &one_step(connector, config, keys));
    let (code, report) = setup.run(&flow, Some(&json!({"n": 1})));
    let s = step(&report, "only").clone();
    (code, report, s)
}

fn error_kind(step: &Value) -> &str {
    step["error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("step has no error: {step:#}"))
}

fn secs(v: &Value) -> f64 {
    v.as_f64().expect("a number of seconds")
}

#[test]
fn echo_succeeds_and_sees_its_context_config_and_input() {
    let setup = Setup::new("");
    let (code, report, s) = run_one(&setup, "echo", "{ greeting = \"hi {{ trigger.body.n }}\" }", "");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["status"], "success");
    assert_eq!(s["status"], "success");
    let out = &s["output"];
    assert_eq!(out["config"], json!({"greeting": "hi 1"}));
    assert_eq!(out["input"]["trigger"]["body"], json!({"n": 1}));
    assert_eq!(out["ctx"]["step"], "only");
    assert_eq!(out["ctx"]["flow"], "t");
    assert_eq!(out["ctx"]["environment"], "test");
    assert_eq!(out["ctx"]["job_id"], report["job_id"]);
    assert!(s["fuel_used"].as_u64().unwrap() > 0);
    let logs = &s["tries"][0]["logs"];
    assert_eq!(logs[0]["category"], "echo");
    assert_eq!(logs[0]["message"], "echo called");
    assert_eq!(s["connector"]["name"], "echo");
    assert_eq!(s["connector"]["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn fail_reports_the_connectors_error_and_retryability() {
    let setup = Setup::new("");
    let (code, report, s) = run_one(&setup, "fail", "{ code = \"E42\", message = \"nope\" }", "");
    assert_eq!(code, 1);
    assert_eq!(report["status"], "failed");
    assert_eq!(error_kind(&s), "connector");
    assert_eq!(s["error"]["code"], "E42");
    assert_eq!(s["error"]["message"], "nope");
    assert_eq!(s["error"]["retryable"], false);
    assert_eq!(
        s["tries"].as_array().unwrap().len(),
        1,
        "a non-retryable error is not retried"
    );

    let (_, report, s) = run_one(
        &setup,
        "fail",
        "{ retryable = true }",
        "retry = { attempts = 3, backoff = \"10ms\", max_backoff = \"20ms\" }",
    );
    assert_eq!(report["status"], "failed");
    assert_eq!(s["error"]["retryable"], true);
    let tries = s["tries"].as_array().unwrap();
    assert_eq!(tries.len(), 3, "every try is kept: {s:#}");
    assert!(tries.iter().all(|t| t["error"]["kind"] == "connector"));
}

#[test]
fn looper_runs_out_of_fuel() {
    let setup = Setup::new("");
    let (code, _, s) = run_one(&setup, "looper", "{}", "fuel = 20_000_000\ntimeout = \"30s\"");
    assert_eq!(code, 1);
    assert_eq!(error_kind(&s), "fuel_exhausted");
    assert_eq!(s["fuel_used"], 20_000_000);
}

#[test]
fn looper_times_out() {
    let setup = Setup::new("max_fuel = 10_000_000_000_000");
    let (_, _, s) = run_one(&setup, "looper", "{}", "fuel = 10_000_000_000_000\ntimeout = \"300ms\"");
    assert_eq!(error_kind(&s), "timeout");
    let d = secs(&s["duration"]);
    assert!((0.3..5.0).contains(&d), "stopped at its timeout, not much later: {d}s");
    assert!(s["fuel_used"].as_u64().unwrap() > 0);
}

#[test]
fn membomb_hits_the_memory_limit() {
    let setup = Setup::new("");
    let (_, _, s) = run_one(&setup, "membomb", "{}", "memory = \"16MiB\"");
    assert_eq!(error_kind(&s), "memory_limit");
    assert!(s["error"]["message"].as_str().unwrap().contains("16.0 MiB"), "{s:#}");
}

#[test]
fn deep_recursion_traps() {
    let setup = Setup::new("");
    let (_, _, s) = run_one(&setup, "recursion", "{}", "");
    assert_eq!(error_kind(&s), "trap");
    assert!(
        s["error"]["message"].as_str().unwrap().contains("call stack exhausted"),
        "{s:#}"
    );
}

#[test]
fn panic_traps_with_its_message() {
    let setup = Setup::new("");
    let (_, _, s) = run_one(&setup, "panic", "{ reason = \"on purpose\" }", "");
    assert_eq!(error_kind(&s), "trap");
    let msg = s["error"]["message"].as_str().unwrap();
    assert!(msg.contains("panic fixture: on purpose"), "{msg}");
    assert_eq!(s["error"]["retryable"], false);
}

#[test]
fn huge_output_is_invalid() {
    let setup = Setup::new("max_payload = \"1MiB\"");
    let (_, _, s) = run_one(&setup, "huge-output", "{ bytes = 4_194_304 }", "");
    assert_eq!(error_kind(&s), "invalid_output");
    assert!(
        s["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over the 1.0 MiB payload limit"),
        "{s:#}"
    );
}

#[test]
fn output_that_is_not_json_is_invalid() {
    let setup = Setup::new("");
    let (_, _, s) = run_one(&setup, "not-json", "{}", "");
    assert_eq!(error_kind(&s), "invalid_output");
    assert!(s["error"]["message"].as_str().unwrap().contains("not JSON"), "{s:#}");
}

#[test]
fn log_flood_is_capped_and_counted() {
    let setup = Setup::new("max_log_records = 100");
    let (code, _, s) = run_one(&setup, "log-flood", "{ count = 5000 }", "");
    assert_eq!(code, 0);
    assert_eq!(s["output"], json!({"logged": 5000}));
    let t = &s["tries"][0];
    assert_eq!(t["logs"].as_array().unwrap().len(), 100);
    assert_eq!(t["dropped_logs"], 4900);
    assert_eq!(t["logs"][99]["message"], "record 100");
}

#[test]
fn stdout_and_stderr_become_log_records() {
    let setup = Setup::new("");
    let (code, _, s) = run_one(&setup, "stdout-writer", "{ lines = 2 }", "");
    assert_eq!(code, 0);
    let logs: Vec<(String, String, String)> = s["tries"][0]["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["level"].as_str().unwrap().into(),
                l["category"].as_str().unwrap().into(),
                l["message"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("info", "stdout", "stdout line 1"),
        ("info", "stdout", "stdout line 2"),
        ("warn", "stderr", "stderr line"),
    ];
    for (lvl, cat, msg) in want {
        assert!(
            logs.iter().any(|l| l.0 == lvl && l.1 == cat && l.2 == msg),
            "missing {cat}: {msg} in {logs:?}"
        );
    }
}

#[test]
fn the_timeline_is_printed_for_humans() {
    let setup = Setup::new("");
    let flow = setup.flow("t", &one_step("fail", "{ message = \"went wrong\" }", ""));
    let out = setup.run_raw(&flow, None, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL  only  fail       failed"), "{text}");
    assert!(text.contains("error: connector (boom): went wrong"), "{text}");
    assert!(text.contains("execution failed in"), "{text}");
}

#[test]
fn sockets_are_denied_unless_granted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = format!("{{ addr = \"{addr}\" }}");

    let setup = Setup::new("");
    let (code, _, s) = run_one(&setup, "sockets", &config, "");
    assert_eq!(code, 1);
    assert_eq!(s["error"]["code"], "connect");
    assert!(
        s["error"]["message"].as_str().unwrap().contains("Permission denied"),
        "{s:#}"
    );

    // The same component, granted exactly that address.
    let granted = Setup::new("");
    let daemon = std::fs::read_to_string(granted.config()).unwrap();
    let daemon = daemon.replace(
        "[connectors.sockets]\n",
        &format!("[connectors.sockets]\ngrants = {{ sockets = [\"{addr}\"] }}\n"),
    );
    std::fs::write(granted.config(), daemon).unwrap();
    let (code, _, s) = run_one(&granted, "sockets", &config, "");
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["output"], json!({"connected": true}));
}

/// The largest value of every bounded setting is one the runtime can hold (values past
/// them are refused at load, see tests/config_errors.rs): the daemon takes webhooks into a
/// flow throttled to the slowest rate with the longest queue wait, whose step has the
/// largest fuel and time and retries with the longest backoff, and which pauses for the
/// longest pause.
#[test]
fn the_largest_accepted_values_run() {
    let setup = Setup::with_server(
        "timeout = \"1d\"\nmax_timeout = \"1d\"\nflow_timeout = \"365d\"\nmax_flow_timeout = \"365d\"\nfuel = 1000000000000000000\nmax_fuel = 1000000000000000000\nmax_log_records = 1000000",
        "respond_timeout = \"1d\"\nshutdown_grace = \"1h\"\nworkers = 100000",
    );
    setup.flow(
        "edge",
        "[flow]\nname = \"edge\"\ntimeout = \"365d\"\nthrottle = { max_concurrency = 100000, rate = 0.00001, queue_capacity = 1000000, max_wait = \"365d\" }\n[trigger.http]\npath = \"/edge\"\nrespond_timeout = \"1d\"\n[[steps]]\nname = \"a\"\nconnector = \"echo\"\nretry = { attempts = 10, backoff = \"1d\", max_backoff = \"1d\" }\n[[steps]]\nname = \"wait\"\npause = \"365d\"\n",
    );
    let d = support::Daemon::start(&setup);
    for _ in 0..3 {
        assert_eq!(d.request("POST", "/edge", &[], b"{}").status, 202);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !d.log.lock().unwrap().contains("execution paused") {
        assert!(std::time::Instant::now() < deadline, "{}", d.log.lock().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(d.admin("GET", "/healthz", None, b"").status, 200);
    d.stop();
}

#[test]
fn without_room_for_4_gib_per_memory_connectors_run_in_capped_memories_with_their_limits() {
    // 4 instances of 2 memories: 8 slots of 4 GiB (32 GiB of address space) do not fit in
    // 16 GiB; 8 slots of 64 MiB do.
    let setup = Setup::new("instances = 4\nmax_memory = \"64MiB\"");
    let limited = || support::flowd_under(&format!("-v {}", 16u64 << 20));
    let echo = setup.flow("echo", &one_step("echo", "{ greeting = \"hi\" }", ""));
    let bomb = setup.flow("membomb", &one_step("membomb", "{}", "memory = \"16MiB\""));
    let warning = "could not reserve 4 GiB of address space per memory";

    let (code, report, stderr) = setup.run_report(limited(), &echo, None);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(step(&report, "only")["output"]["config"], json!({"greeting": "hi"}));
    assert!(stderr.contains(warning), "{stderr}");
    assert!(
        stderr.contains("ulimit -v"),
        "the warning names the likely cause: {stderr}"
    );

    // The step's memory limit holds in a capped slot as in a full one.
    let (_, report, _) = setup.run_report(limited(), &bomb, None);
    let s = step(&report, "only");
    assert_eq!(error_kind(s), "memory_limit", "{report:#}");
    assert!(s["error"]["message"].as_str().unwrap().contains("16.0 MiB"), "{s:#}");

    // Without the limit the pool takes full slots, and says nothing.
    let (code, _, stderr) = setup.run_report(support::flowd(), &echo, None);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains(warning), "{stderr}");
}
