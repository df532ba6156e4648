//! Several `flowd serve` processes on one PostgreSQL database, counted from outside as
//! tests/crash_serve.rs counts one: three daemons take webhook load while one after the
//! other is SIGKILLed and started again. Its leases expire and the others take its
//! executions over. Every accepted execution must end `success`, no step may be called
//! after the call whose result is stored, and each fire time of a schedule every daemon
//! fires must run exactly once, and a throttled flow never runs more at once than its
//! `max_concurrency` across the daemons (counted at the ledger). Plus the edges: a daemon whose heartbeat cannot reach
//! the database loses its lease and says so, and another runs the execution on.
//!
//! `FLOWD_MULTI_CYCLES` sets the number of kill cycles (6 by default).

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::admin::{OPERATOR, TOKENS, VIEWER};
use support::ledger::{Accepted, Ledger, call, connector, executions, get, load, spread, verify};
use support::postgres::Database;
use support::{Daemon, Setup};

const URL_VAR: &str = "FLOWD_TEST_DATABASE_URL";

/// A setup on PostgreSQL with short leases, and the ledger's connector.
fn setup(ledger: SocketAddr) -> Setup {
    let setup = Setup::with_server("", &format!("workers = 8\nshutdown_grace = \"1s\"\n{TOKENS}"));
    let mut toml = std::fs::read_to_string(setup.config()).unwrap();
    toml.push_str(&format!(
        "[store]\nbackend = \"postgres\"\nurl_env = \"{URL_VAR}\"\npool_size = 6\nlease = \"2s\"\n{}",
        connector(ledger)
    ));
    std::fs::write(setup.config(), toml).unwrap();
    setup
}

/// A database of the test's own, a ledger, and a setup calling it.
fn rig() -> (Database, Ledger, SocketAddr, Setup) {
    let db = Database::create();
    let ledger = Ledger::default();
    let ledger_addr = ledger.start();
    let setup = setup(ledger_addr);
    (db, ledger, ledger_addr, setup)
}

/// Flow `gap`: a ledger call, a pause of `pause`, another ledger call.
fn gap(setup: &Setup, ledger_addr: SocketAddr, pause: &str) {
    setup.flow(
        "gap",
        &format!(
            "[flow]\nname = \"gap\"\n[trigger.http]\npath = \"/gap\"\n{}[[steps]]\nname = \"wait\"\npause = \"{pause}\"\n{}",
            call(ledger_addr, "gap", "a"),
            call(ledger_addr, "gap", "b")
        ),
    );
}

fn start(setup: &Setup, url: &str) -> Daemon {
    Daemon::start_with_env(
        setup,
        &[
            ("FLOWD_TEST_VIEWER", VIEWER),
            ("FLOWD_TEST_OPERATOR", OPERATOR),
            (URL_VAR, url),
            ("RUST_LOG", "info"),
        ],
    )
}

/// Waits until no execution is unfinished, as `d` sees the store.
fn settle(d: &Daemon, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let open = get(d, "/v1/executions?status=pending,queued,running,paused&limit=10");
        if open["executions"].as_array().unwrap().is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "executions still unfinished after {within:?}: {open:#}\n{}",
            d.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A metric's value in `d`'s `/metrics`.
fn metric(d: &Daemon, name: &str) -> f64 {
    let r = d.admin("GET", "/metrics", Some(OPERATOR), b"");
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// The fire time a schedule execution was started for.
fn fired_for(detail: &Value) -> String {
    let t = &detail["trigger"];
    t["scheduled_at"]
        .as_str()
        .or_else(|| t["body"]["scheduled_at"].as_str())
        .or_else(|| t["payload"]["scheduled_at"].as_str())
        .unwrap_or_else(|| panic!("no scheduled_at in {t:#}"))
        .to_string()
}

#[test]
fn three_daemons_one_killed_again_and_again_lose_nothing_and_rerun_no_stored_step() {
    let (db, ledger, ledger_addr, setup) = rig();
    setup.flow(
        "async",
        &format!(
            "[flow]\nname = \"async\"\n[trigger.http]\npath = \"/async\"\n{}[[steps]]\nname = \"mid\"\nconnector = \"echo\"\n{}",
            call(ledger_addr, "async", "a"),
            call(ledger_addr, "async", "b")
        ),
    );
    setup.flow(
        "held",
        &format!(
            "[flow]\nname = \"held\"\n[trigger.http]\npath = \"/held\"\n{}[[steps]]\nname = \"reply\"\nrespond = {{ status = 200, body = {{ seq = \"{{{{ steps.a.body.seq }}}}\" }} }}\n",
            call(ledger_addr, "held", "a"),
        ),
    );
    setup.flow(
        "limited",
        &format!(
            "[flow]\nname = \"limited\"\nthrottle = {{ max_concurrency = 2, queue_capacity = 10000, max_wait = \"1h\" }}\n[trigger.http]\npath = \"/limited\"\n{}",
            call(ledger_addr, "slow/limited", "a"),
        ),
    );
    setup.flow(
        "tick",
        &format!(
            "[flow]\nname = \"tick\"\n[trigger.schedule]\ncron = \"* * * * * *\"\ncatch_up = \"all\"\n[[steps]]\nname = \"a\"\nconnector = \"api\"\nconfig = {{ url = \"http://{ledger_addr}/hit/tick/{{{{ trigger.scheduled_at }}}}/a\", method = \"POST\" }}\nretry = {{ attempts = 3, backoff = \"200ms\" }}\n"
        ),
    );
    let cycles: u64 = std::env::var("FLOWD_MULTI_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut daemons: Vec<Daemon> = (0..3).map(|_| start(&setup, &db.url)).collect();
    let accepted: Accepted = Arc::default();
    let next = Arc::new(AtomicU64::new(1));
    let mut killed = 0;
    for round in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = daemons
            .iter()
            .flat_map(|d| [("async", d.addr, 5), ("held", d.addr, 5), ("limited", d.addr, 30)])
            .map(|(flow, addr, pace)| {
                let (next, accepted, stop) = (next.clone(), accepted.clone(), stop.clone());
                std::thread::spawn(move || load(addr, flow, Duration::from_millis(pace), next, accepted, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700 + spread(seed ^ round, 800)));
        let victim = (round % 3) as usize;
        daemons[victim].child.kill().unwrap();
        daemons[victim].child.wait().unwrap();
        killed += 1;
        // The others go on under load while it is down.
        std::thread::sleep(Duration::from_millis(200 + spread(seed + round, 400)));
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        daemons[victim] = start(&setup, &db.url);
    }
    settle(&daemons[0], Duration::from_secs(120));
    let taken_over: f64 = daemons.iter().map(|d| metric(d, "flowd_leases_taken_over_total")).sum();
    for d in daemons.drain(1..) {
        d.stop();
    }
    let d = daemons.pop().unwrap();
    // The schedule stops firing, so what is listed is all the ledger will see.
    let r = d.admin("POST", "/v1/flows/tick/deactivate", Some(OPERATOR), b"");
    assert!(r.status < 300, "deactivate: {}", String::from_utf8_lossy(&r.body));
    std::thread::sleep(Duration::from_millis(1500));
    settle(&d, Duration::from_secs(60));
    let executions = executions(&d);
    std::thread::sleep(Duration::from_millis(300));
    let calls = ledger.calls();
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() > 50,
        "the load was accepted {} times only",
        accepted.len()
    );
    let verdict = verify(&d, &executions, &accepted, &calls, |flow, detail| {
        if flow == "tick" {
            return format!("tick/{}", fired_for(detail));
        }
        let n = detail["trigger"]["body"]["n"]
            .as_u64()
            .expect("every webhook has its n");
        match flow {
            "limited" => format!("slow/limited/{n}"),
            _ => format!("{flow}/{n}"),
        }
    });
    let mut problems = verdict.problems;

    // Each fire time of the schedule ran once, and none was missed while two daemons ran.
    let mut fires: BTreeMap<String, usize> = BTreeMap::new();
    for e in executions.iter().filter(|e| e["flow"] == "tick") {
        let detail = get(&d, &format!("/v1/executions/{}", e["job_id"].as_str().unwrap()));
        *fires.entry(fired_for(&detail)).or_default() += 1;
    }
    for (at, n) in &fires {
        if *n != 1 {
            problems.push(format!("fire time {at} started {n} executions"));
        }
    }
    let times: Vec<i64> = fires
        .keys()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp())
        .collect();
    for w in times.windows(2) {
        if w[1] - w[0] != 1 {
            problems.push(format!("no execution for the fire times between {} and {}", w[0], w[1]));
        }
    }
    // The throttle held across the daemons, counted at the ledger.
    let most = ledger.most_at_once("limited");
    if most > 2 {
        problems.push(format!(
            "flow limited (max_concurrency = 2) ran {most} at once across daemons"
        ));
    }
    let log = d.log.lock().unwrap().clone();
    eprintln!(
        "flow limited: at most {most} calls at once (max_concurrency = 2), {} executions",
        executions.iter().filter(|e| e["flow"] == "limited").count()
    );
    eprintln!(
        "{cycles} kill cycles ({killed} daemons killed): {} executions, {} accepted by answer, {taken_over} taken over by the daemons up at the end, {} fire times, {} steps called more than once, {} interrupted tries recorded",
        executions.len(),
        accepted.len(),
        fires.len(),
        verdict.reruns,
        verdict.interrupted
    );
    assert!(fires.len() >= 5, "the schedule fired {} times only", fires.len());
    assert!(taken_over > 0.0, "no daemon took over an execution");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}\n{log}",
        problems.len(),
        problems.join("\n")
    );
    d.stop();
}

/// A TCP proxy to the database that can be cut (every connection closed, new ones
/// refused) and restored: a daemon behind it loses the database while others keep it.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    fn start(to: SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<std::sync::Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (c, o) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(to) else {
                    continue;
                };
                {
                    let mut open = o.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                for (mut from, mut into) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut into);
                        let _ = into.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[test]
fn a_daemon_cut_off_from_the_database_loses_its_lease_and_another_runs_the_execution_on() {
    let (db, ledger, ledger_addr, setup) = rig();
    gap(&setup, ledger_addr, "4s");
    let server: tokio_postgres::Config = db.url.parse().unwrap();
    let port = server.get_ports()[0];
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], port)));
    let behind = db.url.replace(&format!("127.0.0.1:{port}"), &proxy.addr.to_string());
    assert_ne!(behind, db.url, "the test server is on 127.0.0.1");
    let a = start(&setup, &behind);
    let b = start(&setup, &db.url);

    let r = a.request("POST", "/gap", &[("content-type", "application/json")], br#"{"n": 1}"#);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let job = r.json()["job_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ledger.calls().contains_key("gap/1/a") {
        assert!(Instant::now() < deadline, "step a never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Paused now, on a's lease; then a loses the database.
    std::thread::sleep(Duration::from_millis(300));
    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let e = get(&b, &format!("/v1/executions?job_id={job}"))["executions"][0].clone();
        if e["status"] == "success" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b never finished {job}: {e:#}\n--- a:\n{}\n--- b:\n{}",
            a.log.lock().unwrap(),
            b.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // a, its pause over, finds its lease lost and starts nothing.
    std::thread::sleep(Duration::from_secs(2));
    proxy.restore();
    let a_log = a.log.lock().unwrap().clone();
    assert!(a_log.contains("lease heartbeat failed"), "{a_log}");
    assert!(a_log.contains(&format!("lost the lease on execution {job}")), "{a_log}");
    assert!(metric(&a, "flowd_lease_heartbeat_failures_total") >= 1.0);
    assert!(metric(&a, "flowd_leases_lost_total") >= 1.0);
    assert!(metric(&b, "flowd_leases_taken_over_total") >= 1.0);
    let calls = ledger.calls();
    assert_eq!(calls["gap/1/a"].len(), 1, "{calls:?}");
    assert_eq!(calls["gap/1/b"].len(), 1, "step b ran once, on b: {calls:?}");
    let detail = get(&b, &format!("/v1/executions/{job}"));
    assert_eq!(detail["steps"][2]["status"], "success", "{detail:#}");
    assert_eq!(
        detail["steps"][2]["output"]["body"]["seq"].as_u64(),
        calls["gap/1/b"].first().copied()
    );
    a.stop();
    b.stop();
}

#[test]
fn two_daemons_racing_for_a_dead_daemons_executions_take_each_once() {
    let (db, ledger, ledger_addr, setup) = rig();
    gap(&setup, ledger_addr, "3s");
    let mut dead = start(&setup, &db.url);
    let n = 8u64; // server.workers: all of them paused on the daemon at once
    let jobs: Vec<String> = (0..n)
        .map(|i| {
            let body = format!("{{\"n\": {i}}}");
            let r = dead.request("POST", "/gap", &[("content-type", "application/json")], body.as_bytes());
            assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
            r.json()["job_id"].as_str().unwrap().to_string()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..n).any(|i| !ledger.calls().contains_key(&format!("gap/{i}/a"))) {
        assert!(Instant::now() < deadline, "the first steps never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every execution is paused on the dead daemon's leases when it dies.
    std::thread::sleep(Duration::from_millis(300));
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let (x, y) = (start(&setup, &db.url), start(&setup, &db.url));
    settle(&x, Duration::from_secs(60));
    let taken = (
        metric(&x, "flowd_leases_taken_over_total"),
        metric(&y, "flowd_leases_taken_over_total"),
    );
    eprintln!("taken over: {taken:?} of {n}");
    assert_eq!(taken.0 + taken.1, n as f64, "each execution taken over once: {taken:?}");
    // Each ran on once: no step called after its stored success (a first call the
    // ledger failed is retried, and shows as a try).
    let calls = ledger.calls();
    let accepted: BTreeMap<u64, (String, String)> = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| (i as u64, ("gap".to_string(), job.clone())))
        .collect();
    let verdict = verify(&x, &executions(&x), &accepted, &calls, |flow, detail| {
        format!("{flow}/{}", detail["trigger"]["body"]["n"])
    });
    assert!(verdict.problems.is_empty(), "{:#?}", verdict.problems);
    x.stop();
    y.stop();
}
