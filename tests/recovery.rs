//! Recovery of stored work that cannot go on as it is, through the real daemon: an
//! execution whose records cannot be read ends `failed` with a clear error (instead of
//! being met again at every start), a damaged record that still reads does not stop
//! recovery, and the daemon serves everything else meanwhile.

mod support;

use flowd::engine::ExecutionStatus;
use flowd::store::{Attempt, Execution, JobId, PayloadKey, StepRow, Write};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};
use support::Setup;
use support::admin::{TOKENS, ended, get, hook, start};

const VICTIM: &str = "[flow]\nname = \"victim\"\n[trigger.manual]\n[[steps]]\nname = \"first\"\nconnector = \"echo\"\n[[steps]]\nname = \"second\"\nconnector = \"echo\"\n";
const STEADY: &str =
    "[flow]\nname = \"steady\"\n[trigger.http]\npath = \"/steady\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n";

fn setup() -> Setup {
    let setup = Setup::with_server("", TOKENS);
    setup.flow("victim", VICTIM);
    setup.flow("steady", STEADY);
    std::fs::create_dir_all(setup.path("data")).unwrap();
    setup
}

/// A `victim` execution stored `running`, its first step done as `first` says.
fn running(job: JobId, first: Value) -> Vec<Write> {
    let t = SystemTime::now() - Duration::from_secs(5);
    let execution = Execution {
        job_id: job,
        project: "default".into(),
        flow: "victim".into(),
        flow_version: "v0".into(),
        trigger_kind: "manual".into(),
        trigger_fingerprint: "f".into(),
        environment: "test".into(),
        status: ExecutionStatus::Running,
        attempt: 1,
        created_at: t,
        started_at: Some(t),
        finished_at: None,
        steps_total: 2,
        steps_executed: 1,
        resume_at: None,
    };
    let step: StepRow = serde_json::from_value(first).unwrap();
    vec![
        Write::Execution(execution),
        Write::Attempt {
            job_id: job,
            row: Attempt {
                attempt: 1,
                status: ExecutionStatus::Running,
                started_at: Some(t),
                finished_at: None,
                from_step: 0,
            },
        },
        Write::Payload {
            key: PayloadKey::trigger(job),
            value: json!({ "kind": "manual", "body": {} }).into(),
            text: None,
        },
        Write::Step { job_id: job, row: step },
    ]
}

fn first_step(duration: f64) -> Value {
    json!({ "attempt": 1, "index": 0, "name": "first", "kind": "connector", "status": "success",
        "started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:01.000Z",
        "duration": duration, "fuel_used": 10 })
}

#[test]
fn an_execution_whose_records_cannot_be_read_ends_failed_and_the_rest_is_served() {
    let setup = setup();
    let job = JobId::new();
    support::seed(&setup, running(job, first_step(1.0)));
    // The second step's row is damaged on disk: it is no JSON a step row reads from.
    {
        let db = redb::Database::create(setup.path("data/flowd.redb")).unwrap();
        let steps: redb::TableDefinition<(u128, u32, u32), &[u8]> = redb::TableDefinition::new("steps");
        let txn = db.begin_write().unwrap();
        txn.open_table(steps)
            .unwrap()
            .insert((job.0, 1, 1), b"\xffnot a step".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let d = start(&setup);
    let row = ended(&d, &job.to_string(), 1);
    assert_eq!(row["status"], "failed", "{row}");
    let detail = get(&d, &format!("/v1/executions/{job}"));
    let failed: Vec<&Value> = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{detail:#}");
    let error = &failed[0]["error"];
    assert_eq!(error["kind"], "host");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("flowd stopped this execution:") && message.contains("unreadable steps record"),
        "{message}"
    );
    let logs = get(&d, &format!("/v1/logs?job_id={job}&level=error&preset=1h"));
    assert!(
        logs["logs"].as_array().unwrap().iter().any(|l| l["message"] == message),
        "{logs:#}"
    );
    // Everything else is served meanwhile.
    let steady = hook(&d, "/steady", "{}");
    assert_eq!(ended(&d, &steady, 1)["status"], "success");
    d.stop();

    // The next start finds it final: it is not met again.
    let d = start(&setup);
    let steady = hook(&d, "/steady", "{}");
    assert_eq!(ended(&d, &steady, 1)["status"], "success");
    assert!(
        !d.log.lock().unwrap().contains(&job.to_string()),
        "{}",
        d.log.lock().unwrap()
    );
    d.stop();
}

#[test]
fn a_stored_duration_no_duration_holds_does_not_stop_recovery() {
    let setup = setup();
    let job = JobId::new();
    support::seed(&setup, running(job, first_step(1e300)));
    let d = start(&setup);
    let row = ended(&d, &job.to_string(), 1);
    assert_eq!(row["status"], "success", "{row}");
    let detail = get(&d, &format!("/v1/executions/{job}"));
    assert_eq!(detail["steps"][1]["status"], "success", "{detail:#}");
    d.stop();
}
