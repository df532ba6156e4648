//! Retention against a real redb store on disk: old executions and log records are pruned
//! in batches while ordinary writes go on, and nothing recent or unfinished is touched;
//! plus the daemon config's `retention` key.

use flowd::config::{DaemonConfig, SourceFile};
use flowd::engine::ExecutionStatus;
use flowd::plugin::Level;
use flowd::store::retention::prune_all;
use flowd::store::{
    Execution, JobId, ListQuery, LogQuery, LogRow, PayloadKey, PayloadKind, RedbStore, StepRow, Store, Write,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: Duration = Duration::from_secs(24 * 3600);
const FLOW: &str = "orders";

/// `t` to the millisecond, the precision records keep.
fn ms(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64)
}

/// A job id created at `t`, with random low bits.
fn job_at(t: SystemTime) -> JobId {
    JobId(JobId::lower_bound(t).0 | (JobId::new().0 & ((1 << 80) - 1)))
}

fn execution(job_id: JobId, status: ExecutionStatus, t: SystemTime) -> Execution {
    Execution {
        job_id,
        project: "shop".into(),
        flow: FLOW.into(),
        flow_version: "v1".into(),
        trigger_kind: "webhook".into(),
        trigger_fingerprint: "fp".into(),
        environment: "test".into(),
        status,
        attempt: 1,
        created_at: t,
        started_at: Some(t),
        finished_at: status.is_final().then_some(t),
        steps_total: 2,
        steps_executed: 2,
        resume_at: None,
    }
}

/// Built from JSON so fields with defaults need not be spelled out.
fn step(index: u32, t: SystemTime) -> StepRow {
    serde_json::from_value(json!({
        "attempt": 1,
        "index": index,
        "name": format!("step{index}"),
        "kind": "action",
        "status": "success",
        "started_at": flowd_time(t),
        "finished_at": flowd_time(t),
        "duration": 0.001,
        "fuel_used": 1000,
    }))
    .unwrap()
}

fn flowd_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339()
}

fn log(job_id: JobId, step: u32, t: SystemTime) -> LogRow {
    LogRow {
        time: t,
        level: Level::Info,
        job_id,
        project: "shop".into(),
        flow: FLOW.into(),
        flow_version: "v1".into(),
        attempt: 1,
        step: Some(format!("step{step}")),
        connector: Some("echo".into()),
        action: "run".into(),
        category: "echo".into(),
        environment: "test".into(),
        message: format!("step {step} of {job_id}"),
    }
}

fn payload_keys(job_id: JobId) -> Vec<PayloadKey> {
    let mut keys = vec![PayloadKey::trigger(job_id)];
    for step in 0..2 {
        for kind in [PayloadKind::Config, PayloadKind::Output] {
            keys.push(PayloadKey {
                job_id,
                attempt: 1,
                step,
                kind,
            });
        }
    }
    keys
}

/// Everything one execution of a two-step flow leaves in the store.
fn recorded(job_id: JobId, status: ExecutionStatus, t: SystemTime) -> Vec<Write> {
    let t = ms(t);
    let mut writes = vec![Write::Execution(execution(job_id, status, t))];
    for key in payload_keys(job_id) {
        writes.push(Write::Payload {
            key,
            value: json!({ "job": job_id, "step": key.step, "kind": key.kind }).into(),
            text: None,
        });
    }
    for i in 0..2 {
        writes.push(Write::Step {
            job_id,
            row: step(i, t),
        });
    }
    writes.push(Write::Logs((0..2).map(|i| log(job_id, i, t)).collect()));
    writes
}

async fn record_all(store: &RedbStore, jobs: &[(JobId, ExecutionStatus, SystemTime)]) {
    for chunk in jobs.chunks(100) {
        let writes = chunk.iter().flat_map(|(id, s, t)| recorded(*id, *s, *t)).collect();
        store.write(writes).await.unwrap();
    }
}

async fn assert_gone(store: &RedbStore, id: JobId) {
    assert_eq!(store.execution(id).await.unwrap(), None, "{id}");
    assert!(store.steps(id).await.unwrap().is_empty(), "steps of {id}");
    for key in payload_keys(id) {
        assert_eq!(store.payload(key).await.unwrap(), None, "{key:?}");
    }
    let logs = job_log_rows(store, id).await;
    assert!(logs.is_empty(), "logs of {id}: {logs:?}");
}

async fn assert_intact(store: &RedbStore, id: JobId, status: ExecutionStatus, t: SystemTime) {
    let t = ms(t);
    assert_eq!(store.execution(id).await.unwrap(), Some(execution(id, status, t)));
    assert_eq!(store.steps(id).await.unwrap(), vec![step(0, t), step(1, t)]);
    for key in payload_keys(id) {
        assert!(store.payload(key).await.unwrap().is_some(), "{key:?}");
    }
    assert_eq!(job_log_rows(store, id).await, vec![log(id, 0, t), log(id, 1, t)]);
}

async fn job_log_rows(store: &RedbStore, id: JobId) -> Vec<LogRow> {
    let q = LogQuery {
        job_id: Some(id),
        ..LogQuery::default()
    };
    store.logs(&q).await.unwrap().into_iter().map(|(_, row)| row).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_final_executions_are_pruned_in_batches_while_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path(), 1 << 20).unwrap());
    let now = SystemTime::now();
    let long_ago = now - 40 * DAY;
    let at = |base: SystemTime, i: u64| base + Duration::from_millis(i);
    let finals = [
        ExecutionStatus::Success,
        ExecutionStatus::PartiallyExecuted,
        ExecutionStatus::Failed,
        ExecutionStatus::Rejected,
    ];
    let old: Vec<_> = (0..2000)
        .map(|i| {
            let t = at(long_ago, i);
            (job_at(t), finals[i as usize % 4], t)
        })
        .collect();
    let paused: Vec<_> = (0..5)
        .map(|i| {
            let t = at(long_ago, 2 * i + 1);
            (job_at(t), ExecutionStatus::Paused, t)
        })
        .collect();
    let recent: Vec<_> = (0..200)
        .map(|i| {
            let t = at(now - DAY, i);
            (job_at(t), ExecutionStatus::Success, t)
        })
        .collect();
    record_all(&store, &old).await;
    record_all(&store, &paused).await;
    record_all(&store, &recent).await;

    // A writer recording new executions throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (store, stop, written) = (store.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut jobs = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let t = SystemTime::now();
                let id = job_at(t);
                store.write(recorded(id, ExecutionStatus::Success, t)).await.unwrap();
                written.fetch_add(1, Ordering::SeqCst);
                jobs.push((id, t));
            }
            jobs
        })
    };
    while written.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let before = written.load(Ordering::SeqCst);
    let pruned = prune_all(store.as_ref(), now - 30 * DAY).await.unwrap();
    let during = written.load(Ordering::SeqCst) - before;
    stop.store(true, Ordering::SeqCst);
    let new_jobs = writer.await.unwrap();

    // Batches of at most 500: 2000 executions took several.
    assert_eq!(pruned.executions, 2000);
    assert_eq!(pruned.log_records, 4000);
    assert!(during > 0, "no write completed while pruning ran");

    for (id, _, _) in &old {
        assert_gone(&store, *id).await;
    }
    for (id, status, t) in paused.iter().chain(&recent) {
        assert_intact(&store, *id, *status, *t).await;
    }
    for (id, t) in &new_jobs {
        assert_intact(&store, *id, ExecutionStatus::Success, *t).await;
    }
    // The indexes lost the pruned executions too.
    let by_flow = store
        .list(&ListQuery {
            flow: Some(FLOW.into()),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_flow.len(), paused.len() + recent.len() + new_jobs.len());
    let failed = store
        .list(&ListQuery {
            statuses: vec![ExecutionStatus::Failed],
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(store.unfinished().await.unwrap().len(), paused.len());

    assert_eq!(
        prune_all(store.as_ref(), now - 30 * DAY).await.unwrap(),
        Default::default()
    );
}

#[tokio::test]
async fn old_log_records_without_a_final_execution_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
    let now = ms(SystemTime::now());
    let long_ago = now - 40 * DAY;
    let orphan = job_at(long_ago);
    let running = job_at(long_ago);
    store
        .write(vec![
            Write::Execution(execution(running, ExecutionStatus::Running, long_ago)),
            Write::Logs(vec![
                log(orphan, 0, long_ago),
                log(orphan, 1, long_ago),
                log(running, 0, long_ago),
                log(orphan, 0, now),
            ]),
        ])
        .await
        .unwrap();
    let pruned = prune_all(&store, now - 30 * DAY).await.unwrap();
    assert_eq!(pruned.executions, 0);
    assert_eq!(pruned.log_records, 2);
    assert_eq!(job_log_rows(&store, orphan).await, vec![log(orphan, 0, now)]);
    assert_eq!(job_log_rows(&store, running).await, vec![log(running, 0, long_ago)]);
    assert!(store.execution(running).await.unwrap().is_some());
}

#[tokio::test]
async fn the_background_task_prunes_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path(), 1 << 20).unwrap());
    let t = SystemTime::now() - 40 * DAY;
    let id = job_at(t);
    record_all(&store, &[(id, ExecutionStatus::Success, t)]).await;
    let task = flowd::store::retention::spawn(store.clone(), 30 * DAY, Duration::from_secs(3600));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.execution(id).await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "not pruned");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_gone(&store, id).await;
    task.abort();
}

fn parse(text: &str) -> Result<DaemonConfig, String> {
    DaemonConfig::parse(&SourceFile::new("flowd.toml", text)).map_err(|e| e.to_string())
}

#[test]
fn retention_is_configurable_from_one_minute() {
    assert_eq!(parse("").unwrap().retention, 30 * DAY);
    assert_eq!(DaemonConfig::builtin().retention, 30 * DAY);
    assert_eq!(parse("retention = \"90d\"").unwrap().retention, 90 * DAY);
    assert_eq!(parse("retention = \"1m\"").unwrap().retention, Duration::from_secs(60));
    assert_eq!(
        parse("environment = \"x\"\nretention = \"59s\"").unwrap_err(),
        "flowd.toml:2:13: retention must be from 1m to 3650d, not \"59s\""
    );
    let err = parse("retention = \"forever\"").unwrap_err();
    assert!(
        err.starts_with("flowd.toml:1:13: retention: \"forever\" is not a duration"),
        "{err}"
    );
}
