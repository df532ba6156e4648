//! Daemons sharing one PostgreSQL database at the edges of what they share: a resume
//! reaches the timed pause another daemon waits out (in its run, or parked), a queued
//! execution taken over from a killed daemon keeps the `max_wait` it was accepted with,
//! a daemon stopped past its leases runs its throttled executions on when it wakes, and
//! a flow's `rate` holds across three daemons under webhook load, counted at the ledger
//! the steps call (outside every daemon).

mod support;

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use support::admin::{OPERATOR, TOKENS, ended, flow_file, get, hook, post_op, start, wait_status};
use support::ledger::{Ledger, call, connector};
use support::postgres::Database;
use support::{Daemon, Setup};

/// A setup on a new database, with `store` lines added to its `[store]`.
fn shared(server: &str, store: &str) -> Setup {
    let setup =
        Setup::embedded("", &format!("shutdown_grace = \"1s\"\n{server}\n{TOKENS}")).use_postgres(Database::create());
    let mut toml = std::fs::read_to_string(setup.config()).unwrap();
    toml.push_str(store);
    std::fs::write(setup.config(), toml).unwrap();
    setup
}

#[test]
fn a_resume_reaches_the_timed_pause_another_daemon_waits_out() {
    let setup = shared("", "");
    // Waited out in the run (under a minute), and parked (longer).
    for (name, pause) in [("nap", "50s"), ("sleep", "1h")] {
        setup.flow(
            name,
            &flow_file(
                name,
                &format!("/{name}"),
                &format!("[[steps]]\nname = \"wait\"\npause = \"{pause}\"\n[[steps]]\nname = \"after\"\nconnector = \"echo\"\n"),
            ),
        );
    }
    let a = start(&setup);
    let b = start(&setup);
    for flow in ["nap", "sleep"] {
        let job = hook(&a, &format!("/{flow}"), "{}");
        wait_status(&a, &job, "paused");
        // `a` holds it and waits; the request goes to `b`.
        let (status, v) = post_op(&b, &format!("/v1/executions/{job}/resume"), b"");
        assert_eq!((status, v), (202, json!({"job_id": job})), "{flow}");
        // Ended by the resume, not by the pause running out: the log line below says so.
        assert_eq!(ended(&b, &job, 1)["status"], "success", "{flow}");
        let detail = get(&b, &format!("/v1/executions/{job}"));
        let steps = detail["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2, "{detail:#}");
        assert_eq!(steps[1]["status"], "success", "{detail:#}");
        assert_eq!(
            steps[1]["tries"].as_array().unwrap().len(),
            1,
            "the rest ran once: {detail:#}"
        );
        a.wait_log_line("saying the resume came through another daemon", 10, |l| {
            l.contains("timed pause ended early") && l.contains(&job)
        });
        // Resumed already: a second request says so, whichever daemon gets it.
        let (status, v) = post_op(&b, &format!("/v1/executions/{job}/resume"), b"");
        assert_eq!(
            (status, v["error"]["code"].clone()),
            (409, json!("not_paused")),
            "{flow}"
        );
    }
    a.stop();
    b.stop();
}

#[test]
fn a_queued_execution_taken_over_keeps_the_max_wait_it_was_accepted_with() {
    // max_wait 2 s, leases of 3 s: by the time another daemon takes the queued ones over,
    // they have waited past their max_wait since their acceptance.
    let setup = shared("", "lease = \"3s\"\n");
    setup.flow(
        "limited",
        "[flow]\nname = \"limited\"\nthrottle = { max_concurrency = 1, max_wait = \"2s\" }\n[trigger.http]\npath = \"/limited\"\n[[steps]]\nname = \"work\"\nconnector = \"sleeper\"\nconfig = { ms = 1500 }\n",
    );
    let mut a = start(&setup);
    let b = start(&setup);
    let first = hook(&a, "/limited", "{}");
    wait_status(&b, &first, "running");
    let queued: Vec<String> = (0..3).map(|_| hook(&a, "/limited", "{}")).collect();
    for job in &queued {
        assert_eq!(
            get(&b, &format!("/v1/executions?job_id={job}"))["executions"][0]["status"],
            "queued"
        );
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();

    assert_eq!(ended(&b, &first, 1)["status"], "success");
    for job in &queued {
        let row = ended(&b, job, 1);
        assert_eq!(row["status"], "rejected", "{row:#}\n{}", b.log.lock().unwrap());
        let detail = get(&b, &format!("/v1/executions/{job}"));
        let step = &detail["steps"][0];
        assert_eq!(step["status"], "skipped", "{detail:#}");
        assert!(
            step["note"]
                .as_str()
                .unwrap_or("")
                .contains("longer than max_wait (2s)"),
            "{detail:#}"
        );
    }
    b.stop();
}

#[test]
fn rate_holds_across_three_daemons_under_webhook_load() {
    const RATE: f64 = 8.0;
    const PER_DAEMON: u64 = 15;
    let ledger = Ledger::default();
    let ledger_addr = ledger.start();
    let setup = shared("workers = 8", "");
    let mut toml = std::fs::read_to_string(setup.config()).unwrap();
    toml.push_str(&connector(ledger_addr));
    std::fs::write(setup.config(), toml).unwrap();
    setup.flow(
        "paced",
        &format!(
            "[flow]\nname = \"paced\"\nthrottle = {{ max_concurrency = 100, rate = {RATE}, queue_capacity = 10000, max_wait = \"1h\" }}\n[trigger.http]\npath = \"/paced\"\n{}",
            call(ledger_addr, "paced", "a")
        ),
    );
    let daemons: Vec<Daemon> = (0..3).map(|_| start(&setup)).collect();
    // Each daemon gets its share of webhooks at once, from its own sender.
    let next = Arc::new(AtomicU64::new(1));
    let senders: Vec<_> = daemons
        .iter()
        .map(|d| {
            let (addr, next) = (d.addr, next.clone());
            std::thread::spawn(move || {
                (0..PER_DAEMON)
                    .map(|_| {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        let body = json!({ "n": n }).to_string();
                        let r = support::http_request(addr, "POST", "/paced", &[], body.as_bytes());
                        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
                        r.json()["job_id"].as_str().unwrap().to_string()
                    })
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let jobs: Vec<String> = senders.into_iter().flat_map(|s| s.join().unwrap()).collect();
    for job in &jobs {
        assert_eq!(ended(&daemons[0], job, 1)["status"], "success");
    }
    let starts = ledger.first_calls("paced");
    assert_eq!(starts.len(), jobs.len(), "each execution called the ledger first once");
    // In any window of two seconds, at most 2 × RATE starts, and two more for the jitter
    // of a step's call behind its start on a busy machine (a late call and a prompt one
    // may share a window; one second windows saw RATE + 2).
    let window = Duration::from_secs(2);
    let most = (0..starts.len())
        .map(|i| starts[i..].iter().take_while(|t| **t - starts[i] < window).count())
        .max()
        .unwrap();
    let span = (*starts.last().unwrap() - starts[0]).as_secs_f64();
    let overall = (starts.len() - 1) as f64 / span;
    eprintln!(
        "rate {RATE}/s across 3 daemons: {} starts in {span:.2} s ({overall:.2}/s), at most {most} in any 2 s window",
        starts.len()
    );
    assert!(
        most <= 2 * RATE as usize + 2,
        "{most} starts within two seconds at rate {RATE}"
    );
    assert!(
        overall <= RATE * 1.15,
        "{overall:.2} starts a second over the whole run at rate {RATE}"
    );
    for d in daemons {
        d.stop();
    }
}

#[test]
fn a_daemon_stopped_past_its_leases_runs_its_throttled_executions_on_when_it_wakes() {
    // Leases of 1 s, renewed every third of that; the daemon is stopped for 2.5 s, so
    // every lease it holds expires, with no other daemon to take them over. When it
    // wakes, whichever comes first (the heartbeat's renewal, its own take-over, or a
    // waiter asking for its throttle place), each execution runs once, to its end.
    let setup = shared("", "lease = \"1s\"\n");
    setup.flow(
        "limited",
        "[flow]\nname = \"limited\"\nthrottle = { max_concurrency = 1, max_wait = \"1h\" }\n[trigger.http]\npath = \"/limited\"\n[[steps]]\nname = \"work\"\nconnector = \"sleeper\"\nconfig = { ms = 500 }\n",
    );
    let d = start(&setup);
    let jobs: Vec<String> = (0..6).map(|_| hook(&d, "/limited", "{}")).collect();
    // Stopped once the first has started (it may have ended too: the rest still wait).
    let end = std::time::Instant::now() + support::PATIENCE;
    while get(&d, &format!("/v1/executions?job_id={}", jobs[0]))["executions"][0]["status"] == "queued" {
        assert!(std::time::Instant::now() < end, "{} never started", jobs[0]);
        std::thread::sleep(Duration::from_millis(10));
    }
    d.signal("STOP");
    std::thread::sleep(Duration::from_millis(2500));
    d.signal("CONT");
    for job in &jobs {
        let row = ended(&d, job, 1);
        assert_eq!(row["status"], "success", "{row:#}");
        let detail = get(&d, &format!("/v1/executions/{job}"));
        let tries = detail["steps"][0]["tries"].as_array().unwrap();
        assert!(!tries.is_empty(), "{detail:#}");
    }
    d.stop();
}

#[test]
fn the_operator_token_is_needed_for_a_resume_through_another_daemon() {
    let setup = shared("", "");
    setup.flow(
        "nap",
        &flow_file("nap", "/nap", "[[steps]]\nname = \"wait\"\npause = \"50s\"\n"),
    );
    let a = start(&setup);
    let b = start(&setup);
    let job = hook(&a, "/nap", "{}");
    wait_status(&a, &job, "paused");
    let r = b.admin(
        "POST",
        &format!("/v1/executions/{job}/resume"),
        Some(support::admin::VIEWER),
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        get(&a, &format!("/v1/executions?job_id={job}"))["executions"][0]["status"],
        "paused"
    );
    let r = b.admin("POST", &format!("/v1/executions/{job}/resume"), Some(OPERATOR), b"");
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(ended(&a, &job, 1)["status"], "success");
    a.stop();
    b.stop();
}
