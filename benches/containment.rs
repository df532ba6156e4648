//! Containment: a healthy webhook flow, held open until its `respond` step, measured alone
//! and again while two runaway connectors run beside it — one a CPU loop stopped by its
//! 5 s timeout, one sleeping 5 s — each hit at 2 requests per second (so about ten of each
//! are running at once). The real `flowd serve` runs in its own process. Rounds alternate
//! (alone, then beside the runaways, which are then let run out), so drift in this
//! machine's speed hits both alike; each round's p50/p99 and `/healthz`'s p99 are printed,
//! with the median ratio over the rounds (target: the healthy flow's p99 within 3× of
//! alone).
//!
//! Run: `cargo bench --bench containment` (`-- --quick` for a short run).

#[path = "support/http.rs"]
mod http;

use http::{latencies, ms, percentile};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const HEALTHY: &str = r#"
[flow]
name = "healthy"
[trigger.http]
path = "/healthy"

[[steps]]
name = "shape"
connector = "transform"
config = { from = "trigger.body", fields = { id = "id", total = "sum(items[].price)" } }

[[steps]]
name = "reply"
respond = { status = 200, body = "{{ steps.shape }}" }
"#;

fn runaway(name: &str, connector: &str, config: &str) -> String {
    format!(
        "[flow]\nname = \"{name}\"\n[trigger.http]\npath = \"/{name}\"\n\n[[steps]]\nname = \"run\"\nconnector = \"{connector}\"\nconfig = {config}\ntimeout = \"5s\"\nfuel = 1_000_000_000_000\n"
    )
}

const TOKEN: &str = "bench-containment-token-0123456789";

const BODY: &[u8] = br#"{"id":"A-1","items":[{"sku":"tea","price":4.5},{"sku":"cup","price":12}]}"#;

/// `flowd serve` on a scratch config; its trigger and admin addresses.
fn start(dir: &Path) -> (Child, SocketAddr, SocketAddr) {
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::write(dir.join("flows/healthy.toml"), HEALTHY).unwrap();
    std::fs::write(dir.join("flows/spin.toml"), runaway("spin", "looper", "{}")).unwrap();
    std::fs::write(
        dir.join("flows/nap.toml"),
        runaway("nap", "sleeper", "{ ms = 5000, block = true }"),
    )
    .unwrap();
    std::fs::write(
        dir.join("flowd.toml"),
        format!(
            "environment = \"bench\"\nflows = \"flows\"\ncache_dir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\ndata_dir = \"data\"\n[[server.tokens]]\nname = \"bench\"\nrole = \"viewer\"\nenv = \"FLOWD_BENCH_CONTAINMENT_TOKEN\"\n[limits]\nmax_fuel = 1_000_000_000_000\nmax_timeout = \"10s\"\n[connectors.transform]\nbundled = \"transform\"\n[connectors.looper]\npath = {:?}\n[connectors.sleeper]\npath = {:?}\n",
            dir.join("cache").display().to_string(),
            flowd_fixtures::wasm("looper").display().to_string(),
            flowd_fixtures::wasm("sleeper").display().to_string(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowd"))
        .args(["serve", "--config"])
        .arg(dir.join("flowd.toml"))
        .env("FLOWD_BENCH_CONTAINMENT_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting flowd serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut admin = None;
    let trigger = loop {
        let line = lines.next().expect("flowd serve started").unwrap();
        if let Some(a) = line.strip_prefix("flowd: admin listener on http://") {
            admin = Some(a.parse().unwrap());
        }
        if let Some(a) = line.strip_prefix("flowd: trigger listener on http://") {
            break a.parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, trigger, admin.unwrap())
}

/// p50 and p99 of the healthy flow and p99 of `/healthz`, measured together.
async fn measure(trigger: SocketAddr, admin: SocketAddr, for_: Duration) -> (Duration, Duration, Duration) {
    let healthy = tokio::spawn(latencies(trigger, "POST", "/healthy", BODY, 200, 200.0, for_, 8));
    let health = tokio::spawn(latencies(admin, "GET", "/healthz", b"", 200, 50.0, for_, 2));
    let (healthy, health) = (healthy.await.unwrap(), health.await.unwrap());
    (
        percentile(&healthy, 50),
        percentile(&healthy, 99),
        percentile(&health, 99),
    )
}

/// Hits `path` at 2 requests per second until `stop`.
fn hammer(trigger: SocketAddr, path: &'static str, stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut s = http::connect(trigger).await;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            assert_eq!(http::send(&mut s, trigger, "POST", path, b"{}").await, 202);
        }
    });
}

/// Waits until no execution is unfinished.
async fn drained(admin: SocketAddr) {
    let stream = tokio::net::TcpStream::connect(admin).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        send.ready().await.unwrap();
        let req = hyper::Request::get("/v1/executions?status=pending,queued,running&limit=1")
            .header("host", admin.to_string())
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let body = http_body_util::BodyExt::collect(send.send_request(req).await.unwrap().into_body())
            .await
            .unwrap()
            .to_bytes();
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if page["executions"].as_array().is_some_and(Vec::is_empty) {
            return;
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, for_) = if quick {
        (1, Duration::from_secs(3))
    } else {
        (3, Duration::from_secs(5))
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut child, trigger, admin) = start(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Warm up: the connectors' first instantiation, the store's first pages.
        measure(trigger, admin, Duration::from_secs(1)).await;
        println!("containment: a healthy held-open flow at 200 req/s (8 connections), /healthz at 50 req/s");
        println!("runaways: a CPU loop and a 5 s sleep, each hit at 2 req/s with a 5 s timeout (~10 of each running)");
        println!("  {:<28} {:>10} {:>10} {:>14}", "", "p50", "p99", "/healthz p99");
        let (mut p50s, mut p99s, mut h99s) = (Vec::new(), Vec::new(), Vec::new());
        let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
        for round in 1..=rounds {
            let alone = measure(trigger, admin, for_).await;
            let stop = Arc::new(AtomicBool::new(false));
            hammer(trigger, "/spin", stop.clone());
            hammer(trigger, "/nap", stop.clone());
            // Until about ten of each run at once.
            tokio::time::sleep(Duration::from_secs(6)).await;
            let beside = measure(trigger, admin, for_).await;
            stop.store(true, Ordering::Relaxed);
            for (what, (p50, p99, h99)) in [("alone", alone), ("beside two runaways", beside)] {
                println!("  round {round}: {what:<19} {:>8.2}ms {:>8.2}ms {:>12.2}ms", ms(p50), ms(p99), ms(h99));
            }
            p50s.push(ratio(alone.0, beside.0));
            p99s.push(ratio(alone.1, beside.1));
            h99s.push(ratio(alone.2, beside.2));
            // The runaways run out before the next round's "alone".
            drained(admin).await;
        }
        println!(
            "  median ratio (beside / alone) over {rounds} rounds: p50 {:.2}x, p99 {:.2}x (target <= 3x), /healthz p99 {:.2}x",
            median(p50s),
            median(p99s),
            median(h99s)
        );
    });
    rt.shutdown_background();
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}
