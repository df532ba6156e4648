//! The web console's speed in Chromium over a large store: the admin benchmark's data
//! directory (1,000,000 executions, 100,000 with `--quick`; seeded once by whichever of
//! the two runs first) plus one 50-step execution, served by the real `flowd serve`; then
//! `console/e2e/bench.mjs` times, over 20 interleaved rounds, navigation → the execution
//! log's first 50 rows rendered and navigation → that execution's detail rendered, each
//! beside a navigation to `/healthz` in the same run, and prints the bundle's gzipped size.
//!
//! Run: `cargo bench --bench console` (needs `console/setup.sh`: npm packages, chromium).

#[path = "admin.rs"]
#[allow(dead_code)]
mod admin;

use flowd::engine::{ConnectorUse, ExecutionStatus, StepStatus};
use flowd::store::{Attempt, Execution, JobId, PayloadKey, PayloadKind, RedbStore, StepRow, Store, Write};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, SystemTime};

const STEPS: u32 = 50;

/// Adds one finished execution of [`STEPS`] steps (each with config and output), unless an
/// earlier run did; its job id.
fn long_execution(rt: &tokio::runtime::Runtime, root: &Path) -> String {
    let marker = root.join("long-execution");
    if let Ok(id) = std::fs::read_to_string(&marker) {
        return id.trim().to_string();
    }
    let store = RedbStore::open(&root.join("data"), 1 << 20).expect("open the store");
    let t = SystemTime::now() - Duration::from_secs(120);
    let job_id = JobId::at(t);
    let at = |ms: u64| t + Duration::from_millis(ms);
    let mut writes = vec![
        Write::Execution(Execution {
            job_id,
            project: "shop".into(),
            flow: "long".into(),
            flow_version: "1".into(),
            trigger_kind: "manual".into(),
            trigger_fingerprint: "manual".into(),
            environment: "bench".into(),
            status: ExecutionStatus::Success,
            attempt: 1,
            created_at: t,
            started_at: Some(at(2)),
            finished_at: Some(at(2 + 40 * u64::from(STEPS))),
            steps_total: STEPS,
            steps_executed: STEPS,
            resume_at: None,
        }),
        Write::Attempt {
            job_id,
            row: Attempt {
                attempt: 1,
                status: ExecutionStatus::Success,
                started_at: Some(at(2)),
                finished_at: Some(at(2 + 40 * u64::from(STEPS))),
                from_step: 0,
            },
        },
        Write::Payload {
            key: PayloadKey::trigger(job_id),
            value: json!({ "body": { "order": 42, "items": [1, 2, 3] } }).into(),
            text: None,
        },
    ];
    for i in 0..STEPS {
        let start = 2 + 40 * u64::from(i);
        writes.push(Write::Step {
            job_id,
            row: StepRow {
                attempt: 1,
                index: i,
                name: format!("step-{i:02}"),
                kind: "connector".into(),
                status: StepStatus::Success,
                connector: Some(ConnectorUse {
                    name: "http".into(),
                    sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
                }),
                started_at: Some(at(start)),
                finished_at: Some(at(start + 35)),
                duration: 0.035,
                fuel_used: 1_000_000 + u64::from(i),
                error: None,
                note: None,
                tries: Vec::new(),
                reused_from: None,
            },
        });
        for (kind, value) in [
            (
                PayloadKind::Config,
                json!({ "url": format!("https://api.example.com/{i}") }),
            ),
            (
                PayloadKind::Output,
                json!({ "status": 200, "step": i, "body": { "ok": true } }),
            ),
        ] {
            writes.push(Write::Payload {
                key: PayloadKey {
                    job_id,
                    attempt: 1,
                    step: i,
                    kind,
                },
                value: value.into(),
                text: None,
            });
        }
    }
    rt.block_on(store.write(writes)).expect("a durable write");
    drop(store);
    let id = job_id.to_string();
    std::fs::write(&marker, &id).expect("write the marker");
    id
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: usize = if quick { 100_000 } else { 1_000_000 };
    let (rt, root) = admin::runtime_and_root(n);
    println!("flowd console in Chromium over a store of {n} executions (the admin benchmark's data)");
    admin::prepare(&rt, &root, n);
    let job = long_execution(&rt, &root);
    let config = admin::write_config(&root);
    let daemon = admin::Daemon::start(&config);
    let console = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    let status = std::process::Command::new("node")
        .arg("e2e/bench.mjs")
        .current_dir(&console)
        .env("FLOWD_ADMIN", format!("http://{}", daemon.admin))
        .env("FLOWD_TOKEN", admin::TOKEN)
        .env("FLOWD_JOB", &job)
        .status()
        .expect("running node (console/setup.sh installs what it needs)");
    assert!(status.success(), "console/e2e/bench.mjs failed: {status}");
}
