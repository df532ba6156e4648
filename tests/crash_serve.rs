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

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::admin::{OPERATOR, TOKENS};
use support::{Daemon, Setup, try_http_request};

/// Every call the ledger took: key (`flow/n/step`) → the sequence numbers it answered.
#[derive(Clone, Default)]
struct Ledger {
    calls: Arc<Mutex<HashMap<String, Vec<u64>>>>,
}

impl Ledger {
    /// Serves `/hit/{key}` on 127.0.0.1, answering `{"seq": n}` with a global sequence.
    fn start(&self) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = self.calls.clone();
        let seq = Arc::new(AtomicU64::new(0));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (calls, seq) = (calls.clone(), seq.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let key = req.uri().path().trim_start_matches("/hit/").to_string();
                            let n = seq.fetch_add(1, Ordering::SeqCst) + 1;
                            let first = {
                                let mut calls = calls.lock().unwrap();
                                let made = calls.entry(key).or_default();
                                made.push(n);
                                made.len() == 1
                            };
                            async move {
                                // A fifth of first calls fail as a busy API does: the
                                // step's automatic retry calls again (and succeeds).
                                let status = if first && n % 5 == 0 { 503 } else { 200 };
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/json")
                                        .body(http_body_util::Full::new(bytes::Bytes::from(
                                            json!({ "seq": n }).to_string(),
                                        )))
                                        .unwrap(),
                                )
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        addr
    }

    fn calls(&self) -> HashMap<String, Vec<u64>> {
        self.calls.lock().unwrap().clone()
    }
}

/// An `http` step calling the ledger under `flow/n/step`, retried as operators write it.
fn call(ledger: SocketAddr, flow: &str, step: &str) -> String {
    format!(
        "[[steps]]\nname = \"{step}\"\nconnector = \"api\"\nconfig = {{ url = \"http://{ledger}/hit/{flow}/{{{{ trigger.body.n }}}}/{step}\", method = \"POST\" }}\nretry = {{ attempts = 3, backoff = \"200ms\" }}\n"
    )
}

fn setup(ledger: SocketAddr) -> Setup {
    let setup = Setup::with_server("", &format!("workers = 8\n{TOKENS}"));
    let mut config = std::fs::read_to_string(setup.config()).unwrap();
    config.push_str(&format!(
        "[connectors.api]\nbundled = \"http\"\ngrants.http = {{ allow = [\"http://{ledger}\"] }}\n"
    ));
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

/// What the load generator saw accepted: n → (flow, job id).
type Accepted = Arc<Mutex<BTreeMap<u64, (String, String)>>>;

/// Sends webhooks to `flow` until `stop`, recording each one answered as accepted.
fn load(
    addr: SocketAddr,
    flow: &'static str,
    pace: Duration,
    next: Arc<AtomicU64>,
    accepted: Accepted,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let n = next.fetch_add(1, Ordering::SeqCst);
        let body = json!({ "n": n }).to_string();
        // The daemon may die mid-request: no answer is no acceptance.
        let answered = try_http_request(
            addr,
            "POST",
            &format!("/{flow}"),
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        let job = match answered {
            Ok(r) if r.status == 202 => r.json()["job_id"].as_str().map(str::to_string),
            Ok(r) if r.status == 200 => r.header("x-flowd-job-id").map(str::to_string),
            _ => None,
        };
        if let Some(job) = job {
            accepted.lock().unwrap().insert(n, (flow.to_string(), job));
        }
        std::thread::sleep(pace);
    }
}

fn get(d: &Daemon, path: &str) -> Value {
    let r = d.admin("GET", path, Some(OPERATOR), b"");
    assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// A pseudo-random number from `seed` (the test's kill moments vary with each round).
fn spread(seed: u64, below: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    x % below
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

    let mut executions = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(&d, &format!("/v1/executions?limit=1000{cursor}"));
        executions.extend(page["executions"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let by_job: HashMap<String, &Value> = executions
        .iter()
        .map(|e| (e["job_id"].as_str().unwrap().to_string(), e))
        .collect();
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() > 20,
        "the load was accepted {} times only",
        accepted.len()
    );
    let mut problems = Vec::new();
    for (n, (flow, job)) in &accepted {
        match by_job.get(job) {
            None => problems.push(format!("{flow} n={n}: accepted as {job}, then lost")),
            Some(e) if e["status"] != "success" => {
                let detail = get(&d, &format!("/v1/executions/{job}"));
                let errors: Vec<&Value> = detail["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|s| !s["error"].is_null())
                    .collect();
                problems.push(format!("{flow} n={n} ({job}) ended {}: {errors:?}", e["status"]))
            }
            Some(_) => {}
        }
    }
    let (mut reruns, mut interrupted) = (0, 0);
    for e in &executions {
        let job = e["job_id"].as_str().unwrap();
        let detail = get(&d, &format!("/v1/executions/{job}"));
        let n = detail["trigger"]["body"]["n"]
            .as_u64()
            .expect("every trigger has its n");
        let flow = e["flow"].as_str().unwrap();
        let warned = || {
            get(&d, &format!("/v1/logs?job_id={job}&level=warn&preset=30d&limit=1000"))["logs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["message"].as_str().unwrap_or("").contains("interrupted by a restart"))
        };
        for step in detail["steps"].as_array().unwrap() {
            let name = step["name"].as_str().unwrap();
            if step["connector"]["name"] != "api" {
                continue;
            }
            let key = format!("{flow}/{n}/{name}");
            let made = calls.get(&key).cloned().unwrap_or_default();
            let tries = step["tries"].as_array().unwrap();
            let cut = tries
                .iter()
                .filter(|t| {
                    t["error"]["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("interrupted by a restart")
                })
                .count();
            if made.len() > 1 {
                reruns += 1;
            }
            interrupted += cut;
            if cut > 0 && !warned() {
                problems.push(format!("{key} ({job}): an interrupted try without its warn record"));
            }
            if made.len() > tries.len() {
                problems.push(format!(
                    "{key} ({job}): called {} times ({made:?}), {} tries shown: {tries:?}",
                    made.len(),
                    tries.len()
                ));
            }
            if step["status"] == "success" {
                let stored = step["output"]["body"]["seq"].as_u64().expect("a stored ledger answer");
                if !made.contains(&stored) {
                    problems.push(format!(
                        "{key} ({job}): stored seq {stored} was never answered: {made:?}"
                    ));
                }
                if let Some(later) = made.iter().find(|s| **s > stored) {
                    problems.push(format!(
                        "{key} ({job}): called again (seq {later}) after the stored success (seq {stored})"
                    ));
                }
            }
        }
    }
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
