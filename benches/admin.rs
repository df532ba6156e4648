//! Admin API latency and download throughput over a large store: the real `flowd serve`
//! over a data directory holding 1,000,000 executions (100,000 with `--quick`) with their
//! steps, payloads and log records, asked over one keep-alive HTTP/1.1 connection on
//! 127.0.0.1. Every latency is printed beside bare `GET /healthz` round trips interleaved
//! with it on the same connection, and the download beside an in-process `Store::logs` read
//! of the same set, both measured in the same run.
//!
//! The data directory is seeded once under `target/bench-admin-data/<SHAPE>-<n>/` and
//! reused by later runs (the last hour is topped up so it always holds recent records);
//! delete it to seed afresh.
//!
//! Run: `cargo bench --bench admin` (add `-- --quick` for a short run). `benches/console.rs`
//! reuses its seeding and daemon; `benches/postgres.rs` its seeding, daemon and queries.

use flowd::engine::{ConnectorUse, ExecutionStatus, StepStatus};
use flowd::plugin::{ErrorKind, Failure, Level};
use flowd::store::{
    Attempt, Execution, JobId, LogQuery, LogRow, PayloadKey, PayloadKind, RedbStore, StepRow, Store, TryRow, Write,
};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Names the seeded shape: change it whenever the seeding below changes, so a stale data
/// directory is never reused.
pub(crate) const SHAPE: &str = "v1";
/// (flow, project, trigger kind).
const FLOWS: [(&str, &str, &str); 5] = [
    ("orders", "shop", "http"),
    ("refunds", "shop", "http"),
    ("invoices", "shop", "schedule"),
    ("signups", "crm", "http"),
    ("digest", "crm", "schedule"),
];
const STEPS: [&str; 3] = ["fetch", "enrich", "deliver"];
/// Executions per `Store::write` call (one transaction each).
const SEED_BATCH: usize = 2000;
/// Seeded executions in the last hour.
const RECENT_PER_HOUR: usize = 3000;
const SPAN: Duration = Duration::from_secs(29 * 24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);
/// Only failed executions log this, so a search for it matches about 1 record in 40.
const NEEDLE: &str = "timed out";
pub(crate) const TOKEN_ENV: &str = "FLOWD_BENCH_ADMIN_TOKEN";
pub(crate) const TOKEN: &str = "bench-admin-token-0123456789";

/// splitmix64: the seeded data is the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A payload of a few hundred bytes.
fn payload(rng: &mut Rng, what: &str) -> Value {
    let id = rng.next();
    json!({
        "id": format!("{id:016x}"),
        "kind": what,
        "url": format!("https://api.example.com/v2/{what}/{}", id % 100_000),
        "customer": { "email": format!("customer{}@example.com", id % 50_000), "tier": "gold" },
        "items": [{ "sku": "SKU-1042", "qty": 2, "price": 19.9 }, { "sku": "SKU-2210", "qty": 1, "price": 4.5 }],
        "note": "the quick brown fox jumps over the lazy dog, twice over for good measure",
    })
}

fn connector() -> Option<ConnectorUse> {
    Some(ConnectorUse {
        name: "http".into(),
        sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
    })
}

/// Every write of one finished execution created at `t`.
fn execution_writes(rng: &mut Rng, t: SystemTime, out: &mut Vec<Write>) {
    let (flow, project, trigger_kind) = FLOWS[rng.below(FLOWS.len() as u64) as usize];
    let roll = rng.below(100);
    // ~5% failed, ~2% partially executed: the second step fails.
    let status = match roll {
        0..5 => ExecutionStatus::Failed,
        5..7 => ExecutionStatus::PartiallyExecuted,
        _ => ExecutionStatus::Success,
    };
    let job_id = JobId::at(t);
    let mut at = t + ms(3);
    let mut steps = Vec::new();
    let mut logs = Vec::new();
    let log = |time, level, step: Option<&str>, message: String| LogRow {
        time,
        level,
        job_id,
        project: project.into(),
        flow: flow.into(),
        flow_version: "3f2a9c1e".into(),
        attempt: 1,
        step: step.map(str::to_string),
        connector: step.map(|_| "http".to_string()),
        action: if step.is_some() { "run" } else { "accept" }.into(),
        category: if step.is_some() { "http" } else { "trigger" }.into(),
        environment: "bench".into(),
        message,
    };
    logs.push(log(
        t,
        Level::Info,
        None,
        format!("accepted {trigger_kind} event for {flow}"),
    ));
    let mut executed = 0;
    for (i, name) in STEPS.iter().enumerate() {
        let failed_before = steps.iter().any(|s: &StepRow| s.status == StepStatus::Failed);
        let skipped = failed_before;
        let fails = i == 1 && status != ExecutionStatus::Success;
        let took = ms(5 + rng.below(40));
        let fuel = 1_000_000 + rng.below(500_000);
        let error =
            fails.then(|| Failure::new(ErrorKind::Timeout, "POST https://api.example.com/v2 timed out after 5s"));
        let row = StepRow {
            attempt: 1,
            index: i as u32,
            name: name.to_string(),
            kind: "action".into(),
            status: if skipped {
                StepStatus::Skipped
            } else if fails {
                StepStatus::Failed
            } else {
                StepStatus::Success
            },
            connector: (!skipped).then(connector).flatten(),
            started_at: (!skipped).then_some(at),
            finished_at: (!skipped).then_some(at + took),
            duration: if skipped { 0.0 } else { took.as_secs_f64() },
            fuel_used: if skipped { 0 } else { fuel },
            error: error.clone(),
            note: None,
            tries: if skipped {
                Vec::new()
            } else {
                vec![TryRow {
                    started_at: at,
                    duration: took.as_secs_f64(),
                    fuel_used: fuel,
                    error,
                    dropped_logs: 0,
                }]
            },
            reused_from: None,
        };
        if !skipped {
            executed += 1;
            let key = |kind| PayloadKey {
                job_id,
                attempt: 1,
                step: i as u32,
                kind,
            };
            out.push(Write::Payload {
                key: key(PayloadKind::Config),
                value: payload(rng, "config").into(),
                text: None,
            });
            if !fails {
                out.push(Write::Payload {
                    key: key(PayloadKind::Output),
                    value: payload(rng, "output").into(),
                    text: None,
                });
            }
            if fails {
                logs.push(log(
                    at + took,
                    Level::Error,
                    Some(name),
                    format!("POST https://api.example.com/v2/{flow} {NEEDLE} after 5s"),
                ));
            } else if i == 2 {
                logs.push(log(
                    at + took,
                    Level::Info,
                    Some(name),
                    format!(
                        "POST https://api.example.com/v2/{flow} -> 200 in {}ms",
                        took.as_millis()
                    ),
                ));
            }
            at += took;
        }
        steps.push(row);
    }
    let finished = at + ms(1);
    out.push(Write::Execution(Execution {
        job_id,
        project: project.into(),
        flow: flow.into(),
        flow_version: "3f2a9c1e".into(),
        trigger_kind: trigger_kind.into(),
        trigger_fingerprint: "9b1d5c7f0a2e4b6d".into(),
        environment: "bench".into(),
        status,
        attempt: 1,
        created_at: t,
        started_at: Some(t + ms(3)),
        finished_at: Some(finished),
        steps_total: STEPS.len() as u32,
        steps_executed: executed,
        resume_at: None,
    }));
    out.push(Write::Attempt {
        job_id,
        row: Attempt {
            attempt: 1,
            status,
            started_at: Some(t + ms(3)),
            finished_at: Some(finished),
            from_step: 0,
        },
    });
    out.push(Write::Payload {
        key: PayloadKey::trigger(job_id),
        value: payload(rng, "trigger").into(),
        text: None,
    });
    out.extend(steps.into_iter().map(|row| Write::Step { job_id, row }));
    out.push(Write::Logs(logs));
}

/// Writes `count` executions spread evenly over `[from, to)`, oldest first,
/// [`SEED_BATCH`] per transaction with `depth` transactions in flight.
fn seed<S: Store + 'static>(
    rt: &tokio::runtime::Runtime,
    store: &Arc<S>,
    rng: &mut Rng,
    from: SystemTime,
    to: SystemTime,
    count: usize,
    depth: usize,
) {
    let span = to.duration_since(from).unwrap_or_default();
    let mut in_flight = VecDeque::new();
    let mut batch = Vec::new();
    for i in 0..count {
        let t = from + span.mul_f64(i as f64 / count as f64);
        execution_writes(rng, t, &mut batch);
        if (i + 1) % SEED_BATCH == 0 || i + 1 == count {
            let (store, writes) = (store.clone(), std::mem::take(&mut batch));
            in_flight.push_back(rt.spawn(async move { store.write(writes).await }));
            if in_flight.len() >= depth {
                let done = in_flight.pop_front().expect("a write in flight");
                rt.block_on(done).expect("a seeding task").expect("a durable write");
            }
        }
    }
    for done in in_flight {
        rt.block_on(done).expect("a seeding task").expect("a durable write");
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Seeds `root/data` unless a complete earlier seeding is there, then tops the last hour
/// up to [`RECENT_PER_HOUR`]. The marker file holds the time of the newest record.
pub(crate) fn prepare(rt: &tokio::runtime::Runtime, root: &Path, n: usize) {
    let data = root.join("data");
    prepare_store(rt, root, n, 2, &|fresh| {
        if fresh {
            let _ = std::fs::remove_dir_all(&data);
        }
        Arc::new(RedbStore::open(&data, 1 << 20).expect("open the store"))
    });
    let size = std::fs::metadata(data.join("flowd.redb")).map_or(0, |m| m.len());
    println!("data: flowd.redb is {:.2} GB", size as f64 / 1e9);
}

/// Seeds the store `open` gives (`open(true)`: emptied first) unless `root`'s marker says
/// a complete earlier seeding is there, then tops the last hour up to
/// [`RECENT_PER_HOUR`], `depth` write batches in flight. The marker file holds the time
/// of the newest record.
pub(crate) fn prepare_store<S: Store + 'static>(
    rt: &tokio::runtime::Runtime,
    root: &Path,
    n: usize,
    depth: usize,
    open: &dyn Fn(bool) -> Arc<S>,
) {
    let marker = root.join("seeded-until");
    let now = SystemTime::now();
    let until = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|s| UNIX_EPOCH + Duration::from_secs(s));
    let mut rng = Rng(unix(now));
    match until {
        None => {
            let start = Instant::now();
            let store = open(true);
            let recent = RECENT_PER_HOUR.min(n / 10);
            seed(rt, &store, &mut rng, now - SPAN, now - HOUR, n - recent, depth);
            seed(rt, &store, &mut rng, now - HOUR, now, recent, depth);
            drop(Arc::into_inner(store).expect("no task holds the store"));
            let took = start.elapsed().as_secs_f64();
            std::fs::write(root.join("seeding-took"), format!("{took:.1}")).expect("write the seeding time");
            std::fs::write(&marker, unix(now).to_string()).expect("write the marker");
            println!("data: seeded {n} executions in {took:.1}s");
        }
        Some(until) => {
            let gap = now.duration_since(until).unwrap_or_default().min(HOUR);
            let top_up = (RECENT_PER_HOUR.min(n / 10) as f64 * gap.as_secs_f64() / HOUR.as_secs_f64()) as usize;
            let took = std::fs::read_to_string(root.join("seeding-took"))
                .map_or_else(|_| "?".into(), |s| s.trim().to_string());
            print!(
                "data: reused the store of {} (seeding took {took}s; seeded up to {}s ago)",
                root.display(),
                unix(now) - unix(until)
            );
            if top_up > 0 {
                let start = Instant::now();
                let store = open(false);
                let opened = start.elapsed();
                seed(rt, &store, &mut rng, now - gap, now, top_up, depth);
                drop(Arc::into_inner(store).expect("no task holds the store"));
                std::fs::write(&marker, unix(now).to_string()).expect("write the marker");
                print!(
                    "; topped the last hour up with {top_up} executions in {:.1}s (of which opening the store {:.1}s)",
                    start.elapsed().as_secs_f64(),
                    opened.as_secs_f64()
                );
            }
            println!();
        }
    }
}

/// The daemon config and flow files, beside the data directory.
pub(crate) fn write_config(root: &Path) -> PathBuf {
    let flows = root.join("flows");
    std::fs::create_dir_all(&flows).expect("the flows directory");
    for (name, project, _) in FLOWS {
        let mut toml = format!("[flow]\nname = \"{name}\"\nproject = \"{project}\"\n\n[trigger.manual]\n");
        for step in STEPS {
            toml.push_str(&format!(
                "\n[[steps]]\nname = \"{step}\"\nconnector = \"log\"\nconfig = {{ message = \"{step}\" }}\n"
            ));
        }
        std::fs::write(flows.join(format!("{name}.toml")), toml).expect("a flow file");
    }
    let config = root.join("flowd.toml");
    let cache = root.join("cache");
    std::fs::write(
        &config,
        format!(
            "environment = \"bench\"\nflows = \"flows\"\nretention = \"90d\"\ncache_dir = {:?}\n\n\
             [server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n\
             [[server.tokens]]\nname = \"bench\"\nrole = \"viewer\"\nenv = \"{TOKEN_ENV}\"\n\n\
             [connectors.log]\nbundled = \"log\"\n",
            cache.display().to_string()
        ),
    )
    .expect("the daemon config");
    config
}

/// `flowd serve`, killed when dropped.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) admin: SocketAddr,
    pub(crate) trigger: SocketAddr,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    pub(crate) fn start(config: &Path) -> Daemon {
        Daemon::start_with(config, &[])
    }

    /// `flowd serve` with `envs` set beside the token's variable.
    pub(crate) fn start_with(config: &Path, envs: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowd"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env(TOKEN_ENV, TOKEN)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting flowd serve");
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let (pipe, sink) = (child.stderr.take().expect("stderr"), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().expect("the stderr buffer");
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // The trigger listener's line comes last.
        let mut admin = None;
        let trigger = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix("flowd: admin listener on http://") {
                        admin = Some(a.parse().expect("an address"));
                    } else if let Some(a) = line.strip_prefix("flowd: trigger listener on http://") {
                        break a.parse().expect("an address");
                    }
                }
                _ => panic!("flowd serve did not start:\n{}", stderr.lock().expect("stderr")),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Daemon {
            child,
            admin: admin.expect("the admin listener's line before the trigger listener's"),
            trigger,
            stderr,
        }
    }

    /// Says where it listens and how long it took to start since `started`.
    pub(crate) fn announce(&self, started: Instant) {
        println!(
            "daemon: pid {} up in {:.2}s, admin on {}, triggers on {}",
            self.child.id(),
            started.elapsed().as_secs_f64(),
            self.admin,
            self.trigger
        );
    }

    /// A field of /proc/<pid>/status, in kB.
    pub(crate) fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }
}

impl Drop for Daemon {
    /// SIGTERM first: a daemon killed outright leaves the database to be repaired (slowly,
    /// at this size) by the next run's open.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    host: String,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connecting to the admin listener");
        s.set_nodelay(true).expect("TCP_NODELAY");
        s.set_read_timeout(Some(Duration::from_secs(120)))
            .expect("a read timeout");
        Client {
            reader: BufReader::with_capacity(1 << 16, s.try_clone().expect("a second handle")),
            writer: s,
            host: addr.to_string(),
        }
    }

    /// GETs `path`, handing the body to `sink` as it arrives; the status code.
    fn get_with(&mut self, path: &str, auth: bool, sink: &mut dyn FnMut(&[u8])) -> u16 {
        let auth = if auth {
            format!("Authorization: Bearer {TOKEN}\r\n")
        } else {
            String::new()
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}\r\n", self.host);
        self.writer.write_all(req.as_bytes()).expect("sending a request");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"));
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("a header line");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').expect("a header");
            if k.eq_ignore_ascii_case("content-length") {
                length = Some(v.trim().parse::<usize>().expect("a length"));
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line).expect("a chunk size");
                let size = line.trim_end().split(';').next().expect("a size");
                let size = usize::from_str_radix(size, 16).expect("a hex chunk size");
                if size == 0 {
                    // Trailers (none expected), then the blank line.
                    loop {
                        line.clear();
                        self.reader.read_line(&mut line).expect("a trailer line");
                        if line.trim_end().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                self.read_exact_into(size, sink);
                let mut crlf = [0u8; 2];
                self.reader.read_exact(&mut crlf).expect("a chunk's CRLF");
            }
        } else {
            self.read_exact_into(length.expect("Content-Length or chunked"), sink);
        }
        status
    }

    fn read_exact_into(&mut self, mut n: usize, sink: &mut dyn FnMut(&[u8])) {
        while n > 0 {
            let buf = self.reader.fill_buf().expect("reading a body");
            assert!(!buf.is_empty(), "the connection closed mid-body");
            let take = buf.len().min(n);
            sink(&buf[..take]);
            self.reader.consume(take);
            n -= take;
        }
    }

    pub(crate) fn get(&mut self, path: &str, auth: bool) -> (u16, Vec<u8>) {
        let mut body = Vec::new();
        let status = self.get_with(path, auth, &mut |b| body.extend_from_slice(b));
        (status, body)
    }

    pub(crate) fn get_json(&mut self, path: &str) -> Value {
        let (status, body) = self.get(path, true);
        assert_eq!(status, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("a JSON answer")
    }
}

#[derive(Clone, Copy)]
struct Percentiles {
    p50: Duration,
    p99: Duration,
}

/// The time of each of `n` requests, cycling through `paths`, and of a `GET /healthz`
/// sent before each on the same connection: the baseline sees the same moment of this
/// shared machine as the figure. Each must answer 200.
fn time_each(client: &mut Client, paths: &[String], n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let (mut took, mut base) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let start = Instant::now();
        let (status, _) = client.get("/healthz", false);
        base.push(start.elapsed());
        assert_eq!(status, 200, "GET /healthz");
        let path = &paths[i % paths.len()];
        let start = Instant::now();
        let (status, body) = client.get(path, true);
        took.push(start.elapsed());
        assert_eq!(status, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
    }
    (took, base)
}

fn percentiles(took: &[Duration]) -> Percentiles {
    let mut took = took.to_vec();
    took.sort_unstable();
    let n = took.len();
    let at = |q: f64| took[((n as f64 * q).ceil() as usize).clamp(1, n) - 1];
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn time(client: &mut Client, paths: &[String], n: usize) -> (Percentiles, Percentiles) {
    let (took, base) = time_each(client, paths, n);
    (percentiles(&took), percentiles(&base))
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn row(label: &str, n: usize, p: Percentiles, base: Percentiles, target: &str) {
    println!(
        "{label:<44} {n:>5} {:>10} {:>10} {:>9} {:>9} {:>7.1}x {:>7.1}x  {target}",
        us(p.p50),
        us(p.p99),
        us(base.p50),
        us(base.p99),
        p.p50.as_secs_f64() / base.p50.as_secs_f64(),
        p.p99.as_secs_f64() / base.p99.as_secs_f64(),
    );
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Job ids spread over the whole store: a page of executions before each of `k` times.
fn sample_jobs(client: &mut Client, k: usize) -> Vec<String> {
    let now = SystemTime::now();
    let mut out = Vec::new();
    for i in 0..k {
        let to = now - SPAN.mul_f64(i as f64 / k as f64);
        let page = client.get_json(&format!("/v1/executions?limit=20&to={}", rfc3339(to)));
        for e in page["executions"].as_array().expect("executions") {
            out.push(e["job_id"].as_str().expect("a job id").to_string());
        }
    }
    // Interleave old and new so consecutive requests do not hit neighbouring pages.
    let mut rng = Rng(7);
    for i in (1..out.len()).rev() {
        out.swap(i, rng.below(i as u64 + 1) as usize);
    }
    out
}

/// A runtime for the client side and the directory the data of `n` executions lives in
/// (kept across runs, shared with the console benchmark).
pub(crate) fn runtime_and_root(n: usize) -> (tokio::runtime::Runtime, PathBuf) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .to_path_buf();
    let root = target.join("bench-admin-data").join(format!("{SHAPE}-{n}"));
    std::fs::create_dir_all(&root).expect("the bench directory");
    (rt, root)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: usize = if quick { 100_000 } else { 1_000_000 };
    let (light, heavy) = if quick { (500, 100) } else { (2000, 500) };
    let (rt, root) = runtime_and_root(n);

    println!(
        "flowd admin API over a store of {n} executions (5 flows, 2 projects, 3 steps each, 2-3 log records each)"
    );
    prepare(&rt, &root, n);

    // The figures measure flowd, not this VM's disk: the database is read through once so
    // the OS holds it in its page cache (the daemon's own cache still starts empty).
    let start = Instant::now();
    let mut file = std::fs::File::open(root.join("data").join("flowd.redb")).expect("the database file");
    std::io::copy(&mut file, &mut std::io::sink()).expect("reading the database file");
    println!(
        "data: flowd.redb read through once (into the OS page cache) in {:.1}s",
        start.elapsed().as_secs_f64()
    );

    let direct = {
        let start = Instant::now();
        let store = RedbStore::open(&root.join("data"), 1 << 20).expect("open the store");
        // Opening builds what an older database lacks (an index added since), once.
        println!("data: store opened in {:.2}s", start.elapsed().as_secs_f64());
        direct_download(&rt, &store)
    };

    let config = write_config(&root);
    let started = Instant::now();
    let daemon = Daemon::start(&config);
    daemon.announce(started);
    queries(&daemon, direct, light, heavy);
    println!(
        "  (redb's page cache is up to {} MiB, [store] cache_size's default)",
        flowd::config::DEFAULT_REDB_CACHE >> 20
    );
}

/// The download's set: one project's records of the last 7 days, oldest first.
const DOWNLOAD: &str = "/v1/logs/download?format=ndjson&project=shop&preset=7d";

/// The baseline of the download: the same set read with `Store::logs` in pages of 1000
/// in this process; how many records and how long it took.
pub(crate) fn direct_download<S: Store>(rt: &tokio::runtime::Runtime, store: &S) -> (usize, Duration) {
    let mut q = LogQuery {
        project: Some("shop".into()),
        from: Some(SystemTime::now() - Duration::from_secs(7 * 24 * 3600)),
        to: Some(SystemTime::now()),
        limit: 1000,
        ..LogQuery::default()
    };
    let start = Instant::now();
    let mut records = 0usize;
    loop {
        let page = rt.block_on(store.logs(&q)).expect("a page of log records");
        records += page.len();
        if page.len() < q.limit {
            break;
        }
        q.after = page.last().map(|(k, _)| *k);
    }
    (records, start.elapsed())
}

/// Times the queries (`light` requests each, `heavy` for the log search) and the download
/// on `daemon`, each beside its baseline, and prints them; `direct` is the download's.
pub(crate) fn queries(daemon: &Daemon, direct: (usize, Duration), light: usize, heavy: usize) {
    let mut client = Client::connect(daemon.admin);

    let newest = client.get_json("/v1/executions?limit=50");
    assert_eq!(newest["executions"].as_array().map(Vec::len), Some(50));
    let flows: Vec<&str> = FLOWS.iter().map(|f| f.0).collect();
    for flow in &flows {
        let page = client.get_json(&format!("/v1/executions?status=failed&flow={flow}&limit=50"));
        let rows = page["executions"].as_array().expect("executions");
        assert_eq!(rows.len(), 50, "{flow} has 50 failed executions");
        assert!(rows.iter().all(|e| e["status"] == "failed" && e["flow"] == *flow));
    }
    let jobs = sample_jobs(&mut client, 25);
    let logs = client.get_json(&format!("/v1/logs?job_id={}", jobs[0]));
    let count = logs["logs"].as_array().map_or(0, Vec::len);
    assert!((2..=3).contains(&count), "a job has 2 or 3 log records, not {count}");
    let search = client.get_json(&format!("/v1/logs?preset=1h&contains={}", NEEDLE.replace(' ', "%20")));
    let found = search["logs"].as_array().map_or(0, Vec::len);

    println!();
    println!(
        "{:<44} {:>5} {:>10} {:>10} {:>9} {:>9} {:>8} {:>8}  target",
        "GET (one keep-alive connection)", "reqs", "p50", "p99", "base p50", "base p99", "p50/base", "p99/base"
    );
    let (p, base) = time(&mut client, &["/v1/executions?limit=50".to_string()], light);
    row("/v1/executions?limit=50", light, p, base, "");
    let filtered: Vec<String> = flows
        .iter()
        .map(|f| format!("/v1/executions?status=failed&flow={f}&limit=50"))
        .collect();
    let (p, base) = time(&mut client, &filtered, light);
    let verdict =
        |p: Percentiles, max: Duration| format!("p99 <= {}: {}", us(max), if p.p99 <= max { "met" } else { "MISSED" });
    row(
        "/v1/executions?status=failed&flow=F&limit=50",
        light,
        p,
        base,
        &verdict(p, ms(5)),
    );
    // Keyset paging: the page after a job id anywhere in the store, plain and filtered.
    let next: Vec<String> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| match i % 2 {
            0 => format!("/v1/executions?limit=50&cursor={j}"),
            _ => format!(
                "/v1/executions?status=failed&flow={}&limit=50&cursor={j}",
                flows[i % flows.len()]
            ),
        })
        .collect();
    let (p, base) = time(&mut client, &next, light);
    row(
        "/v1/executions?[status=failed&flow=F&]cursor=J",
        light,
        p,
        base,
        &verdict(p, ms(5)),
    );
    let job_paths: Vec<String> = jobs.iter().map(|j| format!("/v1/logs?job_id={j}")).collect();
    let (took, base_took) = time_each(&mut client, &job_paths, light);
    let p = percentiles(&took);
    row(
        "/v1/logs?job_id=J",
        light,
        p,
        percentiles(&base_took),
        &verdict(p, ms(1)),
    );
    let split = job_paths.len().min(light);
    let ((first, repeats), (base_first, base_repeats)) = (took.split_at(split), base_took.split_at(split));
    row(
        "  of which each job's first request",
        first.len(),
        percentiles(first),
        percentiles(base_first),
        "",
    );
    if !repeats.is_empty() {
        row(
            "  of which repeats",
            repeats.len(),
            percentiles(repeats),
            percentiles(base_repeats),
            "",
        );
    }
    let (p, base) = time(
        &mut client,
        &[format!("/v1/logs?preset=1h&contains={}", NEEDLE.replace(' ', "%20"))],
        heavy,
    );
    row("/v1/logs?preset=1h&contains=timed%20out", heavy, p, base, "");
    println!("(base: a GET /healthz sent before each request, on the same connection)");
    println!(
        "(F cycles over the {} flows; J over {} jobs spread over {} days; the cursor pages alternate plain and filtered; the search returns {found} records)",
        flows.len(),
        jobs.len(),
        SPAN.as_secs() / 86400
    );

    let (hwm_before, rss_before) = (daemon.status_kb("VmHWM"), daemon.status_kb("VmRSS"));
    let mut download_once = || {
        let start = Instant::now();
        let (mut records, mut bytes) = (0usize, 0usize);
        let status = client.get_with(DOWNLOAD, true, &mut |b| {
            records += b.iter().filter(|&&c| c == b'\n').count();
            bytes += b.len();
        });
        assert_eq!(status, 200);
        (records, bytes, start.elapsed())
    };
    let (records, bytes, took) = download_once();
    let (hwm_after, rss_after) = (daemon.status_kb("VmHWM"), daemon.status_kb("VmRSS"));
    let (_, _, took_again) = download_once();
    let hwm_again = daemon.status_kb("VmHWM");
    let api_rate = records as f64 / took.as_secs_f64();
    let store_rate = direct.0 as f64 / direct.1.as_secs_f64();
    println!();
    println!("GET {DOWNLOAD}");
    println!(
        "  {records} records, {:.1} MB in {:.2}s: {:.0} records/s, {:.1} MB/s (again: {:.2}s)",
        bytes as f64 / 1e6,
        took.as_secs_f64(),
        api_rate,
        bytes as f64 / 1e6 / took.as_secs_f64(),
        took_again.as_secs_f64()
    );
    println!(
        "  baseline, Store::logs in-process (pages of 1000, same filter, before the daemon started): \
         {} records in {:.2}s: {store_rate:.0} records/s; download/baseline {:.2}x",
        direct.0,
        direct.1.as_secs_f64(),
        api_rate / store_rate
    );
    println!(
        "  daemon VmHWM {:.1} MB before, {:.1} MB after, {:.1} MB after a second download \
         (VmRSS {:.1} -> {:.1} MB)",
        hwm_before as f64 / 1024.0,
        hwm_after as f64 / 1024.0,
        hwm_again as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
    );
    let stderr = daemon.stderr.lock().expect("stderr").clone();
    if stderr.contains("ERROR") || stderr.contains("WARN") {
        println!("daemon stderr:\n{stderr}");
    }
}
