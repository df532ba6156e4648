//! The admin API's reads over real sockets against the real daemon: the execution list
//! with its filters and cursor, an execution's detail, flows (list, activate, deactivate,
//! manual run), log search, downloads and live tail, scheduled tasks, and 400s naming
//! the parameter at fault. Auth over every route is in tests/admin_actions.rs.

mod support;

use serde_json::{Value, json};
use support::admin::{
    BY_HAND, Follow, NOISY, OPERATOR, TOKENS, VIEWER, assert_bad_parameter, ended, hook, ids, log_messages, ok_and_bad,
    ok_bad_nightly, start, text_line,
};
use support::{Daemon, Setup};

#[test]
fn the_execution_list_filters_and_pages_newest_first() {
    let setup = ok_bad_nightly();
    setup.flow("by-hand", BY_HAND);
    let d = start(&setup);
    let (ok, bad) = ok_and_bad(&d, 6);
    let list = |q: &str| {
        let r = d.admin("GET", &format!("/v1/executions{q}"), Some(VIEWER), b"");
        assert_eq!(r.status, 200, "{q}: {}", String::from_utf8_lossy(&r.body));
        r.json()
    };
    let all = list("");
    let mut newest_first: Vec<String> = ok.iter().chain(&bad).cloned().collect();
    newest_first.sort();
    newest_first.reverse();
    assert_eq!(ids(&all), newest_first);
    let row = &all["executions"][0];
    for field in [
        "job_id",
        "project",
        "flow",
        "flow_version",
        "trigger_kind",
        "environment",
        "status",
        "attempt",
        "created_at",
        "started_at",
        "finished_at",
        "duration",
        "steps_total",
        "steps_executed",
    ] {
        assert!(!row[field].is_null(), "{field} in {row}");
    }
    assert!(all["next_cursor"].is_null(), "one page holds them all");

    let mut failed = bad.clone();
    failed.reverse();
    assert_eq!(ids(&list("?status=failed")), failed);
    assert_eq!(ids(&list("?status=failed,success")).len(), 9);
    assert_eq!(ids(&list("?flow=bad&status=success")), Vec::<String>::new());
    assert_eq!(ids(&list("?project=other")), failed);
    assert_eq!(ids(&list("?trigger_kind=manual")), Vec::<String>::new());
    assert_eq!(ids(&list(&format!("?job_id={}", ok[2]))), vec![ok[2].clone()]);
    assert_eq!(
        ids(&list(&format!("?job_id={}&status=failed", ok[2]))),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&list("?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z")).len(),
        0
    );
    assert_eq!(ids(&list("?from=2000-01-01T00:00:00Z")).len(), 9);

    // Pages of 4 follow the cursor; executions created meanwhile do not shift them.
    let first = list("?limit=4");
    assert_eq!(ids(&first), newest_first[..4]);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let newer = hook(&d, "/ok", "{\"n\":1}");
    ended(&d, &newer, 1);
    let second = list(&format!("?limit=4&cursor={cursor}"));
    assert_eq!(ids(&second), newest_first[4..8]);
    let third = list(&format!("?limit=4&cursor={}", second["next_cursor"].as_str().unwrap()));
    assert_eq!(ids(&third), newest_first[8..]);
    assert!(third["next_cursor"].is_null());
    assert_eq!(ids(&list("?limit=1")), vec![newer]);
    d.stop();
}

#[test]
fn bad_parameters_get_a_400_naming_them() {
    let setup = ok_bad_nightly();
    setup.flow("by-hand", BY_HAND);
    let d = start(&setup);
    for (query, name, says) in [
        ("?status=done", "status", "\"done\" is not a status"),
        ("?limit=0", "limit", "from 1 to 1000"),
        ("?limit=many", "limit", "from 1 to 1000"),
        ("?from=yesterday", "from", "RFC 3339"),
        ("?cursor=42", "cursor", "not a job id"),
        ("?job_id=", "job_id", "empty"),
        ("?flow=a&flow=b", "flow", "more than once"),
        ("?colour=red", "colour", "unknown; this endpoint accepts: status, flow"),
        ("?trigger_kind=htp", "trigger_kind", "expected http, schedule, manual"),
    ] {
        let r = d.admin("GET", &format!("/v1/executions{query}"), Some(VIEWER), b"");
        assert_bad_parameter(&r, name, says, query);
    }
    // An endpoint that takes none says so, rather than listing nothing.
    let r = d.admin("GET", "/v1/flows?verbose=1", Some(VIEWER), b"");
    assert_bad_parameter(
        &r,
        "verbose",
        "unknown; this endpoint takes no query parameters",
        "/v1/flows",
    );
    d.stop();
}

#[test]
fn detail_flows_activation_and_manual_runs() {
    let setup = ok_bad_nightly();
    setup.flow("by-hand", BY_HAND);
    let d = start(&setup);
    let job = hook(&d, "/bad", "{\"n\":1}");
    ended(&d, &job, 1);
    let r = d.admin("GET", &format!("/v1/executions/{job}"), Some(VIEWER), b"");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["execution"]["status"], "failed");
    assert_eq!(v["trigger"]["body"], json!({"n": 1}));
    assert_eq!(v["steps"][0]["status"], "failed");
    assert_eq!(v["steps"][0]["error"]["code"], "boom");
    assert_eq!(v["steps"][0]["input"]["trigger"]["body"], json!({"n": 1}));
    assert_eq!(v["retry"]["possible"], true);
    assert_eq!(v["retry"]["retries_left"], 2);
    let r = d.admin(
        "GET",
        "/v1/executions/01a208b8-a5df-7131-8f90-72cdc1aff3bb",
        Some(VIEWER),
        b"",
    );
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (404, json!("not_found")));
    assert_eq!(d.admin("GET", "/v1/executions/nope", Some(VIEWER), b"").status, 404);

    let flows = d.admin("GET", "/v1/flows", Some(VIEWER), b"").json();
    let names: Vec<_> = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert_eq!(names, [json!("bad"), json!("by-hand"), json!("nightly"), json!("ok")]);
    assert_eq!(flows["flows"][1]["trigger_kind"], "manual");
    assert_eq!(flows["flows"][1]["active"], true);

    // Deactivated: webhooks get 409, manual runs too, the list says so; and back.
    let r = d.admin("POST", "/v1/flows/ok/deactivate", Some(OPERATOR), b"");
    assert_eq!(r.json(), json!({"name": "ok", "active": false}));
    assert_eq!(d.request("POST", "/ok", &[], b"{}").status, 409);
    let flows = d.admin("GET", "/v1/flows", Some(VIEWER), b"").json();
    assert_eq!(flows["flows"][3]["active"], false);
    assert_eq!(
        d.admin("POST", "/v1/flows/ok/activate", Some(OPERATOR), b"").status,
        200
    );
    assert_eq!(d.request("POST", "/ok", &[], b"{}").status, 202);
    let r = d.admin("POST", "/v1/flows/nosuch/activate", Some(OPERATOR), b"");
    assert_eq!(r.status, 404);

    let r = d.admin("POST", "/v1/flows/by-hand/run", Some(OPERATOR), b"{\"x\": [1, 2]}");
    assert_eq!(r.status, 202);
    let job = r.json()["job_id"].as_str().unwrap().to_string();
    let row = ended(&d, &job, 1);
    assert_eq!(
        (row["status"].as_str(), row["trigger_kind"].as_str()),
        (Some("success"), Some("manual"))
    );
    let detail = d
        .admin("GET", &format!("/v1/executions/{job}"), Some(VIEWER), b"")
        .json();
    assert_eq!(
        detail["steps"][0]["output"]["input"]["trigger"]["body"],
        json!({"x": [1, 2]})
    );
    let r = d.admin("POST", "/v1/flows/by-hand/run", Some(OPERATOR), b"{not json");
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!("bad_body")));
    d.stop();
}

#[test]
fn a_short_token_value_is_refused_when_the_config_loads() {
    let setup = ok_bad_nightly();
    setup.flow("by-hand", BY_HAND);
    let out = support::flowd()
        .arg("validate")
        .arg("--config")
        .arg(setup.config())
        .env("FLOWD_TEST_VIEWER", "short")
        .env("FLOWD_TEST_OPERATOR", OPERATOR)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: server.tokens \"dash\": the value of $FLOWD_TEST_VIEWER is shorter than 16 characters"),
        "{stderr}"
    );
    assert!(stderr.contains("flowd.toml:12:7\n"), "{stderr}");
    assert!(!stderr.contains("short\""), "the value is never printed: {stderr}");
}

#[test]
fn log_search_filters_and_pages_newest_first() {
    let setup = Setup::with_server("", TOKENS);
    setup.flow("noisy", NOISY);
    let d = start(&setup);
    let mut jobs = Vec::new();
    for id in 1..=3 {
        let r = d.request("POST", "/noisy", &[], format!("{{\"id\": {id}}}").as_bytes());
        assert_eq!(r.status, 202);
        let job = r.json()["job_id"].as_str().unwrap().to_string();
        ended(&d, &job, 1);
        jobs.push(job);
    }
    let logs = |q: &str| {
        let r = d.admin("GET", &format!("/v1/logs{q}"), Some(VIEWER), b"");
        assert_eq!(r.status, 200, "{q}: {}", String::from_utf8_lossy(&r.body));
        r.json()
    };
    let messages = log_messages;
    let all = logs("");
    assert_eq!(
        messages(&all),
        [
            "order 3 late",
            "order 3 in",
            "order 2 late",
            "order 2 in",
            "order 1 late",
            "order 1 in"
        ]
    );
    let first = &all["logs"][0];
    for (field, want) in [
        ("level", json!("warn")),
        ("flow", json!("noisy")),
        ("step", json!("s2")),
        ("connector", json!("log")),
        ("category", json!("b")),
        ("environment", json!("test")),
        ("job_id", json!(jobs[2])),
    ] {
        assert_eq!(first[field], want, "{field}");
    }
    let project = first["project"].as_str().unwrap().to_string();
    let version = first["flow_version"].as_str().unwrap().to_string();

    assert_eq!(
        messages(&logs("?level=warn")),
        ["order 3 late", "order 2 late", "order 1 late"]
    );
    assert_eq!(messages(&logs("?level=trace")).len(), 6);
    assert_eq!(
        messages(&logs("?levels=info")),
        ["order 3 in", "order 2 in", "order 1 in"]
    );
    assert_eq!(messages(&logs("?levels=info,warn&category=a")).len(), 3);
    assert_eq!(messages(&logs("?contains=2%20late")), ["order 2 late"]);
    assert_eq!(
        messages(&logs(&format!("?job_id={}", jobs[0]))),
        ["order 1 late", "order 1 in"]
    );
    assert_eq!(messages(&logs("?step=s1&connector=log")).len(), 3);
    assert_eq!(messages(&logs("?action=run")).len(), 6);
    assert_eq!(messages(&logs("?action=accept")).len(), 0);
    assert_eq!(messages(&logs("?flow=other")).len(), 0);
    assert_eq!(messages(&logs("?environment=prod")).len(), 0);
    assert_eq!(
        messages(&logs(&format!("?project={project}&flow_version={version}"))).len(),
        6
    );
    assert_eq!(messages(&logs("?flow_version=nope")).len(), 0);
    assert_eq!(messages(&logs("?preset=1h")).len(), 6);
    assert_eq!(messages(&logs("?preset=last_week")).len(), 0);
    assert_eq!(
        messages(&logs("?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z")).len(),
        0
    );
    // One instant, written in two offsets, is a range: from and to are both inclusive.
    let list = d.admin(
        "GET",
        "/v1/executions?from=2026-01-01T05:30:00%2B05:30&to=2026-01-01T00:00:00Z",
        Some(VIEWER),
        b"",
    );
    assert_eq!(list.status, 200, "{list:?}");

    // Pages follow the cursor; records arriving meanwhile do not shift them.
    let page = logs("?limit=4");
    assert_eq!(messages(&page), messages(&all)[..4]);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let r = d.request("POST", "/noisy", &[], b"{\"id\": 4}");
    ended(&d, r.json()["job_id"].as_str().unwrap(), 1);
    let rest = logs(&format!("?limit=4&cursor={cursor}"));
    assert_eq!(messages(&rest), messages(&all)[4..]);
    assert!(rest["next_cursor"].is_null());
    assert_eq!(messages(&logs("?limit=1")), ["order 4 late"]);

    // Presets apply to the execution list too.
    let list = |q: &str| d.admin("GET", &format!("/v1/executions{q}"), Some(VIEWER), b"");
    assert_eq!(list("?preset=1h").json()["executions"].as_array().unwrap().len(), 4);
    assert_eq!(
        list("?preset=last_week").json()["executions"].as_array().unwrap().len(),
        0
    );

    for (path, name, says) in [
        ("/v1/logs?level=loud", "level", "\"loud\" is not a level"),
        ("/v1/logs?level=info,warn", "level", "one level"),
        ("/v1/logs?cursor=abc", "cursor", "not a log cursor"),
        ("/v1/logs?preset=fortnight", "preset", "expected one of: 5m, 15m"),
        (
            "/v1/executions?preset=1h&from=2026-01-01T00:00:00Z",
            "preset",
            "cannot be combined",
        ),
        ("/v1/logs?status=failed", "status", "unknown"),
        (
            "/v1/executions?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
            "from",
            "\"2030-01-01T00:00:00Z\" is after `to` (\"2020-01-01T00:00:00Z\"); the range holds nothing",
        ),
        (
            "/v1/logs?from=2026-01-01T00:00:01Z&to=2026-01-01T00:00:00Z",
            "from",
            "is after `to`",
        ),
        (
            "/v1/executions/histogram?from=2026-01-01T05:30:01%2B05:30&to=2026-01-01T00:00:00Z",
            "from",
            "is after `to`",
        ),
        (
            "/v1/schedules/executions?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
            "is after `to`",
        ),
    ] {
        let r = d.admin("GET", path, Some(VIEWER), b"");
        assert_bad_parameter(&r, name, says, path);
    }
    d.stop();
}

/// Every record matching `filter` through the search, following its cursor, oldest first.
fn searched(d: &Daemon, filter: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = d.admin(
            "GET",
            &format!("/v1/logs?limit=1000{filter}{cursor}"),
            Some(VIEWER),
            b"",
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        out.extend(v["logs"].as_array().unwrap().iter().cloned());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    out.reverse();
    out
}

#[test]
fn downloads_in_every_format_parse_back_to_the_searched_records() {
    let setup = Setup::with_server("max_log_records = 1500", TOKENS);
    setup.flow(
        "flood",
        "[flow]\nname = \"flood\"\n[trigger.http]\npath = \"/flood\"\n\n[[steps]]\nname = \"many\"\nconnector = \"log-flood\"\nconfig = { count = 1200 }\n\n[[steps]]\nname = \"quote\"\nconnector = \"log\"\nconfig = { level = \"warn\", message = \"say \\\"hi\\\", {{ trigger.body.id }}\" }\n",
    );
    let d = start(&setup);
    let r = d.request("POST", "/flood", &[], b"{\"id\": \"x,1\"}");
    ended(&d, r.json()["job_id"].as_str().unwrap(), 1);
    let expected = searched(&d, "");
    assert_eq!(
        expected.len(),
        1201,
        "1200 flood records and the quoted one, over two pages"
    );
    assert_eq!(expected.last().unwrap()["message"], "say \"hi\", x,1");

    let download = |q: &str| {
        let r = d.admin("GET", &format!("/v1/logs/download?{q}"), Some(VIEWER), b"");
        assert_eq!(r.status, 200, "{q}: {}", String::from_utf8_lossy(&r.body));
        r
    };
    let r = download("format=ndjson");
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"flowd-logs.ndjson\"")
    );
    let lines: Vec<Value> = String::from_utf8(r.body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, expected);

    let r = download("format=csv");
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    let mut reader = csv::Reader::from_reader(&r.body[..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header[..3], ["time", "level", "job_id"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    // A download that ends short says why only in the daemon's log.
    assert_eq!(rows.len(), expected.len(), "{}", d.log.lock().unwrap());
    for (row, want) in rows.iter().zip(&expected) {
        for (i, field) in header.iter().enumerate() {
            let want = match &want[field.as_str()] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(row[i], want, "{field}");
        }
    }

    let r = download("format=text");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let text = String::from_utf8(r.body).unwrap();
    let want: Vec<String> = expected.iter().map(text_line).collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), want);

    // The filters of the search apply to downloads.
    let r = download("format=ndjson&contains=record%2012");
    let filtered = searched(&d, "&contains=record%2012");
    assert_eq!(filtered.len(), 12, "record 12, 120-129 and 1200");
    let lines: Vec<Value> = String::from_utf8(r.body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, filtered);

    let r = d.admin("GET", "/v1/logs/download?format=xml", Some(VIEWER), b"");
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expected ndjson, csv or text")
    );
    let r = d.admin("GET", "/v1/logs/download?cursor=1-2-3", Some(VIEWER), b"");
    assert_eq!(r.status, 400, "downloads take filters, not a cursor");
    d.stop();
}

#[test]
fn follow_mode_delivers_new_records_as_they_are_stored() {
    let setup = ok_bad_nightly();
    setup.flow("by-hand", BY_HAND);
    setup.flow("noisy", NOISY);
    let mut d = start(&setup);
    // A record from before the tail starts is not sent.
    let r = d.request("POST", "/noisy", &[], b"{\"id\": 1}");
    ended(&d, r.json()["job_id"].as_str().unwrap(), 1);

    let mut tail = Follow::open(&d, "flow=noisy&level=warn");
    for id in [2, 3] {
        let r = d.request("POST", "/noisy", &[], format!("{{\"id\": {id}}}").as_bytes());
        assert_eq!(r.status, 202);
        tail.wait_for(&format!("order {id} late"));
    }
    let got: Vec<_> = tail.records().iter().map(|l| l["message"].clone()).collect();
    assert_eq!(got, [json!("order 2 late"), json!("order 3 late")]);

    // Stopping the daemon ends the stream, and the daemon exits cleanly.
    d.signal("TERM");
    tail.wait_end();
    assert_eq!(d.wait(30), Some(0));
}

#[test]
fn many_live_tails_share_one_reader_of_the_store_and_each_keeps_its_filter() {
    let setup = ok_bad_nightly();
    setup.flow("noisy", NOISY);
    let d = start(&setup);
    let gauge = |name: &str| -> u64 {
        let r = d.admin("GET", "/metrics", Some(VIEWER), b"");
        let text = String::from_utf8(r.body).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap()
            .to_string();
        line[name.len() + 1..].parse().unwrap()
    };
    let until = |what: &str, holds: &dyn Fn() -> bool| {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !holds() {
            assert!(std::time::Instant::now() < end, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    assert_eq!(
        (gauge("flowd_live_tail_followers"), gauge("flowd_live_tail_readers")),
        (0, 0)
    );
    let filters = [
        "flow=noisy",
        "flow=noisy&level=warn",
        "category=a",
        "contains=order%207%20",
        "flow=ok",
    ];
    // Each filter followed by four clients: twenty, and one reader of the store for all
    // (it was one each, every one re-reading the last minute five times a second).
    let mut tails: Vec<(&str, Follow)> = filters
        .iter()
        .flat_map(|f| (0..4).map(move |_| *f))
        .map(|f| (f, Follow::open(&d, f)))
        .collect();
    until("twenty followers", &|| gauge("flowd_live_tail_followers") == 20);
    assert_eq!(gauge("flowd_live_tail_readers"), 1);
    let jobs: Vec<String> = (0..10)
        .map(|id| hook(&d, "/noisy", &format!("{{\"id\": {id}}}")))
        .collect();
    for job in &jobs {
        ended(&d, job, 1);
    }
    // What each got is what a search with its filter finds, in the same order.
    let messages =
        |v: &[Value]| -> Vec<String> { v.iter().map(|l| l["message"].as_str().unwrap().to_string()).collect() };
    for (filter, tail) in &mut tails {
        let mut found = get_logs(&d, filter);
        found.reverse();
        let want = messages(&found);
        if let Some(last) = want.last() {
            tail.wait_for(last);
        }
        assert_eq!(messages(&tail.records()), want, "{filter}");
    }
    assert_eq!(get_logs(&d, "contains=order%207%20").len(), 2);
    drop(tails);
    until("the reader stops after the last follower", &|| {
        gauge("flowd_live_tail_followers") == 0 && gauge("flowd_live_tail_readers") == 0
    });
    d.stop();
}

/// A log search's records (newest first).
fn get_logs(d: &Daemon, filter: &str) -> Vec<Value> {
    let r = d.admin("GET", &format!("/v1/logs?{filter}&limit=1000"), Some(VIEWER), b"");
    assert_eq!(r.status, 200);
    r.json()["logs"].as_array().unwrap().clone()
}

#[test]
fn scheduled_tasks_next_fires_enable_disable_and_run_now() {
    let setup = ok_bad_nightly();
    setup.flow("by-hand", BY_HAND);
    setup.flow(
        "ticker",
        "[flow]\nname = \"ticker\"\n[trigger.schedule]\ncron = \"* * * * * *\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    );
    let d = start(&setup);
    let get = |path: &str| {
        let r = d.admin("GET", path, Some(VIEWER), b"");
        assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.body));
        r.json()
    };
    let tasks = |q: &str| {
        get(&format!("/v1/schedules/executions{q}"))["executions"]
            .as_array()
            .unwrap()
            .clone()
    };
    // The per-second ticker fires; its executions are listed with their trigger times.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tasks("?flow=ticker&status=success").len() < 2 {
        assert!(std::time::Instant::now() < end, "the ticker never fired twice");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let row = tasks("?flow=ticker&status=success")[0].clone();
    for field in [
        "job_id",
        "scheduled_at",
        "fired_at",
        "finished_at",
        "duration",
        "environment",
    ] {
        assert!(!row[field].is_null(), "{field}: {row}");
    }
    assert_eq!(row["environment"], "test");
    assert!(tasks("?preset=last_week").is_empty());
    assert!(tasks("?flow=ok").is_empty(), "only executions started by schedules");

    let schedules = get("/v1/schedules?next=3");
    let names: Vec<_> = schedules["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["flow"].clone())
        .collect();
    assert_eq!(names, [json!("nightly"), json!("ticker")]);
    let nightly = &schedules["schedules"][0];
    assert_eq!(
        (nightly["cron"].as_str(), nightly["timezone"].as_str()),
        (Some("0 0 3 * * *"), Some("Asia/Tokyo"))
    );
    let fires: Vec<&str> = nightly["next_fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(fires.len(), 3);
    assert!(
        fires.iter().all(|f| f.ends_with("T18:00:00.000Z")),
        "03:00 in Tokyo: {fires:?}"
    );
    assert!(!schedules["schedules"][1]["last_fire"].is_null());

    // Disabled: no more fires; enabled: they go on.
    let r = d.admin("POST", "/v1/schedules/ticker/disable", Some(OPERATOR), b"");
    assert_eq!(r.json(), json!({"flow": "ticker", "active": false}));
    // A fire already past its active check when the flow was disabled lands meanwhile.
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let before = tasks("?flow=ticker").len();
    std::thread::sleep(std::time::Duration::from_millis(2200));
    assert_eq!(tasks("?flow=ticker").len(), before, "a disabled schedule does not fire");
    assert_eq!(get("/v1/schedules")["schedules"][1]["active"], false);
    assert_eq!(
        d.admin("POST", "/v1/schedules/ticker/enable", Some(OPERATOR), b"")
            .status,
        200
    );
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tasks("?flow=ticker").len() == before {
        assert!(std::time::Instant::now() < end, "the enabled ticker never fired");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // Run now: a schedule execution of the nightly flow, hours before its time.
    let r = d.admin("POST", "/v1/schedules/nightly/run", Some(OPERATOR), b"");
    assert_eq!(r.status, 202);
    let job = r.json()["job_id"].as_str().unwrap().to_string();
    assert_eq!(ended(&d, &job, 1)["trigger_kind"], "schedule");
    assert_eq!(tasks("?flow=nightly")[0]["job_id"], json!(job));
    for (path, status) in [("/v1/schedules/ok/run", 404), ("/v1/schedules/nosuch/disable", 404)] {
        assert_eq!(d.admin("POST", path, Some(OPERATOR), b"").status, status, "{path}");
    }
    d.stop();
}
