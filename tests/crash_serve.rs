//! Crash consistency of `flowd serve`, counted from outside the process: webhook load on
//! three kinds of flow (answered 202; held open until a last `respond` step; throttled to
//! one at a time with a `pause`), whose `http` steps call a local ledger server that
//! records every real call (and fails some first calls, so automatic retries happen too). The daemon is SIGKILLed at random moments (mid-load, mid-recovery)
//! many times, then runs to the end. Every accepted execution must be there and
//! finished; no step may be called after the call whose result is stored; and every call
//! the store does not hold as the result must show as a try of its step (a re-run after
//! an interruption is visible, with a warn record in the running logs).
//!
//! `FLOWD_CRASH_CYCLES` sets the number of kill cycles (20 by default).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::Setup;
use support::admin::TOKENS;
use support::ledger::{Accepted, Ledger, Verdict, call, connector, executions, get, load, spread, verify};

fn setup(ledger: SocketAddr) -> Setup {
    let setup = Setup::with_server("", &format!("workers = 8\n{TOKENS}"));
    let mut config = std::fs::read_to_string(setup.config()).unwrap();
    config.push_str(&connector(ledger));
    std::fs::write(setup.config(), config).unwrap();
    let echo = "[[steps]]\nname = \"mid\"\nconnector = \"echo\"\nconfig = { n = \"{{ trigger.body.n }}\" }\n";
    setup.flow(
        "async",
        &format!(
            "[flow]\nname = \"async\"\n[trigger.http]\npath = \"/async\"\n{}{echo}{}",
            call(ledger, "async", "a"),
            call(ledger, "async", "b")
        ),
    );
    setup.flow(
        "held",
        &format!(
            "[flow]\nname = \"held\"\n[trigger.http]\npath = \"/held\"\n{}{}[[steps]]\nname = \"reply\"\nrespond = {{ status = 200, body = {{ seq = \"{{{{ steps.a.body.seq }}}}\" }} }}\n",
            call(ledger, "held", "a"),
            call(ledger, "held", "b")
        ),
    );
    setup.flow(
        "throttled",
        &format!(
            "[flow]\nname = \"throttled\"\nthrottle = {{ max_concurrency = 1, queue_capacity = 10000, max_wait = \"1h\" }}\n[trigger.http]\npath = \"/throttled\"\n{}[[steps]]\nname = \"wait\"\npause = \"30ms\"\n{}",
            call(ledger, "throttled", "a"),
            call(ledger, "throttled", "b")
        ),
    );
    setup
}

#[test]
fn no_step_runs_after_its_stored_success_and_no_accepted_execution_is_lost() {
    let ledger = Ledger::default();
    let ledger_addr = ledger.start();
    let setup = setup(ledger_addr);
    let cycles: u64 = std::env::var("FLOWD_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let accepted: Accepted = Arc::default();
    let next = Arc::new(AtomicU64::new(1));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    for round in 0..cycles {
        let mut d = support::admin::start(&setup);
        // Some kills land in recovery, before any new load arrives.
        if spread(seed ^ round, 4) == 0 {
            std::thread::sleep(Duration::from_millis(spread(seed + round, 60)));
            d.child.kill().unwrap();
            d.child.wait().unwrap();
            continue;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = [
            ("async", 0u64),
            ("async", 0),
            ("held", 0),
            ("held", 0),
            ("throttled", 15),
        ]
        .into_iter()
        .map(|(flow, pace)| {
            let (addr, next, accepted, stop) = (d.addr, next.clone(), accepted.clone(), stop.clone());
            std::thread::spawn(move || load(addr, flow, Duration::from_millis(pace), next, accepted, stop))
        })
        .collect();
        std::thread::sleep(Duration::from_millis(100 + spread(seed ^ (round << 8), 500)));
        d.child.kill().unwrap();
        d.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
    }

    // The last run is never killed: it recovers everything and finishes it.
    let d = support::admin::start(&setup);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let open = get(&d, "/v1/executions?status=pending,queued,running,paused&limit=10");
        if open["executions"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "executions still unfinished after 300 s: {open:#}\n{}",
            d.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = d.log.lock().unwrap().clone();
    assert!(
        log.lines()
            .any(|l| l.contains("recovery:") && (l.contains("unfinished executions"))),
        "the start-up says what recovery found:\n{log}"
    );
    assert!(
        log.contains("was not closed cleanly") && log.contains("the database is repaired"),
        "the start-up after a kill says it repairs the database:\n{log}"
    );
    // Nothing may call the ledger any more once every execution is final.
    std::thread::sleep(Duration::from_millis(500));
    let calls = ledger.calls();

    let executions = executions(&d);
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() > 20,
        "the load was accepted {} times only",
        accepted.len()
    );
    let Verdict {
        problems,
        reruns,
        interrupted,
    } = verify(&d, &executions, &accepted, &calls, |flow, detail| {
        let n = detail["trigger"]["body"]["n"]
            .as_u64()
            .expect("every trigger has its n");
        format!("{flow}/{n}")
    });
    eprintln!(
        "{cycles} kill cycles: {} executions, {} accepted by answer, {reruns} steps called more than once, {interrupted} interrupted tries recorded",
        executions.len(),
        accepted.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    d.stop();
}
