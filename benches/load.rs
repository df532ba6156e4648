//! Webhook load, bounded and on 127.0.0.1 only: a bare hyper server answering a trivial
//! JSON body against `flowd serve` running two flow shapes, each on its own store, with
//! every transition recorded durably. All run in this process on the same tokio runtime
//! as the load generator. The shapes:
//! - `bench`: webhook → 2 transforms → log → respond (the shape this benchmark began with);
//! - `peer`: the shape users compare with n8n (issue 17): webhook → set fields → compute
//!   `items_count`/`items_sum` → set `ok`/`echo_id` (three `transform` steps) → respond
//!   with the whole object, for a ~200-byte JSON body.
//!
//! Prints, in one run and for each shape: the highest rate it sustains with 64 keep-alive
//! connections as a share of bare hyper's (measured before and after the shapes, the mean
//! taken), the process's CPU time per execution (the load generator's share is bare
//! hyper's CPU per request, printed beside it), bytes on disk per execution (the redb
//! file once the store is closed, over the executions it holds), and p50/p99 latency at a
//! fixed offered load (open loop: latency counts from when a request was due).
//!
//! Then the peer shape under a constant load for 60 s (10 s with `--quick`), the process's
//! memory sampled as it goes, with the default redb cache bound and with a small one (so
//! that the bound is reached within the run), and per shape the bytes on disk per
//! execution by table.
//!
//! Run: `cargo bench --bench load` (`-- --quick` for a short run; `-- --flowd-only` drives
//! flowd alone for 10 s, for a profiler, with `--shape peer` for the peer shape;
//! `-- --steady [--seconds N] [--cache MIB]` runs only the constant load).

#[path = "support/flows.rs"]
#[allow(dead_code)] // benches/postgres.rs's async flow
mod flows;
#[path = "support/http.rs"]
mod http;

use bytes::Bytes;
use flows::{BODY, FLOW, PEER_BODY, PEER_FLOW};
use http::{closed_loop, connect, latencies, ms, percentile};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The allocator the `flowd` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: usize = 64;

/// A redb cache bound the constant load reaches within its 60 s.
const SMALL_CACHE: u64 = 16 << 20;

async fn bare_hyper() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                    let mut r = Response::new(Full::new(Bytes::from_static(br#"{"ok":true}"#)));
                    r.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    Ok::<_, std::convert::Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// One flow shape: its flow file, where it listens, what it is sent.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    label: &'static str,
    flow: &'static str,
    path: &'static str,
    body: &'static [u8],
    /// A key and value the response must hold (checked once, before the load).
    expect: (&'static str, f64),
}

const SHAPES: [Shape; 2] = [
    Shape {
        name: "bench",
        label: "transform, transform, log, respond",
        flow: FLOW,
        path: "/bench",
        body: BODY,
        expect: ("total", 16.5),
    },
    Shape {
        name: "peer",
        label: "peer: 3 transforms, respond (n8n's shape)",
        flow: PEER_FLOW,
        path: "/peer",
        body: PEER_BODY,
        expect: ("items_sum", 46.0),
    },
];

/// A running daemon and the redb store under it (for its group-commit figures).
struct Flowd {
    daemon: flowd::daemon::Daemon,
    store: Arc<flowd::store::RedbStore>,
}

impl Flowd {
    fn store_stats(&self) -> flowd::store::WriterStats {
        self.store.writer_stats()
    }

    /// Stops the daemon, measures where the store's bytes went, and closes it.
    async fn shutdown(self) -> (bool, flowd::store::Space) {
        let Flowd { daemon, store } = self;
        let clean = daemon.shutdown().await;
        let space = store.space().unwrap();
        drop(store);
        (clean, space)
    }
}

async fn flowd(dir: &std::path::Path, shape: &Shape) -> (SocketAddr, Flowd) {
    flowd_with_cache(dir, shape, flowd::config::DEFAULT_REDB_CACHE).await
}

/// [`flowd`] with a redb page cache of at most `cache` bytes (`[store] cache_size`).
async fn flowd_with_cache(dir: &std::path::Path, shape: &Shape, cache: u64) -> (SocketAddr, Flowd) {
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::write(dir.join("flows").join(format!("{}.toml", shape.name)), shape.flow).unwrap();
    std::fs::write(
        dir.join("flowd.toml"),
        "environment = \"bench\"\nflows = \"flows\"\n[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\ndata_dir = \"data\"\nworkers = 256\n[limits]\ninstances = 512\n[connectors.transform]\nbundled = \"transform\"\n[connectors.log]\nbundled = \"log\"\n",
    )
    .unwrap();
    let config = flowd::config::DaemonConfig::load(&dir.join("flowd.toml")).unwrap();
    let setup = flowd::loader::load(&config, &[], flowd::loader::Purpose::Serve)
        .await
        .unwrap();
    let store = Arc::new(
        flowd::store::RedbStore::open_with_cache(&dir.join("data"), config.limits.max_payload as usize, cache as usize)
            .unwrap(),
    );
    let daemon = flowd::daemon::Daemon::start_on(config, setup, store.clone())
        .await
        .unwrap();
    (daemon.local_addr(), Flowd { daemon, store })
}

/// Requests answered per second with CONNECTIONS connections sending back to back, and
/// how many were answered.
async fn max_rate(addr: SocketAddr, path: &'static str, body: &'static [u8], for_: Duration) -> (f64, u64) {
    closed_loop(&[addr], path, body, 200, CONNECTIONS, for_).await
}

/// The response to one request, which must hold `shape.expect`.
async fn check(addr: SocketAddr, shape: &Shape) {
    let mut s = connect(addr).await;
    s.ready().await.unwrap();
    let req = hyper::Request::builder()
        .method("POST")
        .uri(shape.path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(shape.body)))
        .unwrap();
    let resp = s.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let (key, want) = shape.expect;
    assert_eq!(
        v[key].as_f64(),
        Some(want),
        "{}: {}",
        shape.name,
        String::from_utf8_lossy(&body)
    );
}

/// CPU time of this process (user + system) spent while `work` runs.
async fn with_cpu<T>(work: impl std::future::Future<Output = T>) -> (T, Duration) {
    let before = cpu_time();
    let out = work.await;
    (out, cpu_time() - before)
}

/// What one shape measured.
struct Measured {
    rate: f64,
    cpu_per_exec: Duration,
    bytes_per_exec: f64,
    executions: u64,
    commits_per_exec: f64,
    requests_per_commit: f64,
    p50: Duration,
    p99: Duration,
    offered: f64,
    space: flowd::store::Space,
}

async fn measure(shape: &Shape, run_for: Duration, lat_for: Duration) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let (addr, daemon) = flowd(dir.path(), shape).await;
    check(addr, shape).await;
    // Warm up: compile caches, connection set-up, the store's first pages.
    let (_, warm) = max_rate(addr, shape.path, shape.body, Duration::from_millis(500)).await;
    let before = daemon.store_stats();
    let ((rate, n), cpu) = with_cpu(max_rate(addr, shape.path, shape.body, run_for)).await;
    let after = daemon.store_stats();
    let commits = (after.commits - before.commits) as f64;
    // The fixed offered load: half of what flowd sustains.
    let offered = (rate / 2.0).max(10.0);
    let lat = latencies(addr, "POST", shape.path, shape.body, 200, offered, lat_for, CONNECTIONS).await;
    let (clean, space) = daemon.shutdown().await;
    assert!(clean, "{}: the daemon did not stop cleanly", shape.name);
    let executions = 1 + warm + n + lat.len() as u64;
    let bytes = std::fs::metadata(dir.path().join("data/flowd.redb")).unwrap().len();
    Measured {
        rate,
        cpu_per_exec: cpu / n.max(1) as u32,
        bytes_per_exec: bytes as f64 / executions as f64,
        executions,
        commits_per_exec: commits / n.max(1) as f64,
        requests_per_commit: (after.requests - before.requests) as f64 / commits.max(1.0),
        p50: percentile(&lat, 50),
        p99: percentile(&lat, 99),
        offered,
        space,
    }
}

/// Resident and peak memory of this process (daemon and load generator), in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// The peer shape under a constant offered load (half of what it sustains) for `for_`,
/// with a redb cache bound of `cache` bytes, the process's memory sampled every tenth of
/// it: whether it levels off.
async fn steady(for_: Duration, cache: u64) {
    let shape = &SHAPES[1];
    let dir = tempfile::tempdir().unwrap();
    let (addr, daemon) = flowd_with_cache(dir.path(), shape, cache).await;
    check(addr, shape).await;
    let (rate, _) = max_rate(addr, shape.path, shape.body, Duration::from_secs(2)).await;
    let offered = (rate / 2.0).max(10.0);
    let (start_rss, _) = memory();
    let load = tokio::spawn(latencies(
        addr,
        "POST",
        shape.path,
        shape.body,
        200,
        offered,
        for_,
        CONNECTIONS,
    ));
    let mut samples = Vec::new();
    let started = Instant::now();
    for i in 1..=10 {
        tokio::time::sleep_until((started + for_ * i / 10).into()).await;
        samples.push(memory().0);
    }
    let lat = load.await.unwrap();
    let (_, peak) = memory();
    let (clean, space) = daemon.shutdown().await;
    assert!(clean, "steady: the daemon did not stop cleanly");
    println!(
        "  memory under constant load: peer shape, {offered:.0} req/s offered for {:.0} s ({} answered, p50 {:.2} ms, p99 {:.2} ms), redb cache bound {} MiB",
        for_.as_secs_f64(),
        lat.len(),
        ms(percentile(&lat, 50)),
        ms(percentile(&lat, 99)),
        cache >> 20
    );
    let shown: Vec<String> = samples.iter().map(|m| format!("{m:.0}")).collect();
    println!(
        "  RSS MiB (process: daemon and load generator) at start {start_rss:.0}, every {:.0} s: {}; peak {peak:.0}; file {:.1} MiB",
        for_.as_secs_f64() / 10.0,
        shown.join(" "),
        space.file_bytes as f64 / (1 << 20) as f64
    );
}

/// Drives one shape alone for 10 s (for a profiler) and prints what it did.
async fn flowd_only(shape: &Shape) {
    let dir = tempfile::tempdir().unwrap();
    let (addr, daemon) = flowd(dir.path(), shape).await;
    check(addr, shape).await;
    let (_, warm) = max_rate(addr, shape.path, shape.body, Duration::from_millis(500)).await;
    let before = daemon.store_stats();
    let ((rate, n), cpu) = with_cpu(max_rate(addr, shape.path, shape.body, Duration::from_secs(10))).await;
    let after = daemon.store_stats();
    println!(
        "flowd alone, shape {}: {rate:.0} executions/s, {:.0} commits/s, {:.1} write requests per commit, \
         {:.0} us of CPU per execution (process, load generator included)",
        shape.name,
        (after.commits - before.commits) as f64 / 10.0,
        (after.requests - before.requests) as f64 / (after.commits - before.commits).max(1) as f64,
        cpu.as_secs_f64() * 1e6 / n.max(1) as f64
    );
    let (_, space) = daemon.shutdown().await;
    print_space(shape.name, &space, 1 + warm + n);
}

/// One shape's bytes per execution, table by table, then the file's free space.
fn print_space(shape: &str, space: &flowd::store::Space, executions: u64) {
    let per = |b: u64| b as f64 / executions.max(1) as f64;
    let mut tables: Vec<_> = space.tables.iter().filter(|t| t.entries > 0).collect();
    tables.sort_by_key(|t| std::cmp::Reverse(t.page_bytes));
    let parts: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "{} {:.0} ({:.0}, {:.2})",
                t.name,
                per(t.page_bytes),
                per(t.stored_bytes),
                t.entries as f64 / executions.max(1) as f64
            )
        })
        .collect();
    let in_tables: u64 = space.tables.iter().map(|t| t.page_bytes).sum();
    println!("  {shape:<8} {}", parts.join(", "));
    println!(
        "  {:<8} tables {:.0} B/exec, allocated {:.0}, file {:.0} (free in the file {:.0})",
        "",
        per(in_tables),
        per(space.allocated_bytes),
        per(space.file_bytes),
        per(space.file_bytes.saturating_sub(space.allocated_bytes))
    );
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let (run_for, lat_for) = if quick {
        (Duration::from_secs(1), Duration::from_secs(1))
    } else {
        (Duration::from_secs(4), Duration::from_secs(3))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if args.iter().any(|a| a == "--flowd-only") {
            let name = args
                .iter()
                .position(|a| a == "--shape")
                .and_then(|i| args.get(i + 1))
                .map_or("bench", String::as_str);
            let shape = SHAPES
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("--shape: no shape {name:?} (bench or peer)"));
            flowd_only(shape).await;
            return;
        }
        if args.iter().any(|a| a == "--steady") {
            let number = |flag: &str, default: u64| {
                args.iter()
                    .position(|a| a == flag)
                    .and_then(|i| args.get(i + 1))
                    .map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{flag}: not a number: {v}")))
            };
            let cache = number("--cache", flowd::config::DEFAULT_REDB_CACHE >> 20) << 20;
            steady(Duration::from_secs(number("--seconds", 60)), cache).await;
            return;
        }
        let hyper_addr = bare_hyper().await;
        max_rate(hyper_addr, "/", BODY, Duration::from_millis(300)).await;
        // Bare hyper before and after the shapes: the machine's speed moves during a run.
        let ((h1, n1), hcpu1) = with_cpu(max_rate(hyper_addr, "/", BODY, run_for)).await;
        let mut measured = Vec::new();
        for shape in &SHAPES {
            measured.push(measure(shape, run_for, lat_for).await);
        }
        let ((h2, n2), hcpu2) = with_cpu(max_rate(hyper_addr, "/", BODY, run_for)).await;
        let hyper_rate = (h1 + h2) / 2.0;
        let hyper_cpu = (hcpu1 + hcpu2) / (n1 + n2).max(1) as u32;
        let offered = measured[0].offered;
        let lat = latencies(hyper_addr, "POST", "/", BODY, 200, offered, lat_for, CONNECTIONS).await;

        println!("webhook load on 127.0.0.1, {CONNECTIONS} keep-alive connections, 2 tokio workers shared with the load generator");
        println!("every flowd transition durable (redb, fsync); CPU is the whole process's, load generator included");
        println!(
            "  {:<44} {:>8.0} req/s  (before {h1:.0}, after {h2:.0})   {:>6.1} us CPU/request",
            "bare hyper, trivial JSON",
            hyper_rate,
            us(hyper_cpu)
        );
        for (shape, m) in SHAPES.iter().zip(&measured) {
            println!(
                "  {:<44} {:>8.0} exec/s   {:>5.2}% of bare hyper   {:>6.1} us CPU/exec ({:.1} over hyper's)   {:>6.0} B/exec on disk",
                shape.label,
                m.rate,
                100.0 * m.rate / hyper_rate,
                us(m.cpu_per_exec),
                us(m.cpu_per_exec) - us(hyper_cpu),
                m.bytes_per_exec
            );
        }
        println!("  store:");
        for (shape, m) in SHAPES.iter().zip(&measured) {
            println!(
                "  {:<44} {:.2} commits per execution, {:.1} write requests per commit, {} executions stored",
                shape.name, m.commits_per_exec, m.requests_per_commit, m.executions
            );
        }
        println!("  bytes on disk per execution by table: pages (key+value bytes stored, entries per execution)");
        for (shape, m) in SHAPES.iter().zip(&measured) {
            print_space(shape.name, &m.space, m.executions);
        }
        println!("  latency, open loop (offered: half of what the shape sustains):");
        println!(
            "  {:<44} p50 {:>8.2} ms   p99 {:>8.2} ms   at {offered:.0} req/s",
            "bare hyper",
            ms(percentile(&lat, 50)),
            ms(percentile(&lat, 99))
        );
        for (shape, m) in SHAPES.iter().zip(&measured) {
            println!(
                "  {:<44} p50 {:>8.2} ms   p99 {:>8.2} ms   at {:.0} req/s",
                shape.name,
                ms(m.p50),
                ms(m.p99),
                m.offered
            );
        }
        let steady_for = if quick { Duration::from_secs(10) } else { Duration::from_secs(60) };
        steady(steady_for, flowd::config::DEFAULT_REDB_CACHE).await;
        steady(steady_for, SMALL_CACHE).await;
    });
}

/// User plus system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct it is given and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
