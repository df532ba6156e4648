//! The contract every `Store` backend keeps, as checks over `&dyn Store`: what a write
//! makes visible, the orders and filters of the execution list and the logs, cursors
//! that hold while new executions arrive, prune, the recovery query, and claims.
//! Time ranges are inclusive at both ends.
//!
//! A backend's test file runs them all with `store_contract!(fresh)`, where `fresh()`
//! is an async fn giving an empty store of that backend.

#![allow(dead_code)]

pub mod faults;

use flowd::engine::ExecutionStatus;
use flowd::plugin::Level;
use flowd::store::{
    Attempt, ClaimError, Execution, JobId, ListQuery, LogQuery, LogRow, PayloadKey, PayloadKind, StepRow, Store, Write,
    WriteError,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// `t` to the millisecond, the precision every backend keeps.
pub fn ms(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64)
}

pub fn execution(job_id: JobId, flow: &str, status: ExecutionStatus, t: SystemTime) -> Execution {
    Execution {
        job_id,
        project: if flow == "c" { "other".into() } else { "shop".into() },
        flow: flow.into(),
        flow_version: "v1".into(),
        trigger_kind: if flow == "b" { "schedule".into() } else { "http".into() },
        trigger_fingerprint: "fp".into(),
        environment: "test".into(),
        status,
        attempt: 1,
        created_at: t,
        started_at: Some(t),
        finished_at: status.is_final().then_some(t),
        steps_total: 2,
        steps_executed: 0,
        resume_at: None,
    }
}

pub fn step(index: u32, t: SystemTime) -> StepRow {
    serde_json::from_value(json!({
        "attempt": 1, "index": index, "name": format!("s{index}"), "kind": "connector",
        "status": "success", "started_at": flowd_time(t), "finished_at": flowd_time(t),
        "duration": 0.001, "fuel_used": 7,
    }))
    .unwrap()
}

fn flowd_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    chrono::DateTime::<chrono::Utc>::from_timestamp(d.as_secs() as i64, d.subsec_nanos())
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn log(job_id: JobId, seq_ms: u64, t: SystemTime, level: Level, message: &str) -> LogRow {
    LogRow {
        time: t + Duration::from_millis(seq_ms),
        level,
        job_id,
        project: "shop".into(),
        flow: "a".into(),
        flow_version: "v1".into(),
        attempt: 1,
        step: Some("s0".into()),
        connector: Some("echo".into()),
        action: "run".into(),
        category: "step".into(),
        environment: "test".into(),
        message: message.into(),
    }
}

pub fn output(job_id: JobId, step: u32) -> PayloadKey {
    PayloadKey {
        job_id,
        attempt: 1,
        step,
        kind: PayloadKind::Output,
    }
}

/// An execution with its attempt, two steps, a trigger payload, an output and a log.
pub fn recorded(job_id: JobId, flow: &str, status: ExecutionStatus, t: SystemTime) -> Vec<Write> {
    vec![
        Write::Execution(execution(job_id, flow, status, t)),
        Write::Attempt {
            job_id,
            row: Attempt {
                attempt: 1,
                status,
                started_at: Some(t),
                finished_at: status.is_final().then_some(t),
                from_step: 0,
            },
        },
        Write::Step {
            job_id,
            row: step(0, t),
        },
        Write::Step {
            job_id,
            row: step(1, t),
        },
        Write::Payload {
            key: PayloadKey::trigger(job_id),
            value: json!({ "body": { "job": job_id.to_string() } }).into(),
            text: None,
        },
        Write::Payload {
            key: output(job_id, 0),
            value: json!({ "n": 0 }).into(),
            text: None,
        },
        Write::Logs(vec![log(job_id, 0, t, Level::Info, "hello")]),
    ]
}

async fn ids(store: &dyn Store, q: &ListQuery) -> Vec<JobId> {
    store.list(q).await.unwrap().into_iter().map(|e| e.job_id).collect()
}

/// Every execution of flows a, b, c at one-second steps from `t0`, statuses cycling.
async fn seed(store: &dyn Store, t0: SystemTime, n: u32) -> Vec<Execution> {
    const STATUSES: [ExecutionStatus; 5] = [
        ExecutionStatus::Success,
        ExecutionStatus::Failed,
        ExecutionStatus::Running,
        ExecutionStatus::Paused,
        ExecutionStatus::Queued,
    ];
    let rows: Vec<Execution> = (0..n)
        .map(|i| {
            let t = ms(t0 + Duration::from_secs(u64::from(i)));
            execution(
                JobId::at(t),
                ["a", "b", "c"][i as usize % 3],
                STATUSES[i as usize % 5],
                t,
            )
        })
        .collect();
    store
        .write(rows.iter().cloned().map(Write::Execution).collect())
        .await
        .unwrap();
    rows
}

/// A shared config (a step config without placeholders, kept once per flow version) is
/// written once: every later execution writes it again, and the first stays.
pub async fn a_shared_config_is_kept_as_first_written(store: Arc<dyn Store>) {
    let key = PayloadKey::shared_config("shop", "a", "v1", 0);
    let t = SystemTime::now();
    for (i, n) in [1, 2, 3].into_iter().enumerate() {
        let job = JobId::at(t + Duration::from_millis(i as u64));
        store
            .write(vec![
                Write::Execution(execution(job, "a", ExecutionStatus::Success, t)),
                Write::Payload {
                    key,
                    value: json!({ "n": n }).into(),
                    text: None,
                },
            ])
            .await
            .unwrap();
    }
    assert_eq!(store.payload(key).await.unwrap(), Some(json!({ "n": 1 })));
}

pub async fn a_write_is_read_back_whole(store: Arc<dyn Store>) {
    let t = ms(SystemTime::now());
    let job = JobId::at(t);
    store
        .write(recorded(job, "a", ExecutionStatus::Success, t))
        .await
        .unwrap();
    assert_eq!(
        store.execution(job).await.unwrap(),
        Some(execution(job, "a", ExecutionStatus::Success, t))
    );
    let attempts = store.attempts(job).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!((attempts[0].attempt, attempts[0].status), (1, ExecutionStatus::Success));
    assert_eq!(store.steps(job).await.unwrap(), vec![step(0, t), step(1, t)]);
    assert_eq!(
        store.payload(PayloadKey::trigger(job)).await.unwrap(),
        Some(json!({ "body": { "job": job.to_string() } }))
    );
    assert_eq!(store.payload(output(job, 0)).await.unwrap(), Some(json!({ "n": 0 })));
    assert_eq!(store.payload(output(job, 1)).await.unwrap(), None);
    assert_eq!(store.execution(JobId::new()).await.unwrap(), None);
    assert!(store.steps(JobId::new()).await.unwrap().is_empty());
}

pub async fn a_later_write_replaces_its_row_and_attempts_and_steps_keep_their_order(store: Arc<dyn Store>) {
    let t = ms(SystemTime::now());
    let job = JobId::at(t);
    store
        .write(recorded(job, "a", ExecutionStatus::Running, t))
        .await
        .unwrap();
    let mut second = Vec::new();
    for attempt in [3, 2] {
        second.push(Write::Attempt {
            job_id: job,
            row: Attempt {
                attempt,
                status: ExecutionStatus::Failed,
                started_at: Some(t),
                finished_at: Some(t),
                from_step: 1,
            },
        });
        let mut row = step(1, t);
        row.attempt = attempt;
        second.push(Write::Step { job_id: job, row });
    }
    let mut done = execution(job, "a", ExecutionStatus::Failed, t);
    done.attempt = 3;
    second.push(Write::Execution(done.clone()));
    store.write(second).await.unwrap();
    assert_eq!(store.execution(job).await.unwrap(), Some(done));
    let attempts: Vec<u32> = store.attempts(job).await.unwrap().iter().map(|a| a.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    let steps: Vec<(u32, u32)> = store
        .steps(job)
        .await
        .unwrap()
        .iter()
        .map(|s| (s.attempt, s.index))
        .collect();
    assert_eq!(steps, [(1, 0), (1, 1), (2, 1), (3, 1)]);
    // the list sees the new status, not the old one
    let q = |s| ListQuery {
        statuses: vec![s],
        limit: 10,
        ..ListQuery::default()
    };
    assert_eq!(ids(store.as_ref(), &q(ExecutionStatus::Failed)).await, [job]);
    assert!(ids(store.as_ref(), &q(ExecutionStatus::Running)).await.is_empty());
}

pub async fn a_batch_with_a_payload_over_the_limit_writes_nothing(store: Arc<dyn Store>, max_payload: usize) {
    let t = ms(SystemTime::now());
    let job = JobId::at(t);
    let mut writes = recorded(job, "a", ExecutionStatus::Success, t);
    writes.push(Write::Payload {
        key: output(job, 1),
        value: json!("x".repeat(max_payload + 1)).into(),
        text: None,
    });
    match store.write(writes).await {
        Err(WriteError::PayloadTooLarge { .. }) => {}
        other => panic!("an oversize payload was not refused: {other:?}"),
    }
    assert_eq!(store.execution(job).await.unwrap(), None);
    assert!(store.steps(job).await.unwrap().is_empty());
    assert_eq!(store.payload(PayloadKey::trigger(job)).await.unwrap(), None);
    let q = LogQuery {
        job_id: Some(job),
        limit: 10,
        ..LogQuery::default()
    };
    assert!(store.logs(&q).await.unwrap().is_empty());
}

/// A payload written with its JSON text (a connector's output as it gave it) is stored
/// as that text, not written out again from the value, and measured by it.
pub async fn a_payload_given_with_its_text_is_stored_as_that_text(store: Arc<dyn Store>, max_payload: usize) {
    // A recorded execution whose step 1 output is `value` given with `text`.
    let write = |value: serde_json::Value, text: String| {
        let store = store.clone();
        async move {
            let t = ms(SystemTime::now());
            let job = JobId::at(t);
            let mut writes = recorded(job, "a", ExecutionStatus::Success, t);
            writes.push(Write::Payload {
                key: output(job, 1),
                value: value.into(),
                text: Some(text.into()),
            });
            (job, store.write(writes).await)
        }
    };
    // Spaces, an exponent and a repeated key: JSON as a connector may give it.
    let (job, written) = write(
        json!({ "n": 100.0, "k": "second" }),
        r#"{ "n" : 1e2, "k": "first", "k": "second" }"#.into(),
    )
    .await;
    written.unwrap();
    assert_eq!(
        store.payload(output(job, 1)).await.unwrap(),
        Some(json!({ "n": 100.0, "k": "second" }))
    );
    // The text, not the value, is the one stored.
    let (job, written) = write(json!({ "from": "value" }), r#"{"from":"text"}"#.into()).await;
    written.unwrap();
    assert_eq!(
        store.payload(output(job, 1)).await.unwrap(),
        Some(json!({ "from": "text" }))
    );
    // Over the limit by its text: refused, whatever the value's size.
    let (job, written) = write(json!(1), format!("{}1", " ".repeat(max_payload))).await;
    match written {
        Err(WriteError::PayloadTooLarge { .. }) => {}
        other => panic!("a payload whose text is over the limit was not refused: {other:?}"),
    }
    assert_eq!(store.execution(job).await.unwrap(), None);
}

pub async fn the_list_is_newest_first_and_every_filter_keeps_what_it_says(store: Arc<dyn Store>) {
    let t0 = ms(SystemTime::now() - DAY);
    let rows = seed(store.as_ref(), t0, 60).await;
    let mut queries = vec![ListQuery::default()];
    for flow in ["a", "b", "zzz"] {
        queries.push(ListQuery {
            flow: Some(flow.into()),
            ..ListQuery::default()
        });
    }
    queries.push(ListQuery {
        project: Some("other".into()),
        ..ListQuery::default()
    });
    queries.push(ListQuery {
        trigger_kind: Some("schedule".into()),
        ..ListQuery::default()
    });
    queries.push(ListQuery {
        statuses: vec![ExecutionStatus::Failed, ExecutionStatus::Paused],
        ..ListQuery::default()
    });
    queries.push(ListQuery {
        flow: Some("a".into()),
        statuses: vec![ExecutionStatus::Success],
        ..ListQuery::default()
    });
    queries.push(ListQuery {
        from: Some(t0 + Duration::from_secs(10)),
        to: Some(t0 + Duration::from_secs(20)),
        ..ListQuery::default()
    });
    queries.push(ListQuery {
        project: Some("shop".into()),
        statuses: vec![ExecutionStatus::Running],
        from: Some(t0 + Duration::from_secs(30)),
        ..ListQuery::default()
    });
    for mut q in queries {
        q.limit = 1000;
        let mut want: Vec<&Execution> = rows
            .iter()
            .filter(|e| q.keeps(e))
            .filter(|e| q.from.is_none_or(|f| e.created_at >= f) && q.to.is_none_or(|t| e.created_at <= t))
            .collect();
        want.sort_by_key(|e| std::cmp::Reverse(e.job_id));
        let want: Vec<JobId> = want.iter().map(|e| e.job_id).collect();
        assert_eq!(ids(store.as_ref(), &q).await, want, "{q:?}");
        // and page by page, three at a time, the same rows
        let mut paged = Vec::new();
        let mut page_q = ListQuery { limit: 3, ..q.clone() };
        loop {
            let page = ids(store.as_ref(), &page_q).await;
            assert!(page.len() <= 3);
            paged.extend(page.iter().copied());
            if page.len() < 3 {
                break;
            }
            page_q.before = page.last().copied();
        }
        assert_eq!(paged, want, "paged {q:?}");
    }
}

/// The histogram holds, bucket by bucket and status by status, what the list shows for
/// the same query; a bucket is `[edge, next edge)` of the creation time.
pub async fn the_histogram_counts_what_the_list_shows_per_bucket(store: Arc<dyn Store>) {
    assert!(store.oldest().await.unwrap().is_none(), "an empty store has no oldest");
    let t0 = ms(SystemTime::now() - DAY);
    let rows = seed(store.as_ref(), t0, 60).await;
    assert_eq!(store.oldest().await.unwrap().map(|e| e.job_id), Some(rows[0].job_id));
    // Uneven buckets over the seeded minute, starting before it and ending inside it.
    let edges: Vec<SystemTime> = [0u64, 7_000, 7_001, 30_000, 45_500, 55_000]
        .iter()
        .map(|ms| t0 - Duration::from_secs(2) + Duration::from_millis(*ms))
        .collect();
    let queries = [
        ListQuery::default(),
        ListQuery {
            flow: Some("a".into()),
            ..ListQuery::default()
        },
        ListQuery {
            statuses: vec![ExecutionStatus::Failed, ExecutionStatus::Queued],
            ..ListQuery::default()
        },
        ListQuery {
            flow: Some("b".into()),
            statuses: vec![ExecutionStatus::Failed],
            ..ListQuery::default()
        },
        ListQuery {
            project: Some("other".into()),
            ..ListQuery::default()
        },
        ListQuery {
            trigger_kind: Some("schedule".into()),
            statuses: vec![ExecutionStatus::Paused],
            from: Some(t0 + Duration::from_secs(20)),
            ..ListQuery::default()
        },
    ];
    for q in queries {
        let got = store.histogram(&q, &edges).await.unwrap();
        assert_eq!(got.len(), edges.len() - 1, "{q:?}");
        for (i, counts) in got.iter().enumerate() {
            let mut want = [0u64; 8];
            for e in rows.iter().filter(|e| {
                q.keeps(e)
                    && q.from.is_none_or(|f| e.created_at >= f)
                    && e.created_at >= edges[i]
                    && e.created_at < edges[i + 1]
            }) {
                let at = ExecutionStatus::ALL.iter().position(|s| *s == e.status).unwrap();
                want[at] += 1;
            }
            assert_eq!(*counts, want, "bucket {i} of {q:?}");
        }
        let total: u64 = got.iter().flatten().sum();
        assert!(total > 0, "{q:?} counts something");
    }
    assert!(
        store
            .histogram(&ListQuery::default(), &edges[..1])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_cursor_holds_while_new_executions_arrive(store: Arc<dyn Store>) {
    let t0 = ms(SystemTime::now() - Duration::from_secs(3600));
    let rows = seed(store.as_ref(), t0, 40).await;
    let mut expected: Vec<JobId> = rows.iter().map(|e| e.job_id).collect();
    expected.reverse();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                let t = ms(SystemTime::now());
                store
                    .write(vec![Write::Execution(execution(
                        JobId::at(t),
                        "a",
                        ExecutionStatus::Queued,
                        t,
                    ))])
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    // The first page is taken at the boundary: everything after it is older than it.
    let mut q = ListQuery {
        before: Some(JobId::lower_bound(t0 + Duration::from_secs(1000))),
        limit: 7,
        ..ListQuery::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = ids(store.as_ref(), &q).await;
        seen.extend(page.iter().copied());
        if page.len() < q.limit {
            break;
        }
        q.before = page.last().copied();
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    assert_eq!(seen, expected, "pages under concurrent inserts");
    let all: BTreeSet<JobId> = ids(
        store.as_ref(),
        &ListQuery {
            limit: 1000,
            ..ListQuery::default()
        },
    )
    .await
    .into_iter()
    .collect();
    assert_eq!(all.len(), 80);
}

pub async fn logs_come_in_time_order_either_way_with_filters_and_cursors(store: Arc<dyn Store>) {
    let t = ms(SystemTime::now() - Duration::from_secs(600));
    let (a, b) = (JobId::at(t), JobId::at(t + Duration::from_millis(1)));
    let mut rows = Vec::new();
    for i in 0..30u64 {
        let job = if i % 2 == 0 { a } else { b };
        let level = [Level::Debug, Level::Info, Level::Warn, Level::Error][i as usize % 4];
        let mut row = log(
            job,
            i,
            t,
            level,
            &format!("message {i} {}", if i % 5 == 0 { "needle" } else { "hay" }),
        );
        if i % 3 == 0 {
            row.category = "http".into();
        }
        rows.push(row);
    }
    store.write(vec![Write::Logs(rows.clone())]).await.unwrap();
    let queries = vec![
        LogQuery::default(),
        LogQuery {
            job_id: Some(b),
            ..LogQuery::default()
        },
        LogQuery {
            level: Some(Level::Warn),
            ..LogQuery::default()
        },
        LogQuery {
            levels: vec![Level::Debug, Level::Error],
            ..LogQuery::default()
        },
        LogQuery {
            category: Some("http".into()),
            contains: Some("needle".into()),
            ..LogQuery::default()
        },
        LogQuery {
            from: Some(t + Duration::from_millis(10)),
            to: Some(t + Duration::from_millis(20)),
            ..LogQuery::default()
        },
    ];
    for base in queries {
        for newest_first in [false, true] {
            let q = LogQuery {
                newest_first,
                limit: 1000,
                ..base.clone()
            };
            let mut want: Vec<&LogRow> = rows
                .iter()
                .filter(|l| q.keeps(l))
                .filter(|l| q.from.is_none_or(|f| l.time >= f) && q.to.is_none_or(|t| l.time <= t))
                .collect();
            if newest_first {
                want.reverse();
            }
            let got = store.logs(&q).await.unwrap();
            let got_rows: Vec<&LogRow> = got.iter().map(|(_, r)| r).collect();
            assert_eq!(got_rows, want, "{q:?}");
            let mut paged = Vec::new();
            let mut page_q = LogQuery { limit: 4, ..q.clone() };
            loop {
                let page = store.logs(&page_q).await.unwrap();
                paged.extend(page.iter().map(|(_, r)| r.clone()));
                if page.len() < 4 {
                    break;
                }
                page_q.after = page.last().map(|(k, _)| *k);
            }
            let want: Vec<LogRow> = want.into_iter().cloned().collect();
            assert_eq!(paged, want, "paged {q:?}");
        }
    }
}

pub async fn flags_and_schedule_marks_are_kept(store: Arc<dyn Store>) {
    assert!(store.inactive_flows().await.unwrap().is_empty());
    assert_eq!(store.last_fire("nightly").await.unwrap(), None);
    let at = ms(SystemTime::now() - Duration::from_secs(60));
    store
        .write(vec![
            Write::FlowActive {
                flow: "a".into(),
                active: false,
            },
            Write::FlowActive {
                flow: "b".into(),
                active: false,
            },
            Write::LastFire {
                flow: "nightly".into(),
                at,
            },
        ])
        .await
        .unwrap();
    store
        .write(vec![Write::FlowActive {
            flow: "b".into(),
            active: true,
        }])
        .await
        .unwrap();
    assert_eq!(store.inactive_flows().await.unwrap(), BTreeSet::from(["a".to_string()]));
    assert_eq!(store.last_fire("nightly").await.unwrap(), Some(at));
    assert_eq!(store.last_fire("other").await.unwrap(), None);
    // A backend daemons share reports the same flags to each, and counts the reloads
    // asked of them all; one a daemon has to itself reports neither.
    match store.operator_state().await.unwrap() {
        Some(state) => {
            assert_eq!(state.inactive, BTreeSet::from(["a".to_string()]));
            let n = store
                .announce_reload()
                .await
                .unwrap()
                .expect("a shared store counts reloads");
            assert_eq!(n, state.reloads + 1);
            assert_eq!(store.operator_state().await.unwrap().unwrap().reloads, n);
            // Resumes asked of timed pauses: each execution's latest request, with the
            // due time of the pause asked of, until forgotten.
            let (job, other) = (JobId::new(), JobId::new());
            let (due, later) = (ms(SystemTime::now()), ms(SystemTime::now() + Duration::from_secs(60)));
            assert!(store.ask_wake(job, due).await.unwrap());
            assert!(store.ask_wake(other, due).await.unwrap());
            assert!(store.ask_wake(job, later).await.unwrap());
            let mut wakes = store.operator_state().await.unwrap().unwrap().wakes;
            wakes.sort();
            let mut expected = vec![(job, later), (other, due)];
            expected.sort();
            assert_eq!(wakes, expected);
            store.forget_wakes(vec![job]).await.unwrap();
            assert_eq!(store.operator_state().await.unwrap().unwrap().wakes, vec![(other, due)]);
        }
        None => {
            assert_eq!(store.announce_reload().await.unwrap(), None);
            assert!(
                !store.ask_wake(JobId::new(), SystemTime::now()).await.unwrap(),
                "nobody else to wake a pause"
            );
        }
    }
}

pub async fn recovery_finds_every_unfinished_execution_oldest_first(store: Arc<dyn Store>) {
    let t0 = ms(SystemTime::now() - 40 * DAY);
    let rows = seed(store.as_ref(), t0, 25).await;
    let want: Vec<JobId> = rows.iter().filter(|e| !e.status.is_final()).map(|e| e.job_id).collect();
    let got: Vec<JobId> = store.unfinished().await.unwrap().iter().map(|e| e.job_id).collect();
    assert_eq!(got, want);
    assert_eq!(want.len(), 15);
}

pub async fn prune_deletes_old_final_executions_in_bounded_batches_and_keeps_the_rest(store: Arc<dyn Store>) {
    let now = ms(SystemTime::now());
    let old = now - 40 * DAY;
    let mut old_final = Vec::new();
    let mut kept = Vec::new();
    let mut writes = Vec::new();
    for i in 0..12u64 {
        let t = old + Duration::from_secs(i);
        let job = JobId::at(t);
        let status = if i % 4 == 3 {
            ExecutionStatus::Paused
        } else {
            ExecutionStatus::Success
        };
        writes.extend(recorded(job, "a", status, t));
        if status.is_final() {
            old_final.push(job)
        } else {
            kept.push(job)
        }
    }
    for i in 0..3u64 {
        let t = now - Duration::from_secs(i + 1);
        let job = JobId::at(t);
        writes.extend(recorded(job, "a", ExecutionStatus::Success, t));
        kept.push(job);
    }
    // log records of an execution that is not stored, old and new
    let orphan = JobId::at(old);
    writes.push(Write::Logs(vec![
        log(orphan, 0, old, Level::Info, "old"),
        log(orphan, 1, now, Level::Info, "new"),
    ]));
    store.write(writes).await.unwrap();
    let cutoff = now - 30 * DAY;
    let mut total = (0, 0);
    let mut batches = 0;
    loop {
        let p = store.prune(cutoff, 4).await.unwrap();
        assert!(p.executions <= 4, "{p:?}");
        total = (total.0 + p.executions, total.1 + p.log_records);
        batches += 1;
        assert!(batches < 50, "prune never says it is done");
        if !p.more {
            break;
        }
    }
    assert!(batches >= 3, "9 executions in batches of 4 took {batches} batches");
    assert_eq!(total, (9, 10), "executions and log records deleted");
    for job in &old_final {
        assert_eq!(store.execution(*job).await.unwrap(), None);
        assert!(store.steps(*job).await.unwrap().is_empty());
        assert!(store.attempts(*job).await.unwrap().is_empty());
        assert_eq!(store.payload(PayloadKey::trigger(*job)).await.unwrap(), None);
        assert_eq!(store.payload(output(*job, 0)).await.unwrap(), None);
    }
    for job in &kept {
        assert!(store.execution(*job).await.unwrap().is_some(), "{job} was pruned");
        assert_eq!(store.steps(*job).await.unwrap().len(), 2);
    }
    let q = LogQuery {
        limit: 1000,
        ..LogQuery::default()
    };
    let left: Vec<String> = store
        .logs(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, r)| r.message)
        .collect();
    assert_eq!(left.len(), kept.len() + 1, "{left:?}");
    assert!(left.contains(&"new".to_string()));
    let listed = ids(
        store.as_ref(),
        &ListQuery {
            limit: 1000,
            ..ListQuery::default()
        },
    )
    .await;
    assert_eq!(listed.len(), kept.len());
    let again = store.prune(cutoff, 4).await.unwrap();
    assert_eq!((again.executions, again.log_records, again.more), (0, 0, false));
}

pub async fn a_claim_is_one_owners_until_it_is_released_or_expires(store: Arc<dyn Store>) {
    let job = JobId::new();
    let long = Duration::from_secs(60);
    let first = store.claim(job, "one", long).await.unwrap();
    assert_eq!((first.job, first.owner.as_str()), (job, "one"));
    match store.claim(job, "two", long).await {
        Err(ClaimError::Held { owner, .. }) => assert_eq!(owner, "one"),
        other => panic!("a held claim was granted again: {other:?}"),
    }
    // the owner renews: same fence, later expiry
    let renewed = store.claim(job, "one", long).await.unwrap();
    assert_eq!(renewed.fence, first.fence);
    assert!(renewed.expires >= first.expires);
    // another job is claimed independently
    store.claim(JobId::new(), "two", long).await.unwrap();
    store.release(renewed).await.unwrap();
    let second = store.claim(job, "two", long).await.unwrap();
    assert!(second.fence > first.fence, "{second:?} after {first:?}");
    // a claim that expires is granted to the next owner, and the old owner's lease is lost
    store.release(second).await.unwrap();
    let short = store.claim(job, "three", Duration::from_millis(50)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let fourth = store.claim(job, "four", long).await.unwrap();
    assert!(fourth.fence > short.fence);
    match store.release(short).await {
        Err(ClaimError::Lost(j)) => assert_eq!(j, job),
        other => panic!("an expired lease was released: {other:?}"),
    }
    store.release(fourth).await.unwrap();
}

fn claimed(exec: Execution, owner: &str, ttl: Duration) -> Vec<Write> {
    vec![
        Write::Claim {
            job: exec.job_id,
            owner: owner.into(),
            ttl,
        },
        Write::Execution(exec),
    ]
}

fn fence(job: JobId, owner: &str, fence: u64) -> Write {
    Write::Fence {
        job,
        owner: owner.into(),
        fence,
    }
}

pub async fn a_stale_owners_write_is_refused_whole(store: Arc<dyn Store>) {
    let t = ms(SystemTime::now());
    let job = JobId::new();
    let running = execution(job, "a", ExecutionStatus::Running, t);
    store
        .write(claimed(running.clone(), "one", Duration::from_millis(50)))
        .await
        .unwrap();
    // its owner writes under its fence
    let mut first = running.clone();
    first.steps_executed = 1;
    store
        .write(vec![Write::Execution(first.clone()), fence(job, "one", 1)])
        .await
        .unwrap();
    // an owner that never held it is refused
    match store
        .write(vec![Write::Execution(running.clone()), fence(job, "two", 1)])
        .await
    {
        Err(WriteError::Fenced { job: j, owner, fence }) => assert_eq!((j, owner.as_str(), fence), (job, "two", 1)),
        other => panic!("a write under a claim never held went through: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(120)).await;
    let taken = store
        .take_over("two", Duration::from_secs(60), &["a".to_string()], 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    let (exec, lease) = &taken[0];
    assert_eq!((exec, lease.owner.as_str()), (&first, "two"));
    assert!(lease.fence > 1, "{lease:?}");
    // the first owner, expired and taken over: its write is refused whole
    let mut stale = first.clone();
    stale.status = ExecutionStatus::Success;
    let refused = store
        .write(vec![
            Write::Execution(stale.clone()),
            Write::Logs(vec![log(job, 0, t, Level::Info, "from the stale owner")]),
            fence(job, "one", 1),
        ])
        .await;
    assert!(matches!(refused, Err(WriteError::Fenced { .. })), "{refused:?}");
    assert_eq!(store.execution(job).await.unwrap(), Some(first.clone()));
    let q = LogQuery {
        job_id: Some(job),
        limit: 10,
        ..Default::default()
    };
    assert!(
        store.logs(&q).await.unwrap().is_empty(),
        "a refused batch wrote its logs"
    );
    // its heartbeat renews nothing; the new owner's does, and writes
    let one = flowd::store::Lease {
        job,
        owner: "one".into(),
        fence: 1,
        expires: t,
    };
    assert!(
        store
            .renew("one", &[one], Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    let renewed = store
        .renew("two", std::slice::from_ref(lease), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(renewed.len(), 1);
    assert_eq!(renewed[0].fence, lease.fence);
    assert!(renewed[0].expires >= lease.expires);
    store
        .write(vec![Write::Execution(stale.clone()), fence(job, "two", lease.fence)])
        .await
        .unwrap();
    assert_eq!(store.execution(job).await.unwrap(), Some(stale));
}

pub async fn take_over_claims_what_nobody_holds_once_each(store: Arc<dyn Store>) {
    let t = SystemTime::now();
    let long = Duration::from_secs(60);
    let held = execution(JobId::new(), "a", ExecutionStatus::Running, t);
    let expired = execution(JobId::new(), "a", ExecutionStatus::Queued, t);
    let unclaimed = execution(JobId::new(), "a", ExecutionStatus::Pending, t);
    let mut timed = execution(JobId::new(), "a", ExecutionStatus::Paused, t);
    timed.resume_at = Some(t + long);
    let until_resumed = execution(JobId::new(), "a", ExecutionStatus::Paused, t);
    let done = execution(JobId::new(), "a", ExecutionStatus::Success, t);
    let other_flow = execution(JobId::new(), "c", ExecutionStatus::Pending, t);
    store.write(claimed(held.clone(), "one", long)).await.unwrap();
    store
        .write(claimed(expired.clone(), "one", Duration::from_millis(30)))
        .await
        .unwrap();
    let rows = [&unclaimed, &timed, &until_resumed, &done, &other_flow];
    store
        .write(rows.iter().map(|e| Write::Execution((*e).clone())).collect())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let flows = ["a".to_string()];
    let taken = store.take_over("two", long, &flows, 10).await.unwrap();
    let mut got: Vec<JobId> = taken.iter().map(|(e, _)| e.job_id).collect();
    got.sort();
    let mut want = vec![expired.job_id, unclaimed.job_id, timed.job_id];
    want.sort();
    assert_eq!(got, want, "taken: {taken:?}");
    assert!(taken.iter().all(|(e, l)| l.job == e.job_id && l.owner == "two"));
    // now held by "two": nobody takes them again, nor "two" itself
    assert!(store.take_over("three", long, &flows, 10).await.unwrap().is_empty());
    // a bounded batch
    let many: Vec<Execution> = (0..40)
        .map(|_| execution(JobId::new(), "c", ExecutionStatus::Pending, t))
        .collect();
    store
        .write(many.iter().cloned().map(Write::Execution).collect())
        .await
        .unwrap();
    let flows = ["c".to_string()];
    let first = store.take_over("x", long, &flows, 5).await.unwrap();
    assert_eq!(first.len(), 5);
    // oldest first
    assert_eq!(first[0].0.job_id, other_flow.job_id);
    // two takers racing for the rest: each execution goes to exactly one
    let (x, y) = tokio::join!(
        store.take_over("x", long, &flows, 100),
        store.take_over("y", long, &flows, 100)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let mut all: Vec<JobId> = first.iter().chain(&x).chain(&y).map(|(e, _)| e.job_id).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "an execution was taken twice");
    assert_eq!(n, 41);
}

pub async fn a_fire_time_is_taken_once(store: Arc<dyn Store>) {
    let t = ms(SystemTime::now());
    let fire = |at| Write::Fire { flow: "b".into(), at };
    let started = |at| execution(JobId::new(), "b", ExecutionStatus::Pending, at);
    let first = started(t);
    store
        .write(vec![fire(t), Write::Execution(first.clone())])
        .await
        .unwrap();
    assert_eq!(store.last_fire("b").await.unwrap(), Some(t));
    for at in [t, t - Duration::from_secs(1)] {
        let again = started(t);
        match store.write(vec![fire(at), Write::Execution(again.clone())]).await {
            Err(WriteError::AlreadyFired { flow, .. }) => assert_eq!(flow, "b"),
            other => panic!("a fire time not after the last was taken: {other:?}"),
        }
        assert_eq!(store.execution(again.job_id).await.unwrap(), None);
    }
    // three firers of the next time at once: one execution
    let next = t + Duration::from_secs(1);
    let racers: Vec<Execution> = (0..3).map(|_| started(next)).collect();
    let w = |e: &Execution| store.write(vec![fire(next), Write::Execution(e.clone())]);
    let (a, b, c) = tokio::join!(w(&racers[0]), w(&racers[1]), w(&racers[2]));
    let results = [a, b, c];
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    let mut stored = 0;
    for e in &racers {
        stored += usize::from(store.execution(e.job_id).await.unwrap().is_some());
    }
    assert_eq!(stored, 1);
    assert_eq!(store.last_fire("b").await.unwrap(), Some(next));
    // another flow's fire times are its own
    store
        .write(vec![Write::Fire {
            flow: "a".into(),
            at: t,
        }])
        .await
        .unwrap();
}

/// One `#[tokio::test]` per check, each over a store from `$fresh().await`.
#[macro_export]
macro_rules! store_contract {
    ($fresh:path, $max_payload:expr) => {
        mod contract_checks {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_write_is_read_back_whole() {
                contract::a_write_is_read_back_whole($fresh().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_later_write_replaces_its_row_and_attempts_and_steps_keep_their_order() {
                contract::a_later_write_replaces_its_row_and_attempts_and_steps_keep_their_order($fresh().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_shared_config_is_kept_as_first_written() {
                contract::a_shared_config_is_kept_as_first_written($fresh().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_batch_with_a_payload_over_the_limit_writes_nothing() {
                contract::a_batch_with_a_payload_over_the_limit_writes_nothing($fresh().await, $max_payload).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_payload_given_with_its_text_is_stored_as_that_text() {
                contract::a_payload_given_with_its_text_is_stored_as_that_text($fresh().await, $max_payload).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_list_is_newest_first_and_every_filter_keeps_what_it_says() {
                contract::the_list_is_newest_first_and_every_filter_keeps_what_it_says($fresh().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_histogram_counts_what_the_list_shows_per_bucket() {
                contract::the_histogram_counts_what_the_list_shows_per_bucket($fresh().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_cursor_holds_while_new_executions_arrive() {
                contract::a_cursor_holds_while_new_executions_arrive($fresh().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn logs_come_in_time_order_either_way_with_filters_and_cursors() {
                contract::logs_come_in_time_order_either_way_with_filters_and_cursors($fresh().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn flags_and_schedule_marks_are_kept() {
                contract::flags_and_schedule_marks_are_kept($fresh().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn recovery_finds_every_unfinished_execution_oldest_first() {
                contract::recovery_finds_every_unfinished_execution_oldest_first($fresh().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn prune_deletes_old_final_executions_in_bounded_batches_and_keeps_the_rest() {
                contract::prune_deletes_old_final_executions_in_bounded_batches_and_keeps_the_rest($fresh().await)
                    .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_claim_is_one_owners_until_it_is_released_or_expires() {
                contract::a_claim_is_one_owners_until_it_is_released_or_expires($fresh().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_stale_owners_write_is_refused_whole() {
                contract::a_stale_owners_write_is_refused_whole($fresh().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn take_over_claims_what_nobody_holds_once_each() {
                contract::take_over_claims_what_nobody_holds_once_each($fresh().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_fire_time_is_taken_once() {
                contract::a_fire_time_is_taken_once($fresh().await).await;
            }
        }
    };
}
