//! The admin API's changes and the rest of its reads, over real sockets against the real
//! daemon: manual retry with every refusal, resume, reload with a broken and a fixed
//! config, raw payload downloads, `/metrics`, the 401/403 matrix over every route of the
//! route table (each 401 with its challenge, each change and refusal in the audit log),
//! the forms of the `Authorization` header, each time preset's boundaries (on a data directory seeded through the
//! store), and cursor pagination while executions keep arriving.

mod support;

use flowd::daemon::admin::routes::{Access, Endpoint, ROUTES};
use flowd::store::{Execution, JobId, LogRow, Write};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};
use support::admin::{
    BY_HAND, NIGHTLY, OPERATOR, TOKENS, VIEWER, assert_bad_parameter, ended, failed_then_retried, flow_file, get, hook,
    metrics_holding, post_op, route_path, start,
};
use support::admin::{ECHO_THEN_FAIL, ONE_ECHO, PAUSE_THEN_ECHO};
use support::{Daemon, Setup};

const ECHO_THEN_ECHO: &str =
    "[[steps]]\nname = \"first\"\nconnector = \"echo\"\n[[steps]]\nname = \"second\"\nconnector = \"echo\"\n";

#[test]
fn manual_retry_runs_a_new_attempt_and_every_refusal_is_a_409() {
    let setup = Setup::with_server("", TOKENS);
    setup.flow("two", &flow_file("two", "/two", ECHO_THEN_FAIL));
    setup.flow(
        "replying",
        &flow_file(
            "replying",
            "/replying",
            "[[steps]]\nname = \"s\"\nconnector = \"fail\"\n[[steps]]\nname = \"reply\"\nrespond = { status = 200, body = \"ok\" }\n",
        ),
    );
    setup.flow("moving", &flow_file("moving", "/moving", ECHO_THEN_FAIL));
    setup.flow("gone", &flow_file("gone", "/gone", ECHO_THEN_FAIL));
    let d = start(&setup);

    // From the failed step: the first step's output is reused, the second runs again.
    let (job, detail, a2) = failed_then_retried(&d, "/two");
    assert_eq!(a2[0]["reused_from"], 1);
    assert_eq!(a2[0]["output"]["input"]["trigger"]["body"], json!({"n": 1}));
    assert_eq!(
        a2[1]["input"]["steps"]["first"], a2[0]["output"],
        "the reused output feeds the retried step"
    );
    assert_eq!(detail["retry"]["retries_left"], 1);

    // The flow is fixed and reloaded: the last retry runs its current steps, from the start.
    setup.flow("two", &flow_file("two", "/two", ECHO_THEN_ECHO));
    assert_eq!(post_op(&d, "/v1/reload", b"").0, 200);
    let (status, v) = post_op(&d, &format!("/v1/executions/{job}/retry?from=start"), b"");
    assert_eq!((status, v["attempt"].clone()), (202, json!(3)));
    assert_eq!(ended(&d, &job, 3)["status"], "success");
    let detail = get(&d, &format!("/v1/executions/{job}"));
    let a3: Vec<&Value> = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["attempt"] == 3)
        .collect();
    assert!(a3[0]["reused_from"].is_null(), "from the start, nothing is reused");
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 3);

    let refused = |job: &str, query: &str| {
        let (status, v) = post_op(&d, &format!("/v1/executions/{job}/retry{query}"), b"");
        assert_eq!(status, 409, "{v}");
        (
            v["error"]["code"].as_str().unwrap().to_string(),
            v["error"]["message"].as_str().unwrap().to_string(),
        )
    };
    let (code, message) = refused(&job, "");
    assert_eq!(code, "not_retryable");
    assert!(message.contains("status success is not retryable"), "{message}");

    // Two retries used up.
    let spent = hook(&d, "/moving", "{\"n\":1}");
    ended(&d, &spent, 1);
    for attempt in [2, 3] {
        assert_eq!(post_op(&d, &format!("/v1/executions/{spent}/retry"), b"").0, 202);
        ended(&d, &spent, attempt);
    }
    let (code, message) = refused(&spent, "");
    assert_eq!(code, "retry_limit");
    assert!(message.contains("manual retries are used up"), "{message}");
    assert_eq!(
        get(&d, &format!("/v1/executions/{spent}"))["retry"]["refused"]["code"],
        "retry_limit"
    );

    // A respond step's caller is gone.
    let r = d.request("POST", "/replying", &[], b"{}");
    let replying = r.json()["job_id"].as_str().unwrap().to_string();
    ended(&d, &replying, 1);
    assert_eq!(refused(&replying, "").0, "has_respond_step");

    // The trigger changed since the execution was taken; and a flow no longer loaded.
    let moved = hook(&d, "/moving", "{\"n\":1}");
    let lost = hook(&d, "/gone", "{\"n\":1}");
    ended(&d, &moved, 1);
    ended(&d, &lost, 1);
    setup.flow("moving", &flow_file("moving", "/moved", ECHO_THEN_FAIL));
    std::fs::remove_file(setup.path("flows/gone.toml")).unwrap();
    assert_eq!(post_op(&d, "/v1/reload", b"").0, 200);
    let (code, message) = refused(&moved, "");
    assert_eq!(code, "trigger_changed");
    assert!(message.contains("start a new execution instead"), "{message}");
    let (code, message) = refused(&lost, "");
    assert_eq!(code, "flow_not_found");
    assert!(message.contains("no longer loads"), "{message}");

    // An inactive flow takes no retries until activated; the detail says so too.
    assert_eq!(post_op(&d, "/v1/flows/moving/deactivate", b"").0, 200);
    assert_eq!(refused(&moved, "").0, "flow_inactive");
    assert_eq!(
        get(&d, &format!("/v1/executions/{moved}"))["retry"]["refused"]["code"],
        "flow_inactive"
    );
    assert_eq!(post_op(&d, "/v1/flows/moving/activate", b"").0, 200);

    // Not an execution, a bad parameter, a viewer.
    let (status, v) = post_op(&d, "/v1/executions/01a208b8-a5df-7131-8f90-72cdc1aff3bb/retry", b"");
    assert_eq!((status, v["error"]["code"].clone()), (404, json!("not_found")));
    let (status, v) = post_op(&d, &format!("/v1/executions/{moved}/retry?from=middle"), b"");
    assert_eq!(status, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("`from`"), "{v}");
    let r = d.admin("POST", &format!("/v1/executions/{moved}/retry"), Some(VIEWER), b"");
    assert_eq!(r.status, 403);
    d.stop();
}

#[test]
fn a_paused_execution_is_resumed_through_the_api() {
    let setup = Setup::with_server("", &format!("shutdown_grace = \"1s\"\n{TOKENS}"));
    setup.flow("gate", &flow_file("gate", "/gate", PAUSE_THEN_ECHO));
    setup.flow(
        "later",
        &flow_file(
            "later",
            "/later",
            "[[steps]]\nname = \"wait\"\npause = \"1h\"\n[[steps]]\nname = \"after\"\nconnector = \"echo\"\n",
        ),
    );
    let d = start(&setup);
    let job = hook(&d, "/gate", "{\"n\":1}");
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while get(&d, &format!("/v1/executions?job_id={job}"))["executions"][0]["status"] != "paused" {
        assert!(std::time::Instant::now() < end, "never paused");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, v) = post_op(&d, &format!("/v1/executions/{job}/resume"), b"");
    assert_eq!((status, v), (202, json!({"job_id": job})));
    assert_eq!(ended(&d, &job, 1)["status"], "success");
    let detail = get(&d, &format!("/v1/executions/{job}"));
    assert_eq!(detail["steps"][0]["status"], "success");
    assert!(detail["steps"][0]["output"]["resumed_at"].is_string());
    assert_eq!(detail["steps"][1]["status"], "success");

    let (status, v) = post_op(&d, &format!("/v1/executions/{job}/resume"), b"");
    assert_eq!((status, v["error"]["code"].clone()), (409, json!("not_paused")));

    // A timed pause is woken early: the task waiting it out goes on, in this run and in
    // the next one (after a restart, recovery waits it out).
    let paused = |d: &Daemon, job: &str| {
        let end = std::time::Instant::now() + Duration::from_secs(30);
        while get(d, &format!("/v1/executions?job_id={job}"))["executions"][0]["status"] != "paused" {
            assert!(std::time::Instant::now() < end, "never paused");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let timed = hook(&d, "/later", "{\"n\":1}");
    paused(&d, &timed);
    let (status, v) = post_op(&d, &format!("/v1/executions/{timed}/resume"), b"");
    assert_eq!((status, v), (202, json!({"job_id": timed})));
    assert_eq!(ended(&d, &timed, 1)["status"], "success");
    let detail = get(&d, &format!("/v1/executions/{timed}"));
    assert!(detail["steps"][0]["output"]["resumed_at"].is_string());
    assert_eq!(detail["steps"][1]["status"], "success");

    let across = hook(&d, "/later", "{\"n\":1}");
    paused(&d, &across);
    // The pause holds its worker past the grace period; it is recovered on the next start.
    d.stop();
    let d = start(&setup);
    paused(&d, &across);
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        // Until the recovered execution's task waits out its pause, the resume is `busy`.
        let (status, v) = post_op(&d, &format!("/v1/executions/{across}/resume"), b"");
        if status == 202 {
            break;
        }
        assert_eq!((status, v["error"]["code"].clone()), (409, json!("busy")), "{v}");
        assert!(std::time::Instant::now() < end, "never woken");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ended(&d, &across, 1)["status"], "success");
    d.stop();
}

#[test]
fn reload_through_the_api_is_all_or_nothing_and_lists_every_error() {
    let setup = Setup::with_server("", TOKENS);
    setup.flow("a", &flow_file("a", "/a", ECHO_THEN_ECHO));
    let d = start(&setup);
    setup.flow(
        "a",
        &flow_file("a", "/a", "[[steps]]\nname = \"first\"\nconnector = \"nosuch\"\n"),
    );
    setup.flow("b", "[flow]\nname = \"b\"\ncolour = \"red\"\n");
    let (status, v) = post_op(&d, "/v1/reload", b"");
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "invalid_config");
    let errors = v["error"]["errors"].as_array().unwrap();
    assert!(errors.len() >= 2, "{v}");
    let text = serde_json::to_string(errors).unwrap();
    assert!(
        text.contains("a.toml:7:13"),
        "the unknown connector with its place: {text}"
    );
    assert!(text.contains("b.toml:3:"), "the unknown key with its place: {text}");
    assert!(text.contains("nosuch"), "{text}");
    // The running config stays.
    assert_eq!(d.request("POST", "/a", &[], b"{}").status, 202);
    assert_eq!(get(&d, "/v1/flows")["flows"].as_array().unwrap().len(), 1);

    std::fs::remove_file(setup.path("flows/b.toml")).unwrap();
    setup.flow("c", &flow_file("c", "/c", ECHO_THEN_ECHO));
    setup.flow("a", &flow_file("a", "/a", ECHO_THEN_ECHO));
    let (status, v) = post_op(&d, "/v1/reload", b"");
    assert_eq!((status, v), (200, json!({"flows": 2})));
    assert_eq!(d.request("POST", "/c", &[], b"{}").status, 202);
    d.stop();
}

/// Reload checks the whole flow set as start does: two flows on one webhook path are
/// refused, the error placed at the second flow's `path`, and the running config stays.
#[test]
fn reload_refuses_two_flows_on_one_path_naming_where() {
    let setup = Setup::with_server("", TOKENS);
    setup.flow("a", &flow_file("a", "/a", ECHO_THEN_ECHO));
    let d = start(&setup);
    setup.flow("d", &flow_file("d", "/a", ECHO_THEN_ECHO));
    let (status, v) = post_op(&d, "/v1/reload", b"");
    assert_eq!(status, 422, "{v}");
    let errors = v["error"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(errors[0]["message"], "flows \"a\" and \"d\" both listen on /a");
    let at = errors[0]["location"].as_str().unwrap_or_default();
    assert!(at.ends_with("flows/d.toml:4:8"), "{v}");
    assert_eq!(get(&d, "/v1/flows")["flows"].as_array().unwrap().len(), 1);
    d.stop();
}

#[test]
fn payloads_download_raw_and_metrics_count_what_ran() {
    let setup = Setup::with_server("", TOKENS);
    setup.flow("two", &flow_file("two", "/two", ECHO_THEN_FAIL));
    setup.flow("idle", &flow_file("idle", "/idle", ECHO_THEN_ECHO));
    let d = start(&setup);
    let job = hook(&d, "/two", "{\"n\":1}");
    ended(&d, &job, 1);

    let raw = |path: &str| d.admin("GET", &format!("/v1/executions/{job}{path}"), Some(VIEWER), b"");
    let r = raw("/trigger");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("content-disposition").unwrap().contains("trigger.json"));
    assert_eq!(r.json()["body"], json!({"n": 1}));
    let output = raw("/steps/first/output").json();
    assert_eq!(output["input"]["trigger"]["body"], json!({"n": 1}));
    let input = raw("/steps/second/input").json();
    assert_eq!(
        input["steps"]["first"], output,
        "an input is the trigger plus earlier outputs"
    );
    assert_eq!(raw("/steps/first/config?attempt=1").status, 200);
    for (path, status) in [
        ("/steps/second/output", 404),
        ("/steps/nosuch/input", 404),
        ("/steps/first/secrets", 404),
        ("/steps/first/input?attempt=2", 404),
        ("/steps/first/input?attempt=9", 400),
    ] {
        let r = raw(path);
        assert_eq!(r.status, status, "{path}: {}", String::from_utf8_lossy(&r.body));
    }

    for _ in 0..3 {
        let j = hook(&d, "/two", "{\"n\":1}");
        ended(&d, &j, 1);
    }
    let text = metrics_holding(
        &d,
        &[
            "flowd_executions_total{flow=\"two\",status=\"failed\"} 4",
            "flowd_steps_total{flow=\"two\",step=\"first\",status=\"success\"} 4",
            "flowd_steps_total{flow=\"two\",step=\"second\",status=\"failed\"} 4",
            "flowd_step_duration_seconds_bucket{flow=\"two\",step=\"first\",le=\"+Inf\"} 4",
            "flowd_step_duration_seconds_count{flow=\"two\",step=\"second\"} 4",
            "flowd_queue_depth{flow=\"two\"} 0",
            "flowd_executions_running{flow=\"two\"} 0",
            "flowd_queue_depth{flow=\"idle\"} 0",
        ],
    );
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} in\n{text}"))
    };
    assert!(value("flowd_fuel_used_total{flow=\"two\",step=\"first\"}") > 0.0);
    if setup.database.is_some() {
        // PostgreSQL's figures are its pool's (set to 4 connections by the setup).
        assert_eq!(value("flowd_store_pool_max"), 4.0);
        assert!(value("flowd_store_pool_size") >= 1.0);
    } else {
        assert!(value("flowd_store_commits_total") >= 4.0);
        assert!(value("flowd_store_write_requests_total") >= value("flowd_store_commits_total"));
        // Each transaction takes one or more durable commits.
        assert!(value("flowd_store_transactions_total") >= 1.0);
        assert!(value("flowd_store_transactions_total") <= value("flowd_store_commits_total"));
        assert_eq!(
            value("flowd_store_commit_batch_size_bucket{le=\"+Inf\"}"),
            value("flowd_store_commits_total"),
            "every commit is in the batch-size histogram"
        );
        assert!(value("flowd_store_commit_batch_size_bucket{le=\"1\"}") >= 1.0);
    }
    assert_eq!(d.admin("GET", "/metrics", None, b"").status, 401);
    d.stop();
}

#[test]
fn every_route_of_the_table_answers_the_401_403_matrix() {
    let setup = Setup::with_server("", TOKENS);
    setup.flow("by-hand", BY_HAND);
    setup.flow("nightly", NIGHTLY);
    let d = start(&setup);
    let (_, v) = post_op(&d, "/v1/flows/by-hand/run", b"{}");
    let job = v["job_id"].as_str().unwrap().to_string();
    ended(&d, &job, 1);
    for route in ROUTES {
        let path = route_path(route.path, &job);
        let m = route.method;
        if route.access == Access::Public {
            // Signing in takes a token in its body.
            let body = match route.endpoint {
                Endpoint::SignIn => json!({ "token": VIEWER }).to_string(),
                _ => String::new(),
            };
            assert_eq!(d.admin(m, &path, None, body.as_bytes()).status, 200, "{m} {path}");
            continue;
        }
        // Every 401 says how to authenticate (RFC 9110 §11.6.1, RFC 6750 §3).
        for (token, challenge) in [
            (None, "Bearer realm=\"flowd\""),
            (
                Some("not-a-configured-token"),
                "Bearer realm=\"flowd\", error=\"invalid_token\"",
            ),
        ] {
            let r = d.admin(m, &path, token, b"");
            assert_eq!(r.status, 401, "{m} {path} with {token:?}");
            assert_eq!(r.json()["error"]["code"], "unauthorized");
            assert_eq!(r.header("www-authenticate"), Some(challenge), "{m} {path}");
        }
        let r = support::http_request(d.admin, m, &path, &[("Authorization", VIEWER)], b"");
        assert_eq!(r.status, 401, "a token without `Bearer `: {m} {path}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"flowd\", error=\"invalid_request\""),
            "{m} {path}"
        );
        if path.ends_with("/follow") {
            continue; // endless; its own test reads it
        }
        let viewer = d.admin(m, &path, Some(VIEWER), b"").status;
        if route.access == Access::Operator {
            assert_eq!(viewer, 403, "{m} {path}");
            // The operator passes auth: whatever it answers, not 401/403 (a 409 for the
            // retry of a successful execution, say).
            let op = d.admin(m, &path, Some(OPERATOR), b"").status;
            assert!(![401, 403, 404, 405].contains(&op), "{m} {path}: {op}");
            // Both are in the daemon's log with the token's name, what and the answer.
            let action = route_action(route.endpoint);
            for (line, token, status) in [
                ("admin API change refused", "dash", 403),
                (
                    if op < 400 {
                        "admin API change"
                    } else {
                        "admin API change refused"
                    },
                    "ops",
                    op,
                ),
            ] {
                let wanted = format!("{line} token=\"{token}\"");
                let fields = format!("action={action} target=");
                let status = format!("status={status}");
                d.wait_log_line(&format!("{m} {path}: {wanted} {fields}… {status}"), 10, |l| {
                    l.contains(&wanted) && l.contains(&fields) && l.ends_with(&status)
                });
            }
        } else {
            assert_eq!(viewer, 200, "{m} {path}");
        }
    }
    // Paths outside the table: 404 (with a token), a wrong method: 405 with Allow.
    assert_eq!(d.admin("GET", "/v1/nothing-here", Some(VIEWER), b"").status, 404);
    assert_eq!(d.admin("GET", "/v1/nothing-here", None, b"").status, 401);
    let r = d.admin("DELETE", "/v1/executions", Some(OPERATOR), b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    let r = d.admin("GET", "/v1/reload", Some(OPERATOR), b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    // A path with a public route and others: a wrong method needs a token first.
    assert_eq!(d.admin("PATCH", "/v1/session", None, b"").status, 401);
    let r = d.admin("PATCH", "/v1/session", Some(VIEWER), b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST, GET, DELETE")));
    d.stop();
}

/// The action an operator route's audit line names.
fn route_action(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Retry => "retry",
        Endpoint::Resume => "resume",
        Endpoint::ScheduleEnable => "enable",
        Endpoint::ScheduleDisable => "disable",
        Endpoint::ScheduleRun | Endpoint::FlowRun => "run",
        Endpoint::FlowActivate => "activate",
        Endpoint::FlowDeactivate => "deactivate",
        Endpoint::Reload => "reload",
        other => panic!("{other:?} changes nothing"),
    }
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_every_other_form_is_a_401_with_its_challenge() {
    let setup = Setup::with_server("", TOKENS);
    let d = start(&setup);
    let ask = |authorization: &str| {
        support::http_request(d.admin, "GET", "/v1/flows", &[("Authorization", authorization)], b"")
    };
    for form in [
        format!("Bearer {VIEWER}"),
        format!("bearer {VIEWER}"),
        format!("BEARER {VIEWER}"),
        format!("bEaReR {VIEWER}"),
        format!("Bearer   {VIEWER}"),
        format!("Bearer\t{VIEWER}"),
    ] {
        assert_eq!(ask(&form).status, 200, "{form:?}");
    }
    for (form, challenge) in [
        ("Basic dXNlcjpwYXNzd29yZA==".to_string(), "Bearer realm=\"flowd\""),
        (format!("Token {VIEWER}"), "Bearer realm=\"flowd\""),
        (
            "Bearer".to_string(),
            "Bearer realm=\"flowd\", error=\"invalid_request\"",
        ),
        (VIEWER.to_string(), "Bearer realm=\"flowd\", error=\"invalid_request\""),
        (
            format!("Bearer {VIEWER}x"),
            "Bearer realm=\"flowd\", error=\"invalid_token\"",
        ),
        (
            format!("Bearer {}", VIEWER.to_uppercase()),
            "Bearer realm=\"flowd\", error=\"invalid_token\"",
        ),
    ] {
        let r = ask(&form);
        assert_eq!(r.status, 401, "{form:?}");
        assert_eq!(r.header("www-authenticate"), Some(challenge), "{form:?}");
    }
    d.stop();
}

/// An execution row created at `t` with a job id of that millisecond.
fn seeded(t: SystemTime) -> Execution {
    Execution {
        job_id: JobId::at(t),
        project: "default".into(),
        flow: "seeded".into(),
        flow_version: "v".into(),
        trigger_kind: "manual".into(),
        trigger_fingerprint: "f".into(),
        environment: "test".into(),
        status: flowd::engine::ExecutionStatus::Success,
        attempt: 1,
        created_at: t,
        started_at: Some(t),
        finished_at: Some(t),
        steps_total: 0,
        steps_executed: 0,
        resume_at: None,
    }
}

fn log_at(e: &Execution, message: &str) -> LogRow {
    LogRow {
        time: e.created_at,
        level: flowd::plugin::Level::Info,
        job_id: e.job_id,
        project: e.project.clone(),
        flow: e.flow.clone(),
        flow_version: e.flow_version.clone(),
        attempt: 1,
        step: None,
        connector: None,
        action: "run".into(),
        category: "seed".into(),
        environment: e.environment.clone(),
        message: message.into(),
    }
}

#[test]
fn every_preset_keeps_its_boundaries_in_the_daemons_time_zone() {
    use chrono::{Datelike, TimeZone};
    let setup = Setup::with_server("", &format!("timezone = \"America/New_York\"\n{TOKENS}"));
    let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let now = SystemTime::now();
    let today = chrono::DateTime::<chrono::Utc>::from(now)
        .with_timezone(&tz)
        .date_naive();
    let midnight = |days_back: u64| -> SystemTime {
        let date = today.checked_sub_days(chrono::Days::new(days_back)).unwrap();
        tz.from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
            .earliest()
            .expect("no zone of this test skips midnight")
            .into()
    };
    let monday = u64::from(today.weekday().num_days_from_monday());
    let ms = Duration::from_millis(1);
    // (label, time): each calendar boundary and the millisecond before it; each relative
    // preset's start with 30 s either side (the test runs well within that).
    let mut points: Vec<(String, SystemTime)> = Vec::new();
    for (name, t) in [
        ("today", midnight(0)),
        ("yesterday", midnight(1)),
        ("two_days_ago", midnight(2)),
        ("this_week", midnight(monday)),
        ("last_week", midnight(monday + 7)),
    ] {
        points.push((format!("{name}@start"), t));
        points.push((format!("{name}@start-1ms"), t - ms));
    }
    let relative = [
        ("5m", 300),
        ("15m", 900),
        ("1h", 3600),
        ("6h", 21_600),
        ("1d", 86_400),
        ("3d", 259_200),
        ("7d", 604_800),
        ("30d", 2_592_000),
    ];
    for (name, secs) in relative {
        points.push((format!("{name}@inside"), now - Duration::from_secs(secs - 30)));
        points.push((format!("{name}@outside"), now - Duration::from_secs(secs + 30)));
    }
    let rows: Vec<(String, Execution)> = points.iter().map(|(label, t)| (label.clone(), seeded(*t))).collect();
    let mut writes: Vec<Write> = rows.iter().map(|(_, e)| Write::Execution(e.clone())).collect();
    writes.push(Write::Logs(rows.iter().map(|(l, e)| log_at(e, l)).collect()));
    support::seed(&setup, writes);
    let d = start(&setup);
    let within = |t: SystemTime, from: SystemTime, to: SystemTime| t >= from && t < to;
    for preset in flowd::daemon::admin::PRESETS.iter().copied() {
        let (from, to) = match preset {
            "today" => (midnight(0), now + Duration::from_secs(3600)),
            "yesterday" => (midnight(1), midnight(0)),
            "two_days_ago" => (midnight(2), midnight(1)),
            "this_week" => (midnight(monday), now + Duration::from_secs(3600)),
            "last_week" => (midnight(monday + 7), midnight(monday)),
            rel => {
                let secs = relative.iter().find(|(n, _)| *n == rel).unwrap().1;
                (now - Duration::from_secs(secs), now + Duration::from_secs(3600))
            }
        };
        let mut expected: Vec<&str> = rows
            .iter()
            .filter(|(_, e)| within(e.created_at, from, to))
            .map(|(l, _)| l.as_str())
            .collect();
        expected.sort();
        let listed = get(&d, &format!("/v1/executions?preset={preset}&limit=1000"));
        let mut got: Vec<&str> = listed["executions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| {
                rows.iter()
                    .find(|(_, r)| e["job_id"] == json!(r.job_id.to_string()))
                    .map(|(l, _)| l.as_str())
            })
            .collect();
        got.sort();
        assert_eq!(got, expected, "executions, preset {preset}");
        let logs = get(&d, &format!("/v1/logs?preset={preset}&limit=1000&category=seed"));
        let mut got: Vec<&str> = logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["message"].as_str().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, expected, "logs, preset {preset}");
    }
    d.stop();
}

#[test]
fn pages_stay_exact_while_executions_keep_arriving() {
    let setup = Setup::with_server("", TOKENS);
    setup.flow("ok", &flow_file("ok", "/ok", ONE_ECHO));
    let d = std::sync::Arc::new(start(&setup));
    let before: Vec<String> = (0..12).map(|_| hook(&d, "/ok", "{\"n\":1}")).collect();
    let writer = {
        let d = d.clone();
        std::thread::spawn(move || (0..20).map(|_| hook(&d, "/ok", "{\"n\":1}")).collect::<Vec<_>>())
    };
    // The first page is taken once some newer executions exist; later pages go on
    // while the writer keeps adding.
    std::thread::sleep(Duration::from_millis(50));
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(&d, &format!("/v1/executions?limit=5{cursor}"));
        seen.extend(
            page["executions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["job_id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let added = writer.join().unwrap();
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first, no job twice");
    for job in &before {
        assert!(seen.contains(job), "{job} existed before the first page and is listed");
    }
    let first = &seen[0];
    assert!(
        seen.iter().all(|j| j <= first),
        "nothing newer than the first page's first row appears later"
    );
    let all = get(&d, "/v1/executions?limit=1000");
    assert_eq!(all["executions"].as_array().unwrap().len(), before.len() + added.len());
    match std::sync::Arc::try_unwrap(d) {
        Ok(d) => d.stop(),
        Err(_) => panic!("the writer thread still holds the daemon"),
    }
}

#[test]
fn an_accepted_retry_waiting_in_its_queue_survives_a_restart() {
    let setup = Setup::with_server("", &format!("shutdown_grace = \"20s\"\n{TOKENS}"));
    // One at a time; `ms` from the body: without it the step fails (a missing value).
    setup.flow(
        "one",
        "[flow]\nname = \"one\"\nthrottle = { max_concurrency = 1 }\n[trigger.http]\npath = \"/one\"\n[[steps]]\nname = \"s\"\nconnector = \"sleeper\"\nconfig = { ms = \"{{ trigger.body.ms }}\" }\nfuel = 5_000_000_000\n",
    );
    let d = start(&setup);
    let failed = hook(&d, "/one", "{\"n\":1}");
    assert_eq!(ended(&d, &failed, 1)["status"], "failed");
    let r = d.request("POST", "/one", &[], b"{\"ms\": 1500}");
    assert_eq!(r.status, 202);
    let blocker = r.json()["job_id"].as_str().unwrap().to_string();
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while get(&d, &format!("/v1/executions?job_id={blocker}"))["executions"][0]["status"] != "running" {
        assert!(std::time::Instant::now() < end, "the blocker never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, v) = post_op(&d, &format!("/v1/executions/{failed}/retry"), b"");
    assert_eq!((status, v["attempt"].clone()), (202, json!(2)));
    let mut d = d;
    d.signal("TERM");
    assert_eq!(d.wait(30), Some(0));

    // Stored as the flow's queue holds it: queued, attempt 2.
    let rows = support::list_executions(&setup, Some("one"));
    let row = rows.iter().find(|e| e["job_id"] == json!(failed)).unwrap();
    assert_eq!(
        (row["status"].as_str(), row["attempt"].as_u64()),
        (Some("queued"), Some(2))
    );

    let d = start(&setup);
    let row = ended(&d, &failed, 2);
    assert_eq!(
        row["status"], "failed",
        "attempt 2 ran after the restart (and failed the same way)"
    );
    let detail = get(&d, &format!("/v1/executions/{failed}"));
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(detail["steps"][1]["error"]["kind"], "template");
    d.stop();
}

#[test]
fn bodies_over_the_limit_and_bad_parameters_of_every_kind_are_refused() {
    let setup = Setup::with_server("", TOKENS);
    setup.flow("by-hand", BY_HAND);
    setup.flow("nightly", NIGHTLY);
    setup.flow("hooked", &flow_file("hooked", "/hooked", ECHO_THEN_ECHO));
    let d = start(&setup);
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(1 << 20));
    let (status, v) = post_op(&d, "/v1/flows/by-hand/run", big.as_bytes());
    assert_eq!((status, v["error"]["code"].clone()), (413, json!("body_too_large")));
    let (status, v) = post_op(&d, "/v1/flows/by-hand/run", b"[1, 2");
    assert_eq!((status, v["error"]["code"].clone()), (400, json!("bad_body")));
    // A byte order mark before the JSON is ignored (RFC 8259 §8.1), a second one is not.
    let (status, v) = post_op(&d, "/v1/flows/by-hand/run", b"\xEF\xBB\xBF{\"n\": 1}");
    assert_eq!(status, 202, "{v}");
    assert!(v["job_id"].is_string(), "{v}");
    let (status, v) = post_op(&d, "/v1/flows/by-hand/run", b"\xEF\xBB\xBF\xEF\xBB\xBF{}");
    assert_eq!((status, v["error"]["code"].clone()), (400, json!("bad_body")));
    // Only a manual flow takes a manual run: the others' steps read a request or a tick.
    let (status, v) = post_op(&d, "/v1/flows/nightly/run", b"{}");
    assert_eq!((status, v["error"]["code"].clone()), (409, json!("not_manual")));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/schedules/nightly/run")
    );
    let (status, v) = post_op(&d, "/v1/flows/hooked/run", b"{}");
    assert_eq!((status, v["error"]["code"].clone()), (409, json!("not_manual")));
    assert!(v["error"]["message"].as_str().unwrap().contains("send POST /hooked"));
    for (method, path, name, says) in [
        ("GET", "/v1/schedules?next=0", "next", "from 1 to 100"),
        ("GET", "/v1/schedules/executions?status=late", "status", "not a status"),
        (
            "GET",
            "/v1/logs/follow?from=2026-01-01T00:00:00Z",
            "from",
            "no time range",
        ),
        ("GET", "/v1/flows?active=true", "active", "unknown"),
        ("GET", "/metrics?debug=1", "debug", "unknown"),
        ("POST", "/v1/reload?force=1", "force", "unknown"),
        ("POST", "/v1/flows/by-hand/run?wait=1", "wait", "unknown"),
    ] {
        let r = d.admin(method, path, Some(OPERATOR), b"");
        assert_bad_parameter(&r, name, says, path);
    }
    d.stop();
}

#[test]
fn long_pauses_wait_without_holding_a_worker() {
    // One worker in all: a pause that held it would stall every other execution.
    let setup = Setup::with_server("", &format!("workers = 1\nshutdown_grace = \"5s\"\n{TOKENS}"));
    setup.flow(
        "long",
        &flow_file(
            "long",
            "/long",
            "[[steps]]\nname = \"wait\"\npause = \"1h\"\n[[steps]]\nname = \"after\"\nconnector = \"echo\"\n",
        ),
    );
    setup.flow("quick", &flow_file("quick", "/quick", ECHO_THEN_ECHO));
    let status =
        |d: &Daemon, job: &str| get(d, &format!("/v1/executions?job_id={job}"))["executions"][0]["status"].clone();
    let wait_paused = |d: &Daemon, job: &str| {
        let end = std::time::Instant::now() + Duration::from_secs(30);
        while status(d, job) != "paused" {
            assert!(std::time::Instant::now() < end, "never paused");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let d = start(&setup);
    let longs = [hook(&d, "/long", "{\"n\":1}"), hook(&d, "/long", "{\"n\":1}")];
    for j in &longs {
        wait_paused(&d, j);
    }
    let quick = hook(&d, "/quick", "{\"n\":1}");
    assert_eq!(ended(&d, &quick, 1)["status"], "success");
    for j in &longs {
        assert_eq!(status(&d, j), "paused", "still waiting out its hour");
    }
    metrics_holding(&d, &["flowd_executions_running{flow=\"long\"} 0"]);

    // Woken, it takes the worker again and runs to its end.
    assert_eq!(post_op(&d, &format!("/v1/executions/{}/resume", longs[0]), b"").0, 202);
    assert_eq!(ended(&d, &longs[0], 1)["status"], "success");

    // Shutdown does not wait for the other; after a restart it waits again, workerless.
    d.stop();
    let d = start(&setup);
    wait_paused(&d, &longs[1]);
    let quick = hook(&d, "/quick", "{\"n\":1}");
    assert_eq!(ended(&d, &quick, 1)["status"], "success");
    assert_eq!(status(&d, &longs[1]), "paused");
    d.stop();
}
