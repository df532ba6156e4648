//! The same greet connector (examples/connectors) in each language, through flowd's own
//! runtime: component size, cold compile, cached load, the compile of a rebuild (the same
//! code in a new component, its functions from the function cache), per-call time and fuel
//! for a small name and for a 580 KB one, and the smallest `memory` limit each runs in.
//! Ratios are against the Rust build, measured in the same run.
//!
//! Run: `examples/connectors/build.sh && cargo bench --bench languages` (the JavaScript and
//! Python components are read from target/connectors, or FLOWD_CONNECTORS_DIR).

use flowd::config::{DaemonConfig, Grants, StepLimits};
use flowd::plugin::{CallContext, Connector, Runtime};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CALLS: usize = 30;
const BIG_NAME: usize = 580 << 10;

fn runtime(cache: &std::path::Path) -> Arc<Runtime> {
    let mut config = DaemonConfig::builtin();
    config.cache_dir = Some(cache.to_path_buf());
    config.limits.max_step.memory = 256 << 20;
    config.limits.max_payload = 4 << 20;
    Arc::new(Runtime::new(&config).expect("runtime"))
}

fn ctx() -> CallContext {
    CallContext {
        job_id: "job".into(),
        project: "bench".into(),
        flow: "greet".into(),
        step: "hello".into(),
        attempt: 1,
        environment: "bench".into(),
    }
}

fn limits(memory: u64) -> StepLimits {
    StepLimits {
        fuel: 100_000_000_000,
        timeout: Duration::from_secs(120),
        memory,
    }
}

/// One call: its time and fuel, or why it failed.
async fn call(rt: &Arc<Runtime>, c: &Arc<Connector>, name: &str, memory: u64) -> Result<(Duration, u64), String> {
    let config = json!({ "greeting": "Hi", "name": name });
    let l = limits(memory);
    let inv = c
        .run(
            rt,
            &ctx(),
            config.to_string().into(),
            r#"{"trigger": {}, "steps": {}}"#.into(),
            &l,
            l.timeout,
        )
        .await;
    match inv.result {
        Ok(_) => Ok((inv.duration, inv.fuel_used)),
        Err(f) => Err(f.to_string()),
    }
}

struct Row {
    lang: &'static str,
    size: u64,
    cold: Duration,
    cached: Duration,
    rebuilt: Duration,
    small: (Duration, u64),
    big: (Duration, u64),
    memory: u64,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn measure(lang: &'static str, path: PathBuf) -> Option<Row> {
    let Ok(bytes) = std::fs::read(&path) else {
        println!(
            "{lang:<22} not built ({}): run examples/connectors/build.sh",
            path.display()
        );
        return None;
    };
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let start = Instant::now();
    rt.load("greet", &bytes, &Grants::default()).expect("loads");
    let cold = start.elapsed();
    // A second runtime: the compiled code comes from the cache, as on a daemon's restart.
    let rt = runtime(cache.path());
    let start = Instant::now();
    let c = Arc::new(rt.load("greet", &bytes, &Grants::default()).expect("loads"));
    let cached = start.elapsed();
    // A rebuild: new bytes (a custom section added, as a toolchain's stamp would), so the
    // component cache misses, but each function is found in the function cache.
    let mut rebuild = bytes.clone();
    rebuild.extend_from_slice(&[0, 6, 5, b'b', b'u', b'i', b'l', b'd']);
    let rt3 = runtime(cache.path());
    let start = Instant::now();
    rt3.load("greet", &rebuild, &Grants::default())
        .expect("a rebuild loads");
    let rebuilt = start.elapsed();
    drop(rt3);
    let big_name = "a".repeat(BIG_NAME);
    let mut small = Vec::new();
    let mut big = Vec::new();
    let (mut small_fuel, mut big_fuel) = (0, 0);
    for _ in 0..CALLS {
        let (d, f) = call(&rt, &c, "ada", 256 << 20).await.expect("small call");
        small.push(d);
        small_fuel = f;
        let (d, f) = call(&rt, &c, &big_name, 256 << 20).await.expect("big call");
        big.push(d);
        big_fuel = f;
    }
    let mut memory = 1 << 20;
    while memory < 256 << 20 && call(&rt, &c, &big_name, memory).await.is_err() {
        memory *= 2;
    }
    Some(Row {
        lang,
        size: bytes.len() as u64,
        cold,
        cached,
        rebuilt,
        small: (median(small), small_fuel),
        big: (median(big), big_fuel),
        memory,
    })
}

fn built(file: &str) -> PathBuf {
    std::env::var_os("FLOWD_CONNECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/connectors"))
        .join(file)
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let builds: [(&'static str, PathBuf); 4] = [
        ("Rust", flowd_fixtures::wasm("example-rust-action")),
        ("JavaScript (QuickJS)", built("qjs-action.wasm")),
        ("JavaScript (SpiderMonkey)", built("js-action.wasm")),
        ("Python", built("python-action.wasm")),
    ];
    let mut rows = Vec::new();
    for (lang, path) in builds {
        if let Some(row) = measure(lang, path).await {
            rows.push(row);
        }
    }
    println!(
        "{:<26} {:>9} {:>10} {:>10} {:>10} {:>11} {:>13} {:>11} {:>13} {:>9}",
        "build", "size", "cold", "cached", "rebuilt", "call", "fuel", "580 KB call", "580 KB fuel", "memory"
    );
    let base = rows
        .first()
        .filter(|r| r.lang == "Rust")
        .map(|r| (r.small.0, r.small.1, r.big.1));
    for r in &rows {
        println!(
            "{:<26} {:>9} {:>8.2} s {:>8.1} ms {:>8.2} s {:>8.1} µs {:>13} {:>8.1} ms {:>13} {:>9}",
            r.lang,
            mib(r.size),
            r.cold.as_secs_f64(),
            r.cached.as_secs_f64() * 1000.0,
            r.rebuilt.as_secs_f64(),
            r.small.0.as_secs_f64() * 1e6,
            r.small.1,
            r.big.0.as_secs_f64() * 1000.0,
            r.big.1,
            mib(r.memory),
        );
    }
    if let Some((time, fuel, big_fuel)) = base {
        println!("\na rebuild's compile against the cold one (same run):");
        for r in &rows {
            println!(
                "{:<26} {:>6.2}x",
                r.lang,
                r.rebuilt.as_secs_f64() / r.cold.as_secs_f64()
            );
        }
        println!("\nagainst Rust (same run): per-call time, fuel, 580 KB fuel");
        for r in rows.iter().skip(1) {
            println!(
                "{:<26} {:>6.1}x {:>8.1}x {:>8.1}x",
                r.lang,
                r.small.0.as_secs_f64() / time.as_secs_f64(),
                r.small.1 as f64 / fuel.max(1) as f64,
                r.big.1 as f64 / big_fuel.max(1) as f64,
            );
        }
    }
}
