//! Start-up of `flowd serve` against the size of its store: after a clean stop (SIGTERM)
//! and after a kill (SIGKILL), when the database must be checked and repaired before
//! anything runs. The store grows through the sizes below; at each, the daemon is started
//! three times after each kind of stop and the median time to its listening line is
//! printed, with the kill's extra time per GB. Both are measured in the same run.
//!
//! Run: `cargo bench --bench startup` (add `-- --quick` for smaller stores).

use flowd::engine::{ExecutionStatus, StepStatus};
use flowd::store::{Attempt, Execution, JobId, LogRow, PayloadKey, PayloadKind, RedbStore, StepRow, Store, Write};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Executions per transaction while seeding.
const BATCH: usize = 1000;

/// One execution of a three-step flow, with its payloads and log records (a few KB).
fn execution(i: usize, t: SystemTime, out: &mut Vec<Write>) {
    let job_id = JobId::at(t);
    let text = |what: &str| format!("{what} {i}: {}", "lorem ipsum dolor sit amet ".repeat(12));
    out.push(Write::Execution(Execution {
        job_id,
        project: "shop".into(),
        flow: "orders".into(),
        flow_version: "v1".into(),
        trigger_kind: "http".into(),
        trigger_fingerprint: "f".into(),
        environment: "bench".into(),
        status: ExecutionStatus::Success,
        attempt: 1,
        created_at: t,
        started_at: Some(t),
        finished_at: Some(t),
        steps_total: 3,
        steps_executed: 3,
        resume_at: None,
    }));
    out.push(Write::Attempt {
        job_id,
        row: Attempt {
            attempt: 1,
            status: ExecutionStatus::Success,
            started_at: Some(t),
            finished_at: Some(t),
            from_step: 0,
        },
    });
    out.push(Write::Payload {
        key: PayloadKey::trigger(job_id),
        value: json!({ "kind": "http", "body": { "order": i, "note": text("order") } }).into(),
        text: None,
    });
    let mut logs = Vec::new();
    for step in 0..3u32 {
        out.push(Write::Step {
            job_id,
            row: StepRow {
                attempt: 1,
                index: step,
                name: format!("step{step}"),
                kind: "connector".into(),
                status: StepStatus::Success,
                connector: None,
                started_at: Some(t),
                finished_at: Some(t),
                duration: 0.001,
                fuel_used: 100_000,
                error: None,
                note: None,
                tries: Vec::new(),
                reused_from: None,
            },
        });
        out.push(Write::Payload {
            key: PayloadKey {
                job_id,
                attempt: 1,
                step,
                kind: PayloadKind::Output,
            },
            value: json!({ "step": step, "result": text("result") }).into(),
            text: None,
        });
        logs.push(LogRow {
            time: t,
            level: flowd::plugin::Level::Info,
            job_id,
            project: "shop".into(),
            flow: "orders".into(),
            flow_version: "v1".into(),
            attempt: 1,
            step: Some(format!("step{step}")),
            connector: Some("log".into()),
            action: "run".into(),
            category: "orders".into(),
            environment: "bench".into(),
            message: text("logged"),
        });
    }
    out.push(Write::Logs(logs));
}

fn file_size(data: &Path) -> u64 {
    std::fs::metadata(data.join("flowd.redb")).map_or(0, |m| m.len())
}

/// Adds executions until the database file is at least `bytes` long.
fn grow(rt: &tokio::runtime::Runtime, data: &Path, bytes: u64, next: &mut usize) {
    let store = Arc::new(RedbStore::open(data, 1 << 20).expect("open the store"));
    let start = SystemTime::now() - Duration::from_secs(24 * 3600);
    while file_size(data) < bytes {
        let mut writes = Vec::new();
        for _ in 0..BATCH {
            execution(*next, start + Duration::from_millis(*next as u64), &mut writes);
            *next += 1;
        }
        rt.block_on(store.write(writes)).expect("a durable write");
    }
    drop(Arc::into_inner(store).expect("no one else holds the store"));
}

/// Starts `flowd serve` and returns it with the time until it announced its listeners.
fn start(config: &Path) -> (Child, Duration) {
    let began = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowd"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting flowd serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("flowd: trigger listener on") => break,
            Some(Ok(_)) => {}
            _ => panic!("flowd serve did not start"),
        }
    }
    let took = began.elapsed();
    std::thread::spawn(move || for _ in lines {});
    (child, took)
}

fn terminate(mut child: Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes_mb: &[u64] = if quick { &[50, 200] } else { &[100, 500, 1000, 2000] };
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-startup");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("flows")).expect("the bench directory");
    std::fs::write(
        root.join("flows/orders.toml"),
        "[flow]\nname = \"orders\"\nproject = \"shop\"\n[trigger.http]\npath = \"/orders\"\n[[steps]]\nname = \"s\"\nconnector = \"log\"\nconfig = { message = \"hi\" }\n",
    )
    .expect("a flow");
    let config = root.join("flowd.toml");
    std::fs::write(
        &config,
        format!(
            "environment = \"bench\"\nflows = \"flows\"\nretention = \"90d\"\ncache_dir = {:?}\n\n[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n[connectors.log]\nbundled = \"log\"\n",
            root.join("cache").display().to_string()
        ),
    )
    .expect("the config");
    let data = root.join("data");
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let mut next = 0;
    // The first start compiles the bundled connector into the cache.
    terminate(start(&config).0);
    println!(
        "{:>9} {:>11} {:>13} {:>13} {:>14}",
        "store MB", "executions", "after SIGTERM", "after SIGKILL", "repair per GB"
    );
    for mb in sizes_mb {
        grow(&rt, &data, mb << 20, &mut next);
        let (mut clean, mut killed) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            // A clean stop, then a start.
            let (child, _) = start(&config);
            terminate(child);
            let (child, took) = start(&config);
            clean.push(took);
            // A kill, then a start (which repairs).
            kill(child);
            let (child, took) = start(&config);
            killed.push(took);
            terminate(child);
        }
        let (clean, killed) = (median(clean), median(killed));
        let size = file_size(&data) as f64;
        let per_gb = killed.saturating_sub(clean).as_secs_f64() / (size / 1e9);
        println!(
            "{:>9.0} {:>11} {:>12.3}s {:>12.3}s {:>13.2}s",
            size / (1 << 20) as f64,
            next,
            clean.as_secs_f64(),
            killed.as_secs_f64(),
            per_gb
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}
