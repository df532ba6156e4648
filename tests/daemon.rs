//! `flowd serve` over real sockets on 127.0.0.1: async and held-open webhooks, HMAC
//! signatures, body limits, unknown paths and methods, trigger connectors that drop
//! events, and SIGTERM with work in flight, finished after a restart.

mod support;

use serde_json::{Value, json};
use support::{Daemon, Setup, data_cli, list_executions};

#[test]
fn async_and_held_open_webhooks() {
    let setup = Setup::with_server("", "respond_timeout = \"2s\"");
    setup.flow(
        "async",
        "[flow]\nname = \"async\"\n[trigger.http]\npath = \"/hooks/async\"\n[[steps]]\nname = \"a\"\nconnector = \"echo\"\nconfig = { id = \"{{ trigger.body.id }}\" }\n",
    );
    setup.flow(
        "sync",
        r#"[flow]
name = "sync"
[trigger.http]
path = "/hooks/sync"
[[steps]]
name = "shape"
connector = "transform"
config = { from = "trigger.body", fields = { total = "sum(items)" } }
[[steps]]
name = "reply"
respond = { status = 201, headers = { "x-total" = "{{ steps.shape.total }}" }, body = { total = "{{ steps.shape.total }}" } }
"#,
    );
    setup.flow(
        "slow",
        "[flow]\nname = \"slow\"\n[trigger.http]\npath = \"/hooks/slow\"\nrespond_timeout = \"100ms\"\n[[steps]]\nname = \"nap\"\nconnector = \"sleeper\"\nconfig = { ms = 400 }\n[[steps]]\nname = \"reply\"\nrespond = { status = 200 }\n",
    );
    let mut d = Daemon::start(&setup);

    let r = d.request(
        "POST",
        "/hooks/async?x=1",
        &[("content-type", "application/json")],
        br#"{"id": 42}"#,
    );
    assert_eq!(r.status, 202, "{r:?}");
    let job = r.json()["job_id"].as_str().unwrap().to_string();

    let r = d.request(
        "POST",
        "/hooks/sync",
        &[("content-type", "application/json")],
        br#"{"items": [1, 2, 3.5]}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json(), json!({"total": 6.5}));
    assert_eq!(r.header("x-total"), Some("6.5"));
    let sync_job = r.header("x-flowd-job-id").unwrap().to_string();

    let r = d.request("POST", "/hooks/slow", &[], b"");
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "respond_timeout");
    let slow_job = r.json()["job_id"].as_str().unwrap().to_string();

    // The slow execution goes on after its caller gave up; SIGTERM lets it finish.
    std::thread::sleep(std::time::Duration::from_millis(500));
    d.signal("TERM");
    assert_eq!(d.wait(10), Some(0), "{}", d.log.lock().unwrap());

    let all = list_executions(&setup, None);
    let find = |j: &str| {
        all.iter()
            .find(|e| e["job_id"] == j)
            .unwrap_or_else(|| panic!("{j} not stored"))
            .clone()
    };
    assert_eq!(find(&job)["status"], "success");
    assert_eq!(find(&sync_job)["status"], "success");
    assert_eq!(find(&slow_job)["status"], "success");
    let (_, out, _) = data_cli(&setup, &["executions", "show", &job, "--json"]);
    let detail: Value = serde_json::from_str(&out).unwrap();
    let trigger = &detail["trigger"];
    assert_eq!(trigger["method"], "POST");
    assert_eq!(trigger["path"], "/hooks/async");
    assert_eq!(trigger["query"], json!({"x": "1"}));
    assert_eq!(trigger["body"], json!({"id": 42}));
    assert_eq!(trigger["headers"]["content-type"], "application/json");
}

/// A respond header a placeholder fills from the request: a value with a line break in it
/// would end the header and start one the sender chose, so the step fails and nothing of
/// the response is sent (502, with the job id); the step's error names the header.
#[test]
fn a_respond_header_filled_with_a_line_break_fails_the_step_and_sends_nothing() {
    let setup = Setup::with_server("", support::admin::TOKENS);
    setup.flow(
        "mirror",
        r#"[flow]
name = "mirror"
[trigger.http]
path = "/mirror"
[[steps]]
name = "reply"
respond = { status = 200, headers = { "x-echo" = "{{ trigger.body.h }}" }, body = "done" }
"#,
    );
    let d = support::admin::start(&setup);
    let send = |h: &str| {
        let body = serde_json::to_vec(&json!({ "h": h })).unwrap();
        d.request("POST", "/mirror", &[("content-type", "application/json")], &body)
    };
    let r = send("plain\tand a tab");
    assert_eq!((r.status, r.header("x-echo")), (200, Some("plain\tand a tab")), "{r:?}");
    for (h, what) in [
        ("a\r\nset-cookie: session=evil", "a carriage return (CR) at character 2"),
        ("line\nfeed", "a line feed (LF) at character 5"),
        ("nul\u{0}", "a NUL byte at character 4"),
        ("bell\u{7}", "the control character U+0007 at character 5"),
    ] {
        let r = send(h);
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (502, Some("no_response")),
            "{h:?}: {r:?}"
        );
        assert!(
            r.header("set-cookie").is_none() && r.header("x-echo").is_none(),
            "{r:?}"
        );
        let job = r.json()["job_id"].as_str().unwrap().to_string();
        let detail = support::admin::get(&d, &format!("/v1/executions/{job}"));
        assert_eq!(detail["execution"]["status"], "failed");
        assert_eq!(
            detail["steps"][0]["error"],
            json!({
                "kind": "template",
                "message": format!("header `x-echo`: its value holds {what}, which a header cannot carry; nothing was sent"),
                "retryable": false
            }),
            "{h:?}"
        );
    }
    d.stop();
}

/// A connector's output travels as the text it gave: the next step's input carries it,
/// a respond step whose body is that whole output sends it byte for byte, and what is
/// stored and shown is its value.
#[test]
fn a_connectors_output_text_is_passed_on_and_answered_as_it_gave_it() {
    let setup = Setup::with_server("", "");
    setup.flow(
        "raw",
        r#"[flow]
name = "raw"
[trigger.http]
path = "/hooks/raw"
[[steps]]
name = "a"
connector = "echo"
config = { raw = '{ "n" : 1e2, "s": "caf\u00e9", "k": 1, "k": 2 }' }
[[steps]]
name = "b"
connector = "echo"
config = {}
[[steps]]
name = "reply"
respond = { status = 200, body = "{{ steps.a }}" }
"#,
    );
    let d = Daemon::start(&setup);
    let r = d.request("POST", "/hooks/raw", &[], b"{}");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        r#"{ "n" : 1e2, "s": "caf\u00e9", "k": 1, "k": 2 }"#
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let job = r.header("x-flowd-job-id").unwrap().to_string();
    let detail = d
        .admin("GET", &format!("/v1/executions/{job}"), Some(&d.viewer_token()), b"")
        .json();
    let value = json!({ "n": 100.0, "s": "café", "k": 2 });
    assert_eq!(detail["steps"][0]["output"], value, "{detail:#}");
    assert_eq!(detail["steps"][1]["output"]["input"]["steps"]["a"], value, "{detail:#}");
    assert_eq!(detail["steps"][2]["output"]["body"], value, "{detail:#}");
}

#[test]
fn a_last_respond_step_answers_only_once_the_whole_execution_is_durable() {
    let setup = Setup::with_server("", "");
    setup.flow(
        "sync",
        "[flow]\nname = \"sync\"\n[trigger.http]\npath = \"/hooks/sync\"\n[[steps]]\nname = \"a\"\nconnector = \"echo\"\nconfig = {}\n[[steps]]\nname = \"reply\"\nrespond = { status = 200, body = \"ok\" }\n",
    );
    let d = Daemon::start(&setup);
    let jobs: Vec<String> = (0..20)
        .map(|_| {
            let r = d.request("POST", "/hooks/sync", &[], b"{}");
            assert_eq!(r.status, 200, "{r:?}");
            r.header("x-flowd-job-id").unwrap().to_string()
        })
        .collect();
    // Killed the moment the last caller has its answer: nothing is left to recover.
    drop(d);
    let all = list_executions(&setup, None);
    for job in &jobs {
        let e = all.iter().find(|e| e["job_id"] == job.as_str()).expect("stored");
        assert_eq!(e["status"], "success", "{e:#}");
        assert!(e["finished_at"].is_string(), "{e:#}");
    }
}

#[test]
fn bad_requests_get_clear_errors_and_record_nothing() {
    let setup = Setup::with_server("", "max_body = \"1KiB\"");
    setup.flow(
        "signed",
        "[flow]\nname = \"signed\"\n[trigger.http]\npath = \"/signed\"\nsignature = { header = \"X-Signature\", secret_env = \"FLOWD_TEST_SECRET\" }\n[[steps]]\nname = \"a\"\nconnector = \"echo\"\n",
    );
    setup.flow(
        "filtered",
        "[flow]\nname = \"filtered\"\n[trigger.http]\npath = \"/filtered\"\n[trigger]\nconnector = \"reshape\"\nconfig = { filter = \"body.keep\" }\n[[steps]]\nname = \"a\"\nconnector = \"echo\"\n",
    );
    let mut d = Daemon::start_with_env(&setup, &[("FLOWD_TEST_SECRET", "s3cret")]);

    let body = br#"{"order": 1}"#;
    let sign = |secret: &[u8]| {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let good = sign(b"s3cret");
    assert_eq!(
        d.request("POST", "/signed", &[("x-signature", &good)], body).status,
        202
    );
    let r = d.request("POST", "/signed", &[("x-signature", &sign(b"wrong"))], body);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("HMAC-SHA256 header=\"x-signature\""));
    assert_eq!(
        r.json()["error"],
        json!({"code": "bad_signature", "message": "the x-signature signature does not match the body"})
    );
    let r = d.request("POST", "/signed", &[], body);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["message"], "the x-signature header is missing");
    // The signature covers the body: a changed body fails.
    assert_eq!(
        d.request("POST", "/signed", &[("x-signature", &good)], br#"{"order": 2}"#)
            .status,
        401
    );

    let r = d.request("POST", "/signed", &[("x-signature", &good)], &vec![b'x'; 2048]);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "body_too_large");

    let r = d.request("POST", "/nowhere", &[], b"{}");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["error"],
        json!({"code": "not_found", "message": "no flow listens on /nowhere"})
    );
    let r = d.request("GET", "/signed", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));

    let r = d.request("POST", "/filtered", &[], br#"{"keep": false}"#);
    assert_eq!(r.status, 200, "a dropped event");
    assert_eq!(r.json()["dropped"], true);
    assert_eq!(d.request("POST", "/filtered", &[], br#"{"keep": true}"#).status, 202);

    d.signal("TERM");
    assert_eq!(d.wait(10), Some(0));
    let all = list_executions(&setup, None);
    assert_eq!(
        all.len(),
        2,
        "only the signed and the kept event became executions: {all:#?}"
    );
}

#[test]
fn sigterm_lets_running_work_finish_and_a_restart_completes_the_rest() {
    // One worker, so the later executions are still pending when the signal comes.
    let setup = Setup::with_server("", "workers = 1\nshutdown_grace = \"150ms\"");
    setup.flow(
        "work",
        "[flow]\nname = \"work\"\n[trigger.http]\npath = \"/work\"\n[[steps]]\nname = \"one\"\nconnector = \"sleeper\"\nconfig = { ms = 100 }\n[[steps]]\nname = \"two\"\nconnector = \"sleeper\"\nconfig = { ms = 100 }\n",
    );
    let mut d = Daemon::start(&setup);
    let jobs: Vec<String> = (0..4)
        .map(|_| {
            let r = d.request("POST", "/work", &[], b"{}");
            assert_eq!(r.status, 202);
            r.json()["job_id"].as_str().unwrap().to_string()
        })
        .collect();
    d.signal("TERM");
    assert_eq!(d.wait(10), Some(0), "{}", d.log.lock().unwrap());
    let unfinished = list_executions(&setup, None)
        .iter()
        .filter(|e| e["status"] != "success")
        .count();
    assert!(unfinished > 0, "the grace period is shorter than the work");

    // Restarted with room for all of them and a long grace period: recovery starts every
    // unfinished execution before the listener is up, so shutdown waits for them all.
    let config = std::fs::read_to_string(setup.config()).unwrap();
    let config = config.replace(
        "workers = 1\nshutdown_grace = \"150ms\"",
        "workers = 8\nshutdown_grace = \"20s\"",
    );
    std::fs::write(setup.config(), config).unwrap();
    let mut d = Daemon::start(&setup);
    d.signal("TERM");
    assert_eq!(d.wait(30), Some(0), "{}", d.log.lock().unwrap());
    let all = list_executions(&setup, None);
    for j in &jobs {
        let e = all.iter().find(|e| e["job_id"] == j.as_str()).unwrap();
        assert_eq!(e["status"], "success", "{e:#}");
    }
}

#[test]
fn a_success_is_logged_at_debug_and_every_other_end_at_info() {
    // An end as a text line (`... execution finished job=… flow=fine status=success`)
    // or as a JSON one (`{"level":"DEBUG","fields":{"message":…,"flow":…}}`).
    let ended = |l: &str, flow: &str, status: &str| match serde_json::from_str::<Value>(l) {
        Ok(v) => {
            let f = &v["fields"];
            f["message"] == "execution finished" && f["flow"] == flow && f["status"] == status
        }
        Err(_) => {
            l.contains("execution finished")
                && l.contains(&format!("flow={flow} "))
                && l.contains(&format!("status={status}"))
        }
    };
    for (server, successes_logged) in [
        ("", false),
        ("log_level = \"debug\"", true),
        ("log_level = \"debug\"\nlog_format = \"json\"", true),
        ("log_format = \"json\"", false),
    ] {
        let setup = Setup::with_server("", server);
        for (name, connector) in [("fine", "echo"), ("broken", "fail")] {
            setup.flow(
                name,
                &format!("[flow]\nname = \"{name}\"\n[trigger.http]\npath = \"/{name}\"\n[[steps]]\nname = \"s\"\nconnector = \"{connector}\"\n"),
            );
        }
        let mut d = Daemon::start(&setup);
        for name in ["fine", "broken"] {
            let r = support::http_request(d.addr, "POST", &format!("/{name}"), &[], b"{}");
            assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
            d.wait_ended(name, 1, 60);
        }
        d.wait_log_line("the failed execution's end", 30, |l| ended(l, "broken", "failed"));
        // Stopped, and its last line read: everything before it was.
        d.signal("TERM");
        d.wait_log_line("the shutdown's last line", 30, |l| {
            l.contains("every running execution finished")
        });
        assert_eq!(d.wait(30), Some(0));
        let log = d.log.lock().unwrap();
        assert_eq!(
            log.lines().any(|l| ended(l, "fine", "success")),
            successes_logged,
            "[server] {server:?}:\n{log}"
        );
    }
}
