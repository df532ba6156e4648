//! Recovery of stored work that cannot go on as it is, through the real daemon: an
//! execution whose records cannot be read ends `failed` with a clear error (instead of
//! being met again at every start), a damaged record that still reads does not stop
//! recovery, and the daemon serves everything else meanwhile. A full disk (files limited
//! in size) refuses what it cannot store with 503 and no job id, warns once rather than in
//! a loop, and loses nothing it answered: a restart with room applies the log again.

mod support;

use flowd::engine::ExecutionStatus;
use flowd::store::{Attempt, Execution, JobId, PayloadKey, StepRow, Write};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};
use support::Setup;
use support::admin::{OPERATOR, TOKENS, VIEWER, ended, get, hook, start};

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

#[test]
fn a_full_disk_refuses_what_it_cannot_store_and_loses_nothing_it_answered() {
    // The daemon's files may not grow past 12 MiB, as on a full disk: the database's file
    // fills, a checkpoint fails, and redb refuses every write after that I/O error.
    let setup = Setup::embedded("", TOKENS);
    setup.flow(
        "held",
        "[flow]\nname = \"held\"\n[trigger.http]\npath = \"/held\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n\
         [[steps]]\nname = \"r\"\nrespond = { status = 200, body = \"{{ trigger.body.n }}\" }\n",
    );
    setup.flow("steady", STEADY);
    let tokens = [("FLOWD_TEST_VIEWER", VIEWER), ("FLOWD_TEST_OPERATOR", OPERATOR)];
    let d = support::Daemon::start_file_limited(&setup, 12 << 20, &tokens);
    // Payloads are compressed: hex from a linear congruential generator does not shrink
    // much.
    let mut x: u64 = 1;
    let pad: String = (0..100_000)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            char::from_digit((x >> 60) as u32, 16).unwrap()
        })
        .collect();
    let mut answered = Vec::new();
    let mut refused = [0, 0];
    for n in 0..600 {
        let path = ["/held", "/steady"][n % 2];
        let body = serde_json::to_vec(&json!({ "n": n, "pad": pad })).unwrap();
        let r = d.request("POST", path, &[("content-type", "application/json")], &body);
        match r.status {
            200 => {
                assert_eq!(r.body, n.to_string().as_bytes(), "{path}: {r:?}");
                answered.push(r.header("x-flowd-job-id").unwrap().to_string());
            }
            202 => answered.push(r.json()["job_id"].as_str().unwrap().to_string()),
            503 => {
                // Nothing of it is stored: no job id to look up (a held webhook got
                // `502 no_response` with the id of an execution that did not exist).
                let v = r.json();
                assert_eq!(v["error"]["code"], "store_unavailable", "{path}: {v}");
                assert!(v.get("job_id").is_none(), "{path}: {v}");
                refused[n % 2] += 1;
            }
            _ => panic!("{path}: {r:?}\n{}", d.log_tail(4000)),
        }
        if refused.iter().all(|&r| r >= 3) {
            break;
        }
    }
    assert!(
        refused.iter().all(|&r| r >= 3),
        "the limit was never reached: {refused:?}"
    );
    assert!(answered.len() >= 10, "{answered:?}");
    // A failed checkpoint is tried again as often as one is due, and warned about once:
    // it was retried in a loop, a warning each time (gigabytes of log on a full disk).
    // Whichever meets the full disk first, a checkpoint or a batch's writes, says so and
    // what to do (a batch refused whole said nothing but its 503s).
    std::thread::sleep(Duration::from_secs(2));
    let log = d.log_tail(usize::MAX);
    let checkpoints = log.matches("a checkpoint of the database failed").count();
    let batches = log.matches("a write to the database failed").count();
    assert!(
        checkpoints <= 1 && batches <= 1 && checkpoints + batches >= 1,
        "{checkpoints} checkpoint and {batches} batch warnings: {}",
        d.log_tail(4000)
    );
    assert!(
        log.contains("make room (or mend the disk) and restart flowd"),
        "{}",
        d.log_tail(4000)
    );
    let mut d = d;
    d.signal("TERM");
    assert!(d.wait(30).is_some(), "{}", d.log_tail(4000));
    // Room again: every execution answered is there and ends, and nothing refused is.
    let d = start(&setup);
    for job in &answered {
        assert_eq!(ended(&d, job, 1)["status"], "success", "{job}");
    }
    let listed = get(&d, "/v1/executions?limit=1000")["executions"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(listed, answered.len());
    d.stop();
}
