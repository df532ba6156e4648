//! The running logs as operators read them, against the real daemon: every way an
//! execution fails (a step's final failure after its tries, a step's timeout, the flow's
//! timeout, a rejection in the throttle queue) leaves an `error` record a `level=error`
//! search finds, a retried try a `warn` one, and a try followed by a success no error;
//! and a message carrying line breaks and terminal escapes stays one line in the `text`
//! download and in `flowd logs`.

mod support;

use serde_json::Value;
use support::admin::{TOKENS, VIEWER, ended, get, hook, start};
use support::{Daemon, Setup};

fn http_flow(name: &str, head: &str, steps: &str) -> String {
    format!("[flow]\nname = \"{name}\"\n{head}\n[trigger.http]\npath = \"/{name}\"\n{steps}")
}

/// The records of `job`, oldest first.
fn records(d: &Daemon, job: &str) -> Vec<Value> {
    let mut v = get(d, &format!("/v1/logs?job_id={job}"))["logs"]
        .as_array()
        .unwrap()
        .clone();
    v.reverse();
    v
}

#[test]
fn failures_timeouts_and_rejections_are_error_records_and_retried_tries_warn() {
    let setup = Setup::with_server("", TOKENS);
    let step = |connector: &str, config: &str, extra: &str| {
        format!("[[steps]]\nname = \"s\"\nconnector = \"{connector}\"\nconfig = {config}\n{extra}\n")
    };
    setup.flow(
        "broken",
        &http_flow("broken", "", &step("fail", "{ message = \"no stock\" }", "")),
    );
    setup.flow(
        "retried",
        &http_flow(
            "retried",
            "",
            &step(
                "flaky",
                "{ key = \"retried\", fail_times = 1 }",
                "retry = { attempts = 3, backoff = \"10ms\" }",
            ),
        ),
    );
    setup.flow(
        "exhausted",
        &http_flow(
            "exhausted",
            "",
            &step(
                "flaky",
                "{ key = \"exhausted\", fail_times = 9 }",
                "retry = { attempts = 2, backoff = \"10ms\" }",
            ),
        ),
    );
    setup.flow(
        "slowstep",
        &http_flow("slowstep", "", &step("sleeper", "{ ms = 5000 }", "timeout = \"100ms\"")),
    );
    setup.flow(
        "overtime",
        &http_flow("overtime", "timeout = \"200ms\"", &step("sleeper", "{ ms = 5000 }", "")),
    );
    setup.flow(
        "queued",
        &http_flow(
            "queued",
            "throttle = { max_concurrency = 1, max_wait = \"100ms\" }",
            &step("sleeper", "{ ms = 600 }", ""),
        ),
    );
    let d = start(&setup);

    let broken = hook(&d, "/broken", "{}");
    let retried = hook(&d, "/retried", "{}");
    let exhausted = hook(&d, "/exhausted", "{}");
    let slowstep = hook(&d, "/slowstep", "{}");
    let overtime = hook(&d, "/overtime", "{}");
    let first = hook(&d, "/queued", "{}");
    let waited = hook(&d, "/queued", "{}");
    for (job, status) in [
        (&broken, "failed"),
        (&retried, "success"),
        (&exhausted, "failed"),
        (&slowstep, "failed"),
        (&overtime, "rejected"),
        (&first, "success"),
        (&waited, "rejected"),
    ] {
        assert_eq!(ended(&d, job, 1)["status"], status, "{job}");
    }

    // One search by level finds every failing run, each with what happened.
    let errors = get(&d, "/v1/logs?level=error&limit=1000")["logs"]
        .as_array()
        .unwrap()
        .clone();
    let error_of = |job: &str| -> Vec<(String, String, String)> {
        errors
            .iter()
            .filter(|l| l["job_id"] == job)
            .map(|l| {
                (
                    l["category"].as_str().unwrap().to_string(),
                    l["step"].as_str().unwrap_or("-").to_string(),
                    l["message"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let one = |job: &str, category: &str, step: &str, message: &str| {
        let found = error_of(job);
        assert_eq!(found.len(), 1, "{job}: {found:?}\n{errors:#?}");
        assert_eq!(
            (found[0].0.as_str(), found[0].1.as_str()),
            (category, step),
            "{found:?}"
        );
        assert!(
            found[0].2.starts_with(message),
            "{:?} starts with {message:?}",
            found[0].2
        );
    };
    one(
        &broken,
        "step_failed",
        "s",
        "step \"s\" failed: connector (boom): no stock",
    );
    one(
        &exhausted,
        "step_failed",
        "s",
        "step \"s\" failed after 2 tries: connector (flaky): call 2 fails",
    );
    one(&slowstep, "step_failed", "s", "step \"s\" failed: timeout: ");
    one(
        &overtime,
        "execution_rejected",
        "s",
        "execution rejected: step \"s\" interrupted: the flow's timeout of 200ms was exceeded",
    );
    one(
        &waited,
        "execution_rejected",
        "-",
        "execution rejected: waited in the throttle queue longer than max_wait (100ms)",
    );
    assert!(error_of(&retried).is_empty(), "a try followed by a success is no error");
    assert!(error_of(&first).is_empty());
    for l in &errors {
        assert_eq!(l["level"], "error");
        assert_eq!(l["action"], l["category"], "a host record's action is its event");
    }

    // A retried try is a warning, before the success (or the final failure).
    let seen: Vec<(String, String)> = records(&d, &retried)
        .iter()
        .map(|l| {
            (
                l["level"].as_str().unwrap().into(),
                l["category"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(seen, [("warn".to_string(), "step_retry".to_string())], "{seen:?}");
    let warn = &records(&d, &retried)[0];
    assert!(
        warn["message"].as_str().unwrap().starts_with(
            "step \"s\" try 1 of 3 failed: connector (flaky): call 1 fails (fails 1 times); trying again in "
        ),
        "{warn}"
    );
    let seen: Vec<String> = records(&d, &exhausted)
        .iter()
        .map(|l| format!("{} {}", l["level"].as_str().unwrap(), l["category"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, ["warn step_retry", "error step_failed"]);
    d.stop();
}

#[test]
fn a_message_with_line_breaks_and_terminal_escapes_stays_one_line_in_text_renderings() {
    let setup = Setup::with_server("", TOKENS);
    setup.flow(
        "echoer",
        &http_flow(
            "echoer",
            "",
            "[[steps]]\nname = \"say\"\nconnector = \"log\"\nconfig = { message = \"{{ trigger.body.msg }}\" }\n",
        ),
    );
    let d = start(&setup);
    let forged = "order 7\n2026-12-01T00:00:00.000Z error 00000000-0000-0000-0000-000000000000 echoer/say log: forged\r\u{1b}[2J\u{1b}]0;owned\u{7}\ttab \\ done";
    let n = 6;
    for _ in 0..n {
        let job = hook(&d, "/echoer", &serde_json::json!({ "msg": forged }).to_string());
        ended(&d, &job, 1);
    }
    let stored = get(&d, "/v1/logs?flow=echoer&limit=1000")["logs"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(stored.len(), n);
    assert_eq!(stored[0]["message"], forged, "the record itself is kept as written");

    let escaped = "order 7\\n2026-12-01T00:00:00.000Z error 00000000-0000-0000-0000-000000000000 echoer/say log: forged\\r\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\ttab \\\\ done";
    let check = |what: &str, text: &str| {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{7}'),
            "{what}: {text:?}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), n, "{what}: one line per record:\n{text}");
        for l in lines {
            assert!(l.ends_with(&format!("echoer/say log: {escaped}")), "{what}: {l}");
        }
    };
    let r = d.admin("GET", "/v1/logs/download?format=text&flow=echoer", Some(VIEWER), b"");
    assert_eq!(r.status, 200);
    check("the text download", &String::from_utf8(r.body).unwrap());

    let out = support::flowd()
        .env_remove("FLOWD_DATA_DIR")
        .env("FLOWD_TOKEN", VIEWER)
        .args(["logs", "--flow", "echoer", "--url", &format!("http://{}", d.admin)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    check("flowd logs", &stdout);
    d.stop();
}
