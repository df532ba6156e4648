//! `flowd` in client mode against a running daemon: the real binary with `--url` and
//! `FLOWD_TOKEN` asks the real admin API. Executions (list with filters and the cursor
//! hint, show), logs (search, live tail, downloads in every format), scheduled tasks,
//! flows, retries, resumes and reloads; and the exit codes of a refused role, a missing
//! token and an unreachable daemon.

mod support;

use serde_json::{Value, json};
use std::io::BufRead;
use std::process::Stdio;
use support::admin::{NOISY, OPERATOR, TOKENS, VIEWER, ended, hook, ids, ok_and_bad, ok_bad_nightly, start, text_line};
use support::{Daemon, Setup};

/// `flowd ARGS --url <the daemon>` (unless `args` name another) with `token` in
/// FLOWD_TOKEN (none: unset).
fn client(d: &Daemon, token: Option<&str>, args: &[&str]) -> std::process::Command {
    let mut c = support::flowd();
    c.env_remove("FLOWD_TOKEN")
        .env_remove("FLOWD_DATA_DIR")
        .env_remove("FLOWD_URL")
        .args(args);
    if !args.contains(&"--url") {
        c.arg("--url").arg(format!("http://{}", d.admin));
    }
    if let Some(t) = token {
        c.env("FLOWD_TOKEN", t);
    }
    c
}

/// Runs the client with `args`: exit code, stdout, stderr.
fn cli(d: &Daemon, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let out = client(d, token, args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Runs the client as a viewer; it must exit 0; its stdout.
fn ok(d: &Daemon, args: &[&str]) -> String {
    let (code, out, err) = cli(d, Some(VIEWER), args);
    assert_eq!(code, 0, "flowd {args:?}: {err}");
    out
}

fn ok_json(d: &Daemon, args: &[&str]) -> Value {
    let out = ok(d, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("flowd {args:?} printed no JSON ({e}): {out}"))
}

/// The value after `prefix` on the line of `out` that starts with it.
fn after<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{out}"))
        .split_whitespace()
        .next()
        .unwrap()
}

#[test]
fn executions_list_filters_pages_and_shows() {
    let setup = ok_bad_nightly();
    let d = start(&setup);
    let (good, bad) = ok_and_bad(&d, 4);
    let mut newest_first: Vec<String> = good.iter().chain(&bad).cloned().collect();
    newest_first.sort();
    newest_first.reverse();

    let table = ok(&d, &["executions", "list"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("job id "), "{table}");
    let listed: Vec<&str> = lines.map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(listed, newest_first, "{table}");
    assert!(table.contains("failed"), "{table}");
    assert!(!table.contains("more:"), "one page holds them all: {table}");

    let json = ok_json(&d, &["executions", "list", "--json"]);
    assert_eq!(ids(&json), newest_first);
    assert_eq!(json["next_cursor"], Value::Null, "the API's JSON as it came");
    let mut failed = bad.clone();
    failed.reverse();
    assert_eq!(
        ids(&ok_json(&d, &["executions", "list", "--status", "failed", "--json"])),
        failed
    );
    assert_eq!(
        ids(&ok_json(
            &d,
            &["executions", "list", "--status", "failed,success", "--json"]
        ))
        .len(),
        6
    );
    assert_eq!(
        ids(&ok_json(&d, &["executions", "list", "--project", "other", "--json"])),
        failed
    );
    let flow_ok = ok_json(
        &d,
        &["executions", "list", "--flow", "ok", "--status", "success", "--json"],
    );
    assert_eq!(ids(&flow_ok).len(), 4);
    for args in [
        &["--trigger-kind", "manual"][..],
        &["--from", "2000-01-01T00:00:00Z", "--to", "2000-01-02T00:00:00Z"],
        &["--preset", "last_week"],
    ] {
        let v = ok_json(&d, &[&["executions", "list", "--json"][..], args].concat());
        assert_eq!(ids(&v), Vec::<String>::new(), "{args:?}");
    }
    assert_eq!(
        ids(&ok_json(&d, &["executions", "list", "--preset", "1h", "--json"])).len(),
        6
    );

    // Pages: the human list says how to get the next one; following it reaches the end.
    let page = ok(&d, &["executions", "list", "--limit", "4"]);
    let cursor = after(&page, "more: add --cursor ");
    assert_eq!(cursor, newest_first[3]);
    let rest = ok_json(
        &d,
        &["executions", "list", "--limit", "4", "--cursor", cursor, "--json"],
    );
    assert_eq!(ids(&rest), newest_first[4..]);

    // `show` renders the detail as the offline `show` does; --json is the API's detail.
    let job = &bad[0];
    let out = ok(&d, &["executions", "show", job]);
    assert!(
        out.starts_with(&format!("job {job}  flow bad (project other, version ")),
        "{out}"
    );
    assert!(out.contains("  trigger http  payload {"), "{out}");
    assert!(out.contains("manual retry possible (2 left)"), "{out}");
    assert!(out.contains("error: connector: "), "{out}");
    let detail = ok_json(&d, &["executions", "show", job, "--json"]);
    let api = d
        .admin("GET", &format!("/v1/executions/{job}"), Some(VIEWER), b"")
        .json();
    assert_eq!(detail, api);
    assert_eq!(detail["steps"][0]["status"], "failed");

    let (code, _, err) = cli(
        &d,
        Some(VIEWER),
        &["executions", "show", "01a208b8-a5df-7131-8f90-72cdc1aff3bb"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("error: not_found: no execution 01a208b8-a5df-7131-8f90-72cdc1aff3bb (HTTP 404)"),
        "{err}"
    );
    let (code, _, err) = cli(&d, Some(VIEWER), &["executions", "list", "--limit", "5000"]);
    assert_eq!(code, 2, "a page over the API's maximum is refused before asking");
    assert!(err.contains("at most 1000"), "{err}");
    let backwards = ["--from", "2026-02-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z"];
    let says = "error: --from 2026-02-01T00:00:00.000Z is after --to 2026-01-01T00:00:00.000Z; the range holds nothing";
    for command in [
        &["executions", "list"][..],
        &["logs"],
        &["logs", "--download", "x.ndjson"],
        &["schedules", "executions"],
    ] {
        let (code, _, err) = cli(&d, Some(VIEWER), &[command, &backwards[..]].concat());
        assert_eq!((code, err.trim()), (2, says), "{command:?}");
    }
    d.stop();

    // Offline, on the stopped daemon's data, the same filters and renderings.
    let (code, offline, err) = support::data_cli(&setup, &["executions", "list", "--status", "failed,success"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(offline, table);
    let (code, offline, err) = support::data_cli(&setup, &["executions", "show", job]);
    assert_eq!(code, 0, "{err}");
    let without_retry = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.contains("manual retr"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(without_retry(&offline), without_retry(&out));
    let (code, _, err) = support::data_cli(&setup, &["executions", "list", "--preset", "1h"]);
    assert_eq!(code, 2);
    assert!(err.contains("--preset needs the daemon"), "{err}");
    let backwards = ["--from", "2026-02-01T00:00:00+01:00", "--to", "2026-01-01T00:00:00Z"];
    for command in [&["executions", "list"][..], &["logs"]] {
        let (code, _, err) = support::data_cli(&setup, &[command, &backwards[..]].concat());
        assert_eq!(
            (code, err.trim()),
            (
                2,
                "error: --from 2026-01-31T23:00:00.000Z is after --to 2026-01-01T00:00:00.000Z; the range holds nothing"
            ),
            "{command:?}"
        );
    }
}

/// Every record of a search through the client's `--json` pages, oldest first.
fn searched(d: &Daemon, filters: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = vec!["logs", "--json", "--limit", "1000"];
        args.extend_from_slice(filters);
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let v = ok_json(d, &args);
        out.extend(v["logs"].as_array().unwrap().iter().cloned());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    out.reverse();
    out
}

fn messages(lines: &str) -> Vec<String> {
    lines
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(_, m)| m.to_string()))
        .collect()
}

#[test]
fn log_search_and_live_tail() {
    let setup = ok_bad_nightly();
    setup.flow("noisy", NOISY);
    let d = start(&setup);
    let mut jobs = Vec::new();
    for id in 1..=3 {
        let job = hook(&d, "/noisy", &format!("{{\"id\": {id}}}"));
        ended(&d, &job, 1);
        jobs.push(job);
    }
    // The newest page, printed oldest first.
    let out = ok(&d, &["logs", "--flow", "noisy"]);
    assert_eq!(
        messages(&out),
        [
            "order 1 in",
            "order 1 late",
            "order 2 in",
            "order 2 late",
            "order 3 in",
            "order 3 late"
        ],
        "{out}"
    );
    let line = out.lines().last().unwrap();
    assert!(
        line.contains(&format!(" warn  {} noisy/s2 b: order 3 late", jobs[2])),
        "{line}"
    );

    let v = ok_json(&d, &["logs", "--level", "warn", "--json"]);
    let warn: Vec<&str> = v["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        warn,
        ["order 3 late", "order 2 late", "order 1 late"],
        "the API's order"
    );
    assert_eq!(messages(&ok(&d, &["logs", "--contains", "2 late"])), ["order 2 late"]);
    assert_eq!(
        messages(&ok(&d, &["logs", "--job", &jobs[0]])),
        ["order 1 in", "order 1 late"]
    );
    assert_eq!(
        messages(&ok(&d, &["logs", "--levels", "info", "--category", "a"])).len(),
        3
    );
    assert_eq!(
        messages(&ok(&d, &["logs", "--step", "s2", "--connector", "log"])).len(),
        3
    );
    assert_eq!(messages(&ok(&d, &["logs", "--environment", "prod"])).len(), 0);
    assert_eq!(messages(&ok(&d, &["logs", "--preset", "last_week"])).len(), 0);

    // The cursor hint leads to the older records.
    let page = ok(&d, &["logs", "--limit", "4"]);
    assert_eq!(
        messages(&page)[..4],
        ["order 2 in", "order 2 late", "order 3 in", "order 3 late"]
    );
    let cursor = after(&page, "older records: add --cursor ");
    let older = ok(&d, &["logs", "--limit", "4", "--cursor", cursor]);
    assert_eq!(messages(&older), ["order 1 in", "order 1 late"]);
    assert!(!older.contains("older records"), "{older}");

    // The live tail prints a record stored after it started, and nothing from before.
    let mut tail = client(
        &d,
        Some(VIEWER),
        &["logs", "--follow", "--flow", "noisy", "--level", "warn"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut err = std::io::BufReader::new(tail.stderr.take().unwrap());
    let mut said = String::new();
    err.read_line(&mut said).unwrap();
    assert!(said.starts_with("following new log records from http://"), "{said}");
    hook(&d, "/noisy", "{\"id\": 7}");
    let mut out = std::io::BufReader::new(tail.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains(" warn  "), "{line}");
    assert!(line.trim_end().ends_with("noisy/s2 b: order 7 late"), "{line}");
    tail.kill().unwrap();
    tail.wait().unwrap();

    // With --json the tail prints each record as the API sent it; the daemon's stop ends
    // it cleanly.
    let mut tail = client(&d, Some(VIEWER), &["logs", "--follow", "--job", &jobs[0], "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(tail.stderr.take().unwrap());
    said.clear();
    err.read_line(&mut said).unwrap();
    assert!(said.starts_with("following"), "{said}");
    d.stop();
    let out = tail.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "job 1 logged nothing new");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(rest.contains("the daemon ended the live tail"), "{rest}");
}

#[test]
fn downloads_in_every_format_parse_back_to_the_searched_records() {
    let setup = Setup::with_server("max_log_records = 1500", TOKENS);
    setup.flow(
        "flood",
        "[flow]\nname = \"flood\"\n[trigger.http]\npath = \"/flood\"\n\n[[steps]]\nname = \"many\"\nconnector = \"log-flood\"\nconfig = { count = 1200 }\n\n[[steps]]\nname = \"quote\"\nconnector = \"log\"\nconfig = { level = \"warn\", message = \"say \\\"hi\\\", {{ trigger.body.id }}\" }\n",
    );
    let d = start(&setup);
    let job = hook(&d, "/flood", "{\"id\": \"x,1\"}");
    ended(&d, &job, 1);
    let expected = searched(&d, &[]);
    assert_eq!(
        expected.len(),
        1201,
        "1200 flood records and the quoted one, over two pages"
    );

    let download = |format: &str, extra: &[&str]| -> (Vec<u8>, String) {
        let file = setup.path(&format!("logs.{format}"));
        let mut args = vec!["logs", "--download", file.to_str().unwrap(), "--format", format];
        args.extend_from_slice(extra);
        let (code, out, err) = cli(&d, Some(VIEWER), &args);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, "", "a download prints nothing on stdout");
        let body = std::fs::read(&file).unwrap();
        (body, err)
    };

    let (body, err) = download("ndjson", &[]);
    assert_eq!(
        err.trim_end(),
        format!(
            "downloaded 1201 records ({} bytes) to {}",
            body.len(),
            setup.path("logs.ndjson").display()
        )
    );
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, expected);

    let (body, err) = download("csv", &[]);
    assert!(err.starts_with("downloaded 1201 records ("), "{err}");
    let mut reader = csv::Reader::from_reader(&body[..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), expected.len());
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

    let (body, err) = download("text", &[]);
    assert!(err.starts_with("downloaded 1201 records ("), "{err}");
    let want: Vec<String> = expected.iter().map(text_line).collect();
    assert_eq!(String::from_utf8(body).unwrap().lines().collect::<Vec<_>>(), want);

    // The search's filters apply to downloads.
    let (body, err) = download("ndjson", &["--contains", "record 12"]);
    assert!(err.starts_with("downloaded 12 records ("), "{err}");
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, searched(&d, &["--contains", "record 12"]));

    // A refused download leaves no file, complete or partial.
    let refused = setup.path("refused.ndjson");
    let (code, _, err) = cli(
        &d,
        Some(VIEWER),
        &["logs", "--download", refused.to_str().unwrap(), "--contains", ""],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("error: bad_parameter: query parameter `contains`"),
        "{err}"
    );
    assert!(err.contains("(HTTP 400)"), "{err}");
    assert!(!refused.exists());
    let names: Vec<String> = std::fs::read_dir(setup.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".part")), "{names:?}");

    // Piped into a reader that stops early (`| head -1`), the client ends as `cat` does,
    // by SIGPIPE, and says nothing: it panicked on the first print to the closed pipe.
    for args in [&["logs", "--limit", "1000"][..], &["logs", "--limit", "1000", "--json"]] {
        let mut child = client(&d, Some(VIEWER), args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty(), "{args:?}");
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(13),
            "{args:?}: {:?}, {err}",
            out.status
        );
        assert_eq!(err, "", "{args:?}");
    }
    d.stop();
}

#[test]
fn schedules_list_enable_disable_and_run() {
    let setup = ok_bad_nightly();
    let d = start(&setup);
    let out = ok(&d, &["schedules", "list"]);
    assert!(
        out.starts_with("nightly  enabled  cron \"0 0 3 * * *\" (Asia/Tokyo)  last fire -\n"),
        "{out}"
    );
    let fires: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("  next ")).collect();
    assert_eq!(fires.len(), 5, "{out}");
    assert!(
        fires.iter().all(|f| f.ends_with("T18:00:00.000Z")),
        "03:00 in Tokyo: {out}"
    );
    let v = ok_json(&d, &["schedules", "list", "--next", "2", "--json"]);
    assert_eq!(v["schedules"][0]["next_fires"].as_array().unwrap().len(), 2);

    let (code, out, err) = cli(&d, Some(OPERATOR), &["schedules", "disable", "nightly"]);
    assert_eq!((code, out.as_str()), (0, "schedule of nightly is disabled\n"), "{err}");
    assert!(ok(&d, &["schedules", "list"]).starts_with("nightly  disabled  "));
    let (code, out, err) = cli(&d, Some(OPERATOR), &["schedules", "enable", "nightly", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"flow": "nightly", "active": true})
    );

    let (code, out, err) = cli(&d, Some(OPERATOR), &["schedules", "run", "nightly"]);
    assert_eq!(code, 0, "{err}");
    let job = after(&out, "schedule of nightly fired: job ").to_string();
    ended(&d, &job, 1);
    let v = ok_json(&d, &["schedules", "executions", "--flow", "nightly", "--json"]);
    assert_eq!(ids(&v), [job.as_str()]);
    assert!(v["executions"][0]["scheduled_at"].is_string());
    let table = ok(&d, &["schedules", "executions", "--status", "success"]);
    assert!(
        table.lines().nth(1).unwrap().starts_with(&format!("{job}  nightly ")),
        "{table}"
    );
    assert_eq!(
        ok(&d, &["schedules", "executions", "--preset", "last_week"])
            .lines()
            .count(),
        1
    );

    let (code, _, err) = cli(&d, Some(OPERATOR), &["schedules", "run", "ok"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("error: not_found: flow \"ok\" has no schedule trigger (HTTP 404)"),
        "{err}"
    );
    d.stop();
}

#[test]
fn flows_list_activation_roles_tokens_and_unreachable_daemons() {
    let setup = ok_bad_nightly();
    let d = start(&setup);
    let out = ok(&d, &["flows", "list"]);
    let rows: Vec<Vec<&str>> = out.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert_eq!(rows[0][..5], ["bad", "other", "http", "active", "1"], "{out}");
    assert_eq!(rows[1][..4], ["nightly", "default", "schedule", "active"], "{out}");
    let v = ok_json(&d, &["flows", "list", "--json"]);
    assert_eq!(v["flows"][2]["name"], "ok");

    let (code, out, err) = cli(&d, Some(OPERATOR), &["flows", "deactivate", "ok"]);
    assert_eq!((code, out.as_str()), (0, "flow ok is inactive\n"), "{err}");
    assert_eq!(d.request("POST", "/ok", &[], b"{}").status, 409);
    assert_eq!(ok_json(&d, &["flows", "list", "--json"])["flows"][2]["active"], false);
    let (code, out, err) = cli(&d, Some(OPERATOR), &["flows", "activate", "ok"]);
    assert_eq!((code, out.as_str()), (0, "flow ok is active\n"), "{err}");
    assert_eq!(d.request("POST", "/ok", &[], b"{}").status, 202);

    // A viewer may read but not change: exit 1 with the API's 403.
    let (code, _, err) = cli(&d, Some(VIEWER), &["flows", "deactivate", "ok"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim_end(),
        "error: forbidden: this token has the viewer role; changing anything needs an operator token (HTTP 403)"
    );
    let (code, _, err) = cli(&d, Some("not-a-configured-token"), &["flows", "list"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("error: unauthorized: ") && err.contains("(HTTP 401)"),
        "{err}"
    );
    assert!(
        !err.contains("not-a-configured-token"),
        "the token is never printed: {err}"
    );
    let (code, _, err) = cli(&d, Some(OPERATOR), &["flows", "activate", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("(HTTP 404)"), "{err}");

    // No token: a bad invocation naming the variable, before anything is asked.
    for args in [
        &["flows", "list"][..],
        &["executions", "list"],
        &["logs"],
        &["schedules", "list"],
    ] {
        let (code, _, err) = cli(&d, None, args);
        assert_eq!(code, 2, "{args:?}");
        assert!(err.contains("FLOWD_TOKEN"), "{args:?}: {err}");
    }

    // No daemon at the URL: exit 2 naming it and the OS error.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let (code, _, err) = cli(&d, Some(VIEWER), &["executions", "list", "--url", &url]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("error: cannot reach the flowd daemon at {url}: ")),
        "{err}"
    );
    assert!(err.contains("os error"), "{err}");
    let (code, _, err) = cli(&d, Some(VIEWER), &["flows", "list", "--url", "https://127.0.0.1:8081"]);
    assert_eq!(code, 2);
    assert!(err.contains("https is not supported"), "{err}");
    d.stop();
}

#[test]
fn retries_wait_for_the_new_attempt_and_refusals_exit_3() {
    let setup = ok_bad_nightly();
    let d = start(&setup);
    let bad = hook(&d, "/bad", "{\"n\": 1}");
    ended(&d, &bad, 1);
    let (code, out, err) = cli(&d, Some(OPERATOR), &["executions", "retry", &bad, "--wait"]);
    assert_eq!(code, 1, "the retry failed again: {out}{err}");
    assert!(out.starts_with(&format!("retry accepted: attempt 2 of {bad}")), "{out}");
    assert!(
        out.contains(&format!("attempt 2 of {bad}: failed (1 of 1 steps executed")),
        "{out}"
    );
    assert_eq!(ended(&d, &bad, 2)["status"], "failed");

    let (code, out, err) = cli(&d, Some(OPERATOR), &["executions", "retry", &bad, "--from-start"]);
    assert_eq!(
        (code, out.trim_end()),
        (0, format!("retry accepted: attempt 3 of {bad}").as_str()),
        "{err}"
    );
    ended(&d, &bad, 3);
    let (code, _, err) = cli(&d, Some(OPERATOR), &["executions", "retry", &bad]);
    assert_eq!(code, 3);
    assert!(err.starts_with("error: retry refused (retry_limit): "), "{err}");

    let good = hook(&d, "/ok", "{}");
    ended(&d, &good, 1);
    let (code, _, err) = cli(&d, Some(OPERATOR), &["executions", "retry", &good]);
    assert_eq!(code, 3);
    assert!(err.starts_with("error: retry refused (not_retryable): "), "{err}");
    let (code, _, err) = cli(&d, Some(VIEWER), &["executions", "retry", &good]);
    assert_eq!(code, 1, "a viewer's retry is forbidden, not refused");
    assert!(err.contains("(HTTP 403)"), "{err}");
    d.stop();
}

#[test]
fn resumes_and_their_refusals() {
    let setup = ok_bad_nightly();
    setup.flow(
        "held",
        "[flow]\nname = \"held\"\n[trigger.http]\npath = \"/held\"\n[[steps]]\nname = \"hold\"\npause = \"until_resumed\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    );
    let d = start(&setup);
    let job = hook(&d, "/held", "{}");
    for _ in 0..1000 {
        let v = ok_json(&d, &["executions", "list", "--flow", "held", "--json"]);
        if v["executions"][0]["status"] == "paused" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (code, out, err) = cli(&d, Some(OPERATOR), &["executions", "resume", &job]);
    assert_eq!(
        (code, out.trim_end()),
        (0, format!("resume accepted: {job}").as_str()),
        "{err}"
    );
    assert_eq!(ended(&d, &job, 1)["status"], "success");
    let (code, _, err) = cli(&d, Some(OPERATOR), &["executions", "resume", &job]);
    assert_eq!(code, 3);
    assert!(err.starts_with("error: resume refused (not_paused): "), "{err}");
    d.stop();
}

#[test]
fn reloads_print_every_config_error() {
    let setup = ok_bad_nightly();
    let d = start(&setup);
    setup.flow("broken", "[flow]\nname = \"broken\"\nbogus = 1\n[trigger.manual]\n");
    let (code, _, err) = cli(&d, Some(OPERATOR), &["flows", "reload"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error: "), "{err}");
    assert!(err.contains("broken.toml:3:"), "each error with its location: {err}");
    assert_eq!(
        ok_json(&d, &["flows", "list", "--json"])["flows"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    std::fs::remove_file(setup.path("flows/broken.toml")).unwrap();
    setup.flow(
        "more",
        "[flow]\nname = \"more\"\n[trigger.manual]\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
    );
    let (code, out, err) = cli(&d, Some(OPERATOR), &["flows", "reload"]);
    assert_eq!((code, out.as_str()), (0, "reloaded: 4 flows\n"), "{err}");
    assert_eq!(
        ok_json(&d, &["flows", "list", "--json"])["flows"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    d.stop();
}

#[test]
fn an_offline_command_on_a_data_directory_a_daemon_holds_says_who_holds_it() {
    let setup = Setup::embedded("", TOKENS);
    let d = start(&setup);
    for args in [
        &["executions", "list"][..],
        &["logs"],
        &["executions", "show", "01a25189-4f7b-74c5-b2fd-6561ed2ad7b4"],
    ] {
        let out = support::flowd()
            .args(args)
            .arg("--data-dir")
            .arg(setup.path("data"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("it is in use: a running `flowd serve` or an offline command has it open"),
            "{args:?}: {err}"
        );
    }
    // The daemon did not notice.
    assert_eq!(d.admin("GET", "/healthz", None, b"").status, 200);
    d.stop();
}

#[test]
fn a_csv_download_keeps_spreadsheets_from_running_what_senders_wrote() {
    let setup = Setup::with_server("", TOKENS);
    setup.flow(
        "say",
        "[flow]\nname = \"say\"\n[trigger.http]\npath = \"/say\"\n\n[[steps]]\nname = \"say\"\nconnector = \"log\"\nconfig = { message = \"{{ trigger.body.m }}\" }\n",
    );
    let d = start(&setup);
    // Each starts a formula in a spreadsheet but the last three.
    let said = [
        "=HYPERLINK(\"http://example.com\",\"open\")",
        "+1+2",
        "-2+3",
        "@SUM(A1)",
        "\tcmd",
        "\r=1",
        "a = b",
        "'quoted",
        "",
    ];
    for m in said {
        let job = hook(&d, "/say", &json!({ "m": m }).to_string());
        ended(&d, &job, 1);
    }
    let get = |format: &str| {
        let r = d.admin(
            "GET",
            &format!("/v1/logs/download?format={format}&flow=say&step=say"),
            Some(VIEWER),
            b"",
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.body
    };
    let exact: Vec<String> = String::from_utf8(get("ndjson"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(exact, said, "NDJSON keeps each message exactly");
    let csv = get("csv");
    let mut reader = csv::Reader::from_reader(&csv[..]);
    let at = reader.headers().unwrap().iter().position(|h| h == "message").unwrap();
    let cells: Vec<String> = reader.records().map(|r| r.unwrap()[at].to_string()).collect();
    let guarded: Vec<String> = said
        .iter()
        .enumerate()
        .map(|(i, m)| if i < 6 { format!("'{m}") } else { m.to_string() })
        .collect();
    assert_eq!(cells, guarded);
    d.stop();
}

#[test]
fn a_listener_that_never_answers_is_reported_after_the_timeout() {
    // One listener takes requests and never answers; the other sends an answer's head and
    // then nothing of its body. Each connection is kept open until the test ends.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stalling = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let urls = [silent.local_addr().unwrap(), stalling.local_addr().unwrap()].map(|a| format!("http://{a}"));
    for (listener, head) in [
        (silent, &b""[..]),
        (stalling, b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"),
    ] {
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for mut s in listener.incoming().map_while(Result::ok) {
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut s, &mut buf);
                let _ = std::io::Write::write_all(&mut s, head);
                held.push(s);
            }
        });
    }
    let run = |args: &[&str]| {
        let mut child = support::flowd()
            .env("FLOWD_TOKEN", "t")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // It used to wait without end: a guard, not a measurement.
        let end = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > end {
                let _ = child.kill();
                panic!("{args:?} still waits");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    for url in &urls {
        for (args, path) in [
            (&["executions", "list"][..], "/v1/executions"),
            (&["flows", "list"], "/v1/flows"),
            (&["flows", "reload"], "/v1/reload"),
            (&["logs", "--follow"], "/v1/logs/follow"),
        ] {
            if url == &urls[1] && path == "/v1/logs/follow" {
                continue; // a stream's body takes as long as it takes
            }
            let mut all = args.to_vec();
            all.extend(["--url", url, "--timeout", "1s"]);
            let (code, err) = run(&all);
            assert_eq!(code, 1, "{all:?}: {err}");
            assert!(
                err.contains(&format!("error: the daemon at {url} did not answer {path} within 1s")),
                "{all:?}: {err}"
            );
        }
    }
    let (code, err) = run(&["executions", "list", "--url", &urls[0], "--timeout", "0s"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("out of range: from 100ms to 1d"), "{err}");
}

#[test]
fn a_download_or_tail_answered_by_something_else_keeps_nothing_of_it() {
    // A server that is not flowd (here: a web page for every request).
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", web.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in web.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let page = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 15\r\nconnection: close\r\n\r\n<html>hi</html>";
            let _ = std::io::Write::write_all(&mut s, page);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    for (format, media) in [
        ("ndjson", "application/x-ndjson"),
        ("csv", "text/csv"),
        ("text", "text/plain"),
    ] {
        let file = dir.path().join(format!("logs.{format}"));
        let out = support::flowd()
            .env("FLOWD_TOKEN", "t")
            .args(["logs", "--url", &url, "--download"])
            .arg(&file)
            .args(["--format", format])
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("answered /v1/logs/download with text/html, not {media}")),
            "{err}"
        );
        assert!(!file.exists(), "{format}: nothing of the page is kept");
    }
    let out = support::flowd()
        .env("FLOWD_TOKEN", "t")
        .args(["logs", "--follow", "--url", &url])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("answered /v1/logs/follow with text/html, not application/x-ndjson"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no partial file left"
    );
}
