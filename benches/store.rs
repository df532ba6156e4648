//! Durable write throughput of the redb store, measured in one run: the group-commit writer
//! with many executions in flight against one transaction (one fsync) per execution, for
//! the writes the executor makes for a 3-step flow with 1 KiB payloads (src/engine/record.rs):
//! accepted (pending + trigger payload), running, per step started and finished (row,
//! config, output, one log record), final status: 9 `Store::write` calls per execution.
//!
//! Run: `cargo bench --bench store` (add `-- --quick` for a short run).

use flowd::engine::ExecutionStatus;
use flowd::plugin::Level;
use flowd::store::{Execution, JobId, LogRow, PayloadKey, PayloadKind, RedbStore, StepRow, Store, Write};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const STEPS: u32 = 3;
const PAYLOAD_BYTES: usize = 1024;
const LEVELS: [usize; 4] = [1, 64, 512, 2048];

/// A JSON object that serializes to exactly `PAYLOAD_BYTES` bytes.
fn payload(field: &str) -> Value {
    let overhead = json!({ field: "" }).to_string().len();
    let v = json!({ field: "x".repeat(PAYLOAD_BYTES - overhead) });
    debug_assert_eq!(v.to_string().len(), PAYLOAD_BYTES);
    v
}

/// The payloads every execution carries, built once.
struct Shape {
    trigger: Value,
    output: Value,
}

fn execution(job_id: JobId, status: ExecutionStatus, now: SystemTime) -> Execution {
    Execution {
        job_id,
        project: "bench".into(),
        flow: "orders".into(),
        flow_version: "3f2a9c1e".into(),
        trigger_kind: "webhook".into(),
        trigger_fingerprint: "9b1d5c7f0a2e4b6d".into(),
        environment: "bench".into(),
        status,
        attempt: 1,
        created_at: now,
        started_at: (status != ExecutionStatus::Pending).then_some(now),
        finished_at: status.is_final().then_some(now),
        steps_total: STEPS,
        steps_executed: if status.is_final() { STEPS } else { 0 },
        resume_at: None,
    }
}

/// Built from JSON so the row's defaulted fields need not be spelled out.
fn step(index: u32, finished: bool) -> StepRow {
    let now = "2025-01-01T00:00:00.000Z";
    let mut row = json!({
        "attempt": 1,
        "index": index,
        "name": format!("step{index}"),
        "kind": "action",
        "status": if finished { "success" } else { "running" },
        "connector": { "name": "http", "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        "started_at": now,
        "duration": 0.0,
        "fuel_used": 0,
    });
    if finished {
        row["finished_at"] = json!(now);
        row["duration"] = json!(0.012);
        row["fuel_used"] = json!(1_234_567);
        row["tries"] = json!([{ "started_at": now, "duration": 0.012, "fuel_used": 1_234_567, "dropped_logs": 0 }]);
    }
    serde_json::from_value(row).expect("a step row")
}

/// The 9 writes of one execution, in the order the executor makes them.
fn writes(shape: &Shape) -> Vec<Vec<Write>> {
    let job_id = JobId::new();
    let now = SystemTime::now();
    let key = |step, kind| PayloadKey {
        job_id,
        attempt: 1,
        step,
        kind,
    };
    let mut out = vec![
        vec![
            Write::Execution(execution(job_id, ExecutionStatus::Pending, now)),
            Write::Payload {
                key: PayloadKey::trigger(job_id),
                value: shape.trigger.clone().into(),
                text: None,
            },
        ],
        vec![Write::Execution(execution(job_id, ExecutionStatus::Running, now))],
    ];
    for i in 0..STEPS {
        out.push(vec![Write::Step {
            job_id,
            row: step(i, false),
        }]);
        out.push(vec![
            Write::Step {
                job_id,
                row: step(i, true),
            },
            Write::Payload {
                key: key(i, PayloadKind::Config),
                value: json!({ "url": "https://api.example.com/orders", "id": i }).into(),
                text: None,
            },
            Write::Payload {
                key: key(i, PayloadKind::Output),
                value: shape.output.clone().into(),
                text: None,
            },
            Write::Logs(vec![LogRow {
                time: now,
                level: Level::Info,
                job_id,
                project: "bench".into(),
                flow: "orders".into(),
                flow_version: "3f2a9c1e".into(),
                attempt: 1,
                step: Some(format!("step{i}")),
                connector: Some("http".into()),
                action: "run".into(),
                category: "http".into(),
                environment: "bench".into(),
                message: "POST https://api.example.com/orders -> 200".into(),
            }]),
        ]);
    }
    out.push(vec![Write::Execution(execution(job_id, ExecutionStatus::Success, now))]);
    out
}

struct Run {
    executions: u64,
    secs: f64,
    commits: u64,
    bytes_per_execution: f64,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.executions as f64 / self.secs
    }

    fn per_commit(&self) -> f64 {
        self.executions as f64 / self.commits.max(1) as f64
    }
}

fn open(dir: &Path) -> Arc<RedbStore> {
    Arc::new(RedbStore::open(dir, 1 << 20).expect("open the store"))
}

/// The file size per execution, once the store is closed.
fn close(store: Arc<RedbStore>, dir: &Path, executions: u64) -> f64 {
    drop(Arc::into_inner(store).expect("no task holds the store"));
    let size = std::fs::metadata(dir.join("flowd.redb"))
        .expect("the database file")
        .len();
    size as f64 / executions.max(1) as f64
}

/// `concurrency` executions in flight for `budget`, each making its 9 writes in order.
async fn group_commit(shape: Arc<Shape>, concurrency: usize, budget: Duration) -> Run {
    let dir = scratch();
    let store = open(dir.path());
    let start = Instant::now();
    let deadline = start + budget;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (store, shape) = (store.clone(), shape.clone());
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    for w in writes(&shape) {
                        store.write(w).await.expect("a durable write");
                    }
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut executions = 0;
    for t in tasks {
        executions += t.await.expect("a writer task");
    }
    let secs = start.elapsed().as_secs_f64();
    let commits = store.writer_stats().commits;
    Run {
        executions,
        secs,
        commits,
        bytes_per_execution: close(store, dir.path(), executions),
    }
}

/// One execution at a time, all its writes in one transaction: one fsync per execution.
async fn one_fsync_per_execution(shape: Arc<Shape>, budget: Duration) -> Run {
    let dir = scratch();
    let store = open(dir.path());
    let start = Instant::now();
    let mut executions = 0;
    while start.elapsed() < budget {
        let all = writes(&shape).into_iter().flatten().collect();
        store.write(all).await.expect("a durable write");
        executions += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let commits = store.writer_stats().commits;
    Run {
        executions,
        secs,
        commits,
        bytes_per_execution: close(store, dir.path(), executions),
    }
}

/// Under the target directory, so on a real disk (a tmpfs /tmp would make fsync free).
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a scratch directory")
}

fn row(label: &str, r: &Run) {
    println!(
        "{label:<28} {:>9.0} exec/s {:>9} executions {:>8} commits {:>8.1} exec/commit {:>7.0} B/exec on disk",
        r.per_sec(),
        r.executions,
        r.commits,
        r.per_commit(),
        r.bytes_per_execution
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_secs(if quick { 1 } else { 5 });
    let shape = Arc::new(Shape {
        trigger: payload("body"),
        output: payload("response"),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");

    println!("flowd store: durable executions/s on redb, fsync on every commit");
    println!(
        "one execution = {} Store::write calls (3-step flow, {PAYLOAD_BYTES} B trigger and output payloads, \
         one log record per step); {}s per measurement, tokio with 2 workers",
        2 + 2 * STEPS + 1,
        budget.as_secs()
    );
    println!();

    let mut best: Option<(usize, Run)> = None;
    for n in LEVELS {
        let r = rt.block_on(group_commit(shape.clone(), n, budget));
        row(&format!("group commit, {n} in flight"), &r);
        if best.as_ref().is_none_or(|(_, b)| r.per_sec() > b.per_sec()) {
            best = Some((n, r));
        }
    }
    let single = rt.block_on(one_fsync_per_execution(shape.clone(), budget));
    row("one fsync per execution", &single);

    let (n, sat) = best.expect("at least one level");
    println!();
    println!("saturation: {n} in flight");
    println!(
        "group commit / one fsync per execution: {:.1}x ({:.0} vs {:.0} exec/s)",
        sat.per_sec() / single.per_sec(),
        sat.per_sec(),
        single.per_sec()
    );
    println!(
        "executions per fsync at saturation: {:.1} (target >= 50)",
        sat.per_commit()
    );
    println!(
        "bytes on disk per execution: {:.0} (flowd.redb size / executions, store closed, {} executions)",
        sat.bytes_per_execution, sat.executions
    );
}
