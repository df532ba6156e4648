//! Webhook load, bounded and on 127.0.0.1 only: a bare hyper server answering a trivial
//! JSON body against `flowd serve` running webhook → 3 Rust connector steps → respond,
//! with every transition recorded durably. Both run in this process on the same tokio
//! runtime as the load generator. Prints, in one run: the highest rate each sustains with
//! 64 keep-alive connections, p50/p99 latency at a fixed offered load (open loop: latency
//! counts from when a request was due, not when it was sent), and flowd's ratio to hyper.
//!
//! Run: `cargo bench --bench load` (`-- --quick` for a short run; `-- --flowd-only` drives
//! flowd alone for 10 s, for a profiler).

#[path = "support/http.rs"]
mod http;

use bytes::Bytes;
use http::{connect, latencies, ms, percentile, send};
use http_body_util::Full;
use hyper::{Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The allocator the `flowd` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: usize = 64;

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

const FLOW: &str = r#"
[flow]
name = "bench"
[trigger.http]
path = "/bench"

[[steps]]
name = "shape"
connector = "transform"
config = { from = "trigger.body", fields = { id = "id", total = "sum(items[].price)" } }

[[steps]]
name = "enrich"
connector = "transform"
config = { from = "steps.shape", keep = true, set = { currency = "EUR" } }

[[steps]]
name = "record"
connector = "log"
config = { category = "bench", message = "order {{ steps.shape.id }}" }

[[steps]]
name = "reply"
respond = { status = 200, body = "{{ steps.enrich }}" }
"#;

/// A running daemon and the redb store under it (for its group-commit figures).
struct Flowd {
    daemon: flowd::daemon::Daemon,
    store: Arc<flowd::store::RedbStore>,
}

impl Flowd {
    fn store_stats(&self) -> flowd::store::WriterStats {
        self.store.writer_stats()
    }

    async fn shutdown(self) -> bool {
        self.daemon.shutdown().await
    }
}

async fn flowd(dir: &std::path::Path) -> (SocketAddr, Flowd) {
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::write(dir.join("flows/bench.toml"), FLOW).unwrap();
    std::fs::write(
        dir.join("flowd.toml"),
        "environment = \"bench\"\nflows = \"flows\"\n[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\ndata_dir = \"data\"\nworkers = 256\n[limits]\ninstances = 512\n[connectors.transform]\nbundled = \"transform\"\n[connectors.log]\nbundled = \"log\"\n",
    )
    .unwrap();
    let config = flowd::config::DaemonConfig::load(&dir.join("flowd.toml")).unwrap();
    let setup = flowd::loader::load(&config, &[], flowd::loader::Purpose::Serve)
        .await
        .unwrap();
    let store = Arc::new(flowd::store::RedbStore::open(&dir.join("data"), config.limits.max_payload as usize).unwrap());
    let daemon = flowd::daemon::Daemon::start_on(config, setup, store.clone())
        .await
        .unwrap();
    (daemon.local_addr(), Flowd { daemon, store })
}

const BODY: &[u8] = br#"{"id":"A-1","items":[{"sku":"tea","price":4.5},{"sku":"cup","price":12}]}"#;

/// Requests per second with CONNECTIONS connections sending back to back.
async fn max_rate(addr: SocketAddr, path: &'static str, for_: Duration) -> f64 {
    let end = Instant::now() + for_;
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        tasks.push(tokio::spawn(async move {
            let mut s = connect(addr).await;
            let mut n = 0u64;
            while Instant::now() < end {
                assert_eq!(send(&mut s, addr, "POST", path, BODY).await, 200);
                n += 1;
            }
            n
        }));
    }
    let start = Instant::now();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// p50 and p99 latency at `rate` requests per second, open loop.
async fn latency_at(addr: SocketAddr, path: &'static str, rate: f64, for_: Duration) -> (Duration, Duration) {
    let all = latencies(addr, "POST", path, BODY, 200, rate, for_, CONNECTIONS).await;
    (percentile(&all, 50), percentile(&all, 99))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
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
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let hyper_addr = bare_hyper().await;
        let (flowd_addr, daemon) = flowd(dir.path()).await;
        // Warm up: compile caches, connection set-up, the store's first pages.
        max_rate(hyper_addr, "/", Duration::from_millis(300)).await;
        max_rate(flowd_addr, "/bench", Duration::from_millis(500)).await;
        if std::env::args().any(|a| a == "--flowd-only") {
            let before = daemon.store_stats();
            let cpu_before = cpu_time();
            let rate = max_rate(flowd_addr, "/bench", Duration::from_secs(10)).await;
            let cpu = cpu_time() - cpu_before;
            let after = daemon.store_stats();
            println!(
                "flowd alone: {rate:.0} executions/s, {:.0} commits/s, {:.1} write requests per commit, \
                 {:.0} us of CPU per execution (process, load generator included)",
                (after.commits - before.commits) as f64 / 10.0,
                (after.requests - before.requests) as f64 / (after.commits - before.commits).max(1) as f64,
                cpu.as_secs_f64() * 1e6 / (rate * 10.0)
            );
            daemon.shutdown().await;
            return;
        }

        let hyper_rate = max_rate(hyper_addr, "/", run_for).await;
        let before = daemon.store_stats();
        let flowd_rate = max_rate(flowd_addr, "/bench", run_for).await;
        let after = daemon.store_stats();
        let executions = flowd_rate * run_for.as_secs_f64();
        let commits = (after.commits - before.commits) as f64;
        // The fixed offered load: half of what flowd sustains, for both.
        let offered = (flowd_rate / 2.0).max(10.0);
        let (h50, h99) = latency_at(hyper_addr, "/", offered, lat_for).await;
        let (f50, f99) = latency_at(flowd_addr, "/bench", offered, lat_for).await;

        println!("webhook load on 127.0.0.1, {CONNECTIONS} keep-alive connections, 2 tokio workers shared with the load generator");
        println!("flowd flow: webhook -> transform -> transform -> log -> respond, every transition durable (redb, fsync)");
        println!("  {:<44} {:>10.0} req/s", "bare hyper, trivial JSON", hyper_rate);
        println!("  {:<44} {:>10.0} executions/s  ({:.1}% of bare hyper; target >= 5%)", "flowd, durable 3-step flow", flowd_rate, 100.0 * flowd_rate / hyper_rate);
        println!("  {:<44} {:>10.1} commits per execution, {:.1} write requests per commit", "flowd's store", commits / executions, (after.requests - before.requests) as f64 / commits.max(1.0));
        println!("  latency at {offered:.0} req/s offered (open loop):");
        println!("  {:<44} p50 {:>8.2} ms   p99 {:>8.2} ms", "bare hyper", ms(h50), ms(h99));
        println!("  {:<44} p50 {:>8.2} ms   p99 {:>8.2} ms", "flowd", ms(f50), ms(f99));
        daemon.shutdown().await;
    });
}

/// User plus system CPU time of this process so far (Linux `/proc/self/stat`, in clock
/// ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat; here, after pid and comm, 11 and 12.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
