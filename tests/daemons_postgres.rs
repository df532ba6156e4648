//! Two `flowd serve` processes on one PostgreSQL database, each with config files of its
//! own: an operator change made through one (deactivating a flow, disabling a schedule,
//! a reload) takes effect on the other; webhooks may hit either; the admin API of each
//! sees every execution, log record and scheduled execution, and its live tail shows
//! records the other wrote.

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::admin::{Follow, NIGHTLY, NOISY, TOKENS, ended, flow_file, get, hook, post_op, start};
use support::postgres::Database;
use support::{Daemon, Setup};

/// Two setups on one new database, each with the flows `ok`, `nightly` and `noisy`.
fn pair() -> (Setup, Setup) {
    let a = Setup::embedded("", TOKENS).use_postgres(Database::create());
    let b = Setup::embedded("", TOKENS).use_postgres(a.database.clone().unwrap());
    for s in [&a, &b] {
        s.flow(
            "ok",
            &flow_file("ok", "/ok", "[[steps]]\nname = \"s\"\nconnector = \"echo\"\n"),
        );
        s.flow("nightly", NIGHTLY);
        s.flow("noisy", NOISY);
    }
    (a, b)
}

/// Waits (at most 30 s: another daemon's change shows within a second or so) until
/// `check` holds.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < end, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A flow's `active` as `GET /v1/flows` (or `/v1/schedules`) of `d` says.
fn active(d: &Daemon, list: &str, flow: &str) -> Value {
    let v = get(d, &format!("/v1/{list}"));
    let key = if list == "flows" { "name" } else { "flow" };
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f[key] == flow)
        .map_or(Value::Null, |f| f["active"].clone())
}

fn flow_names(d: &Daemon) -> Vec<String> {
    get(d, "/v1/flows")["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_operator_change_through_one_daemon_takes_effect_on_the_other() {
    let (sa, sb) = pair();
    let a = start(&sa);
    let b = start(&sb);

    // Webhooks may hit either daemon; each sees the other's executions.
    let ja = hook(&a, "/ok", "{}");
    let jb = hook(&b, "/ok", "{}");
    assert_eq!(ended(&b, &ja, 1)["status"], "success");
    assert_eq!(ended(&a, &jb, 1)["status"], "success");

    // A flow deactivated through A refuses webhooks on B too, and is shown inactive there;
    // activated again through B, A takes its webhooks again.
    assert_eq!(post_op(&a, "/v1/flows/ok/deactivate", b"").0, 200);
    eventually("B refuses a deactivated flow's webhook", || {
        b.request("POST", "/ok", &[], b"{}").status == 409
    });
    assert_eq!(active(&b, "flows", "ok"), json!(false));
    let r = b.request("POST", "/ok", &[], b"{}");
    assert_eq!(r.json()["error"]["code"], "flow_inactive");
    assert_eq!(post_op(&b, "/v1/flows/ok/activate", b"").0, 200);
    eventually("A takes an activated flow's webhook", || {
        a.request("POST", "/ok", &[], b"{}").status == 202
    });
    assert_eq!(active(&a, "flows", "ok"), json!(true));

    // A schedule disabled through B is disabled on A (which refuses to run it now), and
    // enabled through A, on B.
    assert_eq!(post_op(&b, "/v1/schedules/nightly/disable", b"").0, 200);
    eventually("A shows the schedule disabled", || {
        active(&a, "schedules", "nightly") == json!(false)
    });
    let (status, v) = post_op(&a, "/v1/schedules/nightly/run", b"");
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (409, json!("flow_inactive")),
        "{v}"
    );
    assert_eq!(post_op(&a, "/v1/schedules/nightly/enable", b"").0, 200);
    eventually("B shows the schedule enabled", || {
        active(&b, "schedules", "nightly") == json!(true)
    });

    // A reload through A reloads B too, each from its own files.
    let manual = |name: &str| {
        format!("[flow]\nname = \"{name}\"\n[trigger.manual]\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n")
    };
    sa.flow("only-a", &manual("only-a"));
    sb.flow("only-b", &manual("only-b"));
    let (status, v) = post_op(&a, "/v1/reload", b"");
    assert_eq!((status, v), (200, json!({"flows": 4})));
    eventually("B reloads its own files", || flow_names(&b).contains(&"only-b".into()));
    assert_eq!(flow_names(&b), ["nightly", "noisy", "ok", "only-b"]);
    assert_eq!(flow_names(&a), ["nightly", "noisy", "ok", "only-a"]);

    // A reload B's files refuse leaves B's running config, and A's reload stands.
    sb.flow("broken", "[flow]\nname = ");
    sa.flow("also-a", &manual("also-a"));
    assert_eq!(post_op(&a, "/v1/reload", b"").0, 200);
    b.wait_log_line("B's refusal", 30, |l| {
        l.contains("reload asked through another daemon refused")
    });
    assert_eq!(flow_names(&b), ["nightly", "noisy", "ok", "only-b"]);
    assert!(flow_names(&a).contains(&"also-a".into()));
    let jb = hook(&b, "/ok", "{}");
    assert_eq!(ended(&a, &jb, 1)["status"], "success");
    a.stop();
    b.stop();
}

#[test]
fn either_daemons_admin_api_sees_and_tails_what_the_other_ran() {
    let (sa, sb) = pair();
    let a = start(&sa);
    let b = start(&sb);

    // A's live tail shows the records of an execution B ran.
    let mut tail = Follow::open(&a, "flow=noisy");
    let job = hook(&b, "/noisy", "{\"id\": 7}");
    tail.wait_for("order 7 late");
    let messages: Vec<Value> = tail.records().iter().map(|l| l["message"].clone()).collect();
    assert_eq!(messages, [json!("order 7 in"), json!("order 7 late")]);
    assert!(tail.records().iter().all(|l| l["job_id"] == job.as_str()));

    // A lists it, details it and finds its log records; B's scheduled run shows in A's
    // scheduled tasks.
    assert_eq!(ended(&a, &job, 1)["status"], "success");
    let detail = get(&a, &format!("/v1/executions/{job}"));
    assert_eq!(detail["steps"].as_array().unwrap().len(), 2, "{detail}");
    let logs = get(&a, &format!("/v1/logs?job_id={job}&level=warn"));
    assert_eq!(logs["logs"][0]["message"], "order 7 late", "{logs}");
    let (status, v) = post_op(&b, "/v1/schedules/nightly/run", b"");
    assert_eq!(status, 202, "{v}");
    let fired = v["job_id"].as_str().unwrap().to_string();
    assert_eq!(ended(&a, &fired, 1)["status"], "success");
    let scheduled = get(&a, "/v1/schedules/executions?flow=nightly");
    assert_eq!(scheduled["executions"][0]["job_id"], fired.as_str(), "{scheduled}");

    // Both answer the same lists.
    for path in ["/v1/executions", "/v1/logs", "/v1/schedules/executions"] {
        assert_eq!(get(&a, path), get(&b, path), "{path}");
    }
    a.stop();
    b.stop();
}
