//! Counting a daemon's side effects from outside it: a ledger server that records every
//! real call its `http` steps make (and fails some first calls, so automatic retries
//! happen too), a webhook load generator, and the checks the crash tests make against
//! what the store holds: every accepted execution there and successful, no step called
//! after the call whose result is stored, every extra call visible as a try.

use super::Daemon;
use super::admin::OPERATOR;
use super::try_http_request;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every call the ledger took: key (`flow/n/step`) → the sequence numbers it answered;
/// and for keys `slow/{group}/…`, the most calls of each group in flight at once.
#[derive(Clone, Default)]
pub struct Ledger {
    calls: Arc<Mutex<HashMap<String, Vec<u64>>>>,
    in_flight: Arc<Mutex<HashMap<String, (u64, u64)>>>,
    /// When each key was first called, in the order they came.
    firsts: Arc<Mutex<Vec<(String, std::time::Instant)>>>,
}

impl Ledger {
    /// Serves `/hit/{key}` on 127.0.0.1, answering `{"seq": n}` with a global sequence;
    /// a key under `slow/` is answered after 40 ms (so overlapping calls overlap).
    pub fn start(&self) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (calls, in_flight, firsts) = (self.calls.clone(), self.in_flight.clone(), self.firsts.clone());
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
                    let (calls, in_flight, seq, firsts) =
                        (calls.clone(), in_flight.clone(), seq.clone(), firsts.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let key = req.uri().path().trim_start_matches("/hit/").to_string();
                            let n = seq.fetch_add(1, Ordering::SeqCst) + 1;
                            let first = {
                                let mut calls = calls.lock().unwrap();
                                let made = calls.entry(key.clone()).or_default();
                                made.push(n);
                                made.len() == 1
                            };
                            if first {
                                firsts.lock().unwrap().push((key.clone(), std::time::Instant::now()));
                            }
                            let slow = key
                                .strip_prefix("slow/")
                                .map(|k| k.split('/').next().unwrap_or("").to_string());
                            let in_flight = in_flight.clone();
                            async move {
                                if let Some(group) = slow {
                                    // Counted out when the call ends or its caller goes
                                    // (a killed daemon's connection drops this future).
                                    let _in_flight = InFlight::enter(&in_flight, group);
                                    tokio::time::sleep(Duration::from_millis(40)).await;
                                }
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

    pub fn calls(&self) -> HashMap<String, Vec<u64>> {
        self.calls.lock().unwrap().clone()
    }

    /// When each key under `prefix/` was first called, in order.
    pub fn first_calls(&self, prefix: &str) -> Vec<std::time::Instant> {
        let prefix = format!("{prefix}/");
        let firsts = self.firsts.lock().unwrap();
        firsts
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, t)| *t)
            .collect()
    }

    /// The most calls under `slow/{group}/…` that were in flight at once.
    pub fn most_at_once(&self, group: &str) -> u64 {
        self.in_flight.lock().unwrap().get(group).map_or(0, |(_, most)| *most)
    }
}

/// One call in flight of a group, counted until it is dropped.
struct InFlight {
    counts: Arc<Mutex<HashMap<String, (u64, u64)>>>,
    group: String,
}

impl InFlight {
    fn enter(counts: &Arc<Mutex<HashMap<String, (u64, u64)>>>, group: String) -> InFlight {
        let mut m = counts.lock().unwrap();
        let (now, most) = m.entry(group.clone()).or_default();
        *now += 1;
        *most = (*most).max(*now);
        InFlight {
            counts: counts.clone(),
            group,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some((now, _)) = self.counts.lock().unwrap().get_mut(&self.group) {
            *now -= 1;
        }
    }
}

/// An `http` step calling the ledger under `key/n/step` (`n` from the webhook body),
/// retried as operators write it.
pub fn call(ledger: SocketAddr, key: &str, step: &str) -> String {
    format!(
        "[[steps]]\nname = \"{step}\"\nconnector = \"api\"\nconfig = {{ url = \"http://{ledger}/hit/{key}/{{{{ trigger.body.n }}}}/{step}\", method = \"POST\" }}\nretry = {{ attempts = 3, backoff = \"200ms\" }}\n"
    )
}

/// The connector those steps use, for the daemon config.
pub fn connector(ledger: SocketAddr) -> String {
    format!("[connectors.api]\nbundled = \"http\"\ngrants.http = {{ allow = [\"http://{ledger}\"] }}\n")
}

/// What the load generator saw accepted: n → (flow, job id).
pub type Accepted = Arc<Mutex<BTreeMap<u64, (String, String)>>>;

/// Sends webhooks to `flow` until `stop`, recording each one answered as accepted.
pub fn load(
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

pub fn get(d: &Daemon, path: &str) -> Value {
    let r = d.admin("GET", path, Some(OPERATOR), b"");
    assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// A pseudo-random number from `seed` (a test's kill moments vary with each round).
pub fn spread(seed: u64, below: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    x % below
}

/// Every execution the store holds, through `d`'s admin API.
pub fn executions(d: &Daemon) -> Vec<Value> {
    let mut executions = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(d, &format!("/v1/executions?limit=1000{cursor}"));
        executions.extend(page["executions"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return executions,
        }
    }
}

/// What the checks counted.
#[derive(Debug, Default)]
pub struct Verdict {
    pub problems: Vec<String>,
    /// Steps the ledger saw called more than once.
    pub reruns: usize,
    /// Tries recorded as interrupted by a restart.
    pub interrupted: usize,
}

/// Checks what `d`'s store holds against what the load saw accepted and the ledger saw
/// called. `key_of` gives the ledger key of an execution's calls (before `/{step}`)
/// from its flow and detail.
pub fn verify(
    d: &Daemon,
    executions: &[Value],
    accepted: &BTreeMap<u64, (String, String)>,
    calls: &HashMap<String, Vec<u64>>,
    key_of: impl Fn(&str, &Value) -> String,
) -> Verdict {
    let mut v = Verdict::default();
    let by_job: HashMap<String, &Value> = executions
        .iter()
        .map(|e| (e["job_id"].as_str().unwrap().to_string(), e))
        .collect();
    for (n, (flow, job)) in accepted {
        match by_job.get(job) {
            None => v.problems.push(format!("{flow} n={n}: accepted as {job}, then lost")),
            Some(e) if e["status"] != "success" => {
                let detail = get(d, &format!("/v1/executions/{job}"));
                let errors: Vec<&Value> = detail["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|s| !s["error"].is_null())
                    .collect();
                v.problems
                    .push(format!("{flow} n={n} ({job}) ended {}: {errors:?}", e["status"]))
            }
            Some(_) => {}
        }
    }
    for e in executions {
        let job = e["job_id"].as_str().unwrap();
        let detail = get(d, &format!("/v1/executions/{job}"));
        let flow = e["flow"].as_str().unwrap();
        let prefix = key_of(flow, &detail);
        let warned = || {
            get(d, &format!("/v1/logs?job_id={job}&level=warn&preset=30d&limit=1000"))["logs"]
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
            let key = format!("{prefix}/{name}");
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
                v.reruns += 1;
            }
            v.interrupted += cut;
            if cut > 0 && !warned() {
                v.problems
                    .push(format!("{key} ({job}): an interrupted try without its warn record"));
            }
            if made.len() > tries.len() {
                v.problems.push(format!(
                    "{key} ({job}): called {} times ({made:?}), {} tries shown: {tries:?}",
                    made.len(),
                    tries.len()
                ));
            }
            if step["status"] == "success" {
                let stored = step["output"]["body"]["seq"].as_u64().expect("a stored ledger answer");
                if !made.contains(&stored) {
                    v.problems.push(format!(
                        "{key} ({job}): stored seq {stored} was never answered: {made:?}"
                    ));
                }
                if let Some(later) = made.iter().find(|s| **s > stored) {
                    v.problems.push(format!(
                        "{key} ({job}): called again (seq {later}) after the stored success (seq {stored})"
                    ));
                }
            }
        }
    }
    v
}
