//! `flowd serve` with `[store] backend = "postgres"`, end to end over real sockets: the
//! URL comes from the variable the config names, webhooks are recorded in the database,
//! the admin API lists and details them, logs are searched there, a failed execution is
//! retried, a paused one resumed, and everything is still there after a restart
//! (recovery reads the database); a webhook that cannot be stored is answered 503. Each test has a database of its own on the test server
//! (tests/support/postgres.rs).

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::admin::{OPERATOR, TOKENS, VIEWER, ended, get, hook, ids};
use support::postgres::Database;
use support::{Daemon, Setup};

const URL_VAR: &str = "FLOWD_TEST_DATABASE_URL";

fn post_op(d: &Daemon, path: &str) -> (u16, Value) {
    let r = d.admin("POST", path, Some(OPERATOR), b"");
    let v = if r.body.is_empty() { Value::Null } else { r.json() };
    (r.status, v)
}

fn flow_file(name: &str, path: &str, steps: &str) -> String {
    format!("[flow]\nname = \"{name}\"\n[trigger.http]\npath = \"{path}\"\n{steps}")
}

/// A setup whose store is PostgreSQL, through `$FLOWD_TEST_DATABASE_URL`.
fn postgres_setup() -> Setup {
    let setup = Setup::with_server("", &format!("shutdown_grace = \"1s\"\n{TOKENS}"));
    let mut toml = std::fs::read_to_string(setup.config()).unwrap();
    toml.push_str(&format!(
        "[store]\nbackend = \"postgres\"\nurl_env = \"{URL_VAR}\"\npool_size = 4\n"
    ));
    std::fs::write(setup.config(), toml).unwrap();
    setup
}

fn start(setup: &Setup, db: &Database) -> Daemon {
    Daemon::start_with_env(
        setup,
        &[
            ("FLOWD_TEST_VIEWER", VIEWER),
            ("FLOWD_TEST_OPERATOR", OPERATOR),
            (URL_VAR, db.url.as_str()),
        ],
    )
}

fn wait_status(d: &Daemon, job: &str, status: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    while get(d, &format!("/v1/executions?job_id={job}"))["executions"][0]["status"] != status {
        assert!(Instant::now() < end, "{job} never {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_on_postgres_records_webhooks_and_answers_the_admin_api_with_retry_and_resume() {
    let db = Database::create();
    let setup = postgres_setup();
    setup.flow(
        "ok",
        &flow_file(
            "ok",
            "/ok",
            "[[steps]]\nname = \"say\"\nconnector = \"log\"\nconfig = { level = \"info\", category = \"orders\", message = \"order {{ trigger.body.n }} in\" }\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
        ),
    );
    setup.flow(
        "two",
        &flow_file(
            "two",
            "/two",
            "[[steps]]\nname = \"first\"\nconnector = \"echo\"\n[[steps]]\nname = \"second\"\nconnector = \"fail\"\n",
        ),
    );
    setup.flow(
        "gate",
        &flow_file(
            "gate",
            "/gate",
            "[[steps]]\nname = \"wait\"\npause = \"until_resumed\"\n[[steps]]\nname = \"after\"\nconnector = \"echo\"\n",
        ),
    );
    let d = start(&setup, &db);
    assert!(
        !setup.path("data/flowd.redb").exists(),
        "a postgres daemon made a redb file"
    );

    // Webhooks, listed newest first and paged by cursor, each with its detail.
    let mut jobs: Vec<String> = (0..5).map(|n| hook(&d, "/ok", &format!("{{\"n\":{n}}}"))).collect();
    for job in &jobs {
        assert_eq!(ended(&d, job, 1)["status"], "success");
    }
    jobs.reverse();
    let first = get(&d, "/v1/executions?flow=ok&limit=3");
    assert_eq!(ids(&first), jobs[..3]);
    let cursor = first["next_cursor"].as_str().expect("a next page").to_string();
    let second = get(&d, &format!("/v1/executions?flow=ok&limit=3&cursor={cursor}"));
    assert_eq!(ids(&second), jobs[3..]);
    let detail = get(&d, &format!("/v1/executions/{}", jobs[0]));
    assert_eq!(
        detail["steps"][1]["output"]["input"]["trigger"]["body"],
        json!({"n": 4})
    );
    let logs = get(&d, &format!("/v1/logs?job_id={}&category=orders", jobs[0]));
    let messages: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["order 4 in"], "{logs}");

    // A failed execution retried from its failed step.
    let failed = hook(&d, "/two", "{\"n\":1}");
    assert_eq!(ended(&d, &failed, 1)["status"], "failed");
    let (status, v) = post_op(&d, &format!("/v1/executions/{failed}/retry"));
    assert_eq!((status, v), (202, json!({"job_id": failed, "attempt": 2})));
    assert_eq!(ended(&d, &failed, 2)["status"], "failed");
    let detail = get(&d, &format!("/v1/executions/{failed}"));
    let a2: Vec<&Value> = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["attempt"] == 2)
        .collect();
    assert_eq!(a2[0]["reused_from"], 1, "{detail}");

    // A paused execution resumed.
    let paused = hook(&d, "/gate", "{}");
    wait_status(&d, &paused, "paused");
    let (status, v) = post_op(&d, &format!("/v1/executions/{paused}/resume"));
    assert_eq!((status, v), (202, json!({"job_id": paused})));
    assert_eq!(ended(&d, &paused, 1)["status"], "success");
    let (status, v) = post_op(&d, &format!("/v1/executions/{paused}/resume"));
    assert_eq!((status, v["error"]["code"].clone()), (409, json!("not_paused")));

    // A second one left paused across a restart: the new daemon finds it in the database
    // and resumes it.
    let across = hook(&d, "/gate", "{}");
    wait_status(&d, &across, "paused");
    let metrics = d.admin("GET", "/metrics", Some(VIEWER), b"");
    let metrics = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(metrics.contains("flowd_store_pool_max 4"), "{metrics}");
    d.stop();
    let d = start(&setup, &db);
    let all = get(&d, "/v1/executions?limit=100");
    assert_eq!(all["executions"].as_array().unwrap().len(), 8, "{all}");
    wait_status(&d, &across, "paused");
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, v) = post_op(&d, &format!("/v1/executions/{across}/resume"));
        if status == 202 {
            break;
        }
        // Until the recovered execution's task waits out its pause, the resume is `busy`.
        assert_eq!((status, v["error"]["code"].clone()), (409, json!("busy")), "{v}");
        assert!(Instant::now() < end, "never resumable");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ended(&d, &across, 1)["status"], "success");
    d.stop();
}

#[test]
fn a_webhook_the_database_cannot_store_is_answered_503_with_retry_after() {
    let db = Database::create();
    let setup = postgres_setup();
    setup.flow(
        "ok",
        &flow_file("ok", "/ok", "[[steps]]\nname = \"s\"\nconnector = \"echo\"\n"),
    );
    let d = start(&setup, &db);
    let job = hook(&d, "/ok", "{}");
    assert_eq!(ended(&d, &job, 1)["status"], "success");
    // The database goes away under the running daemon (its connections with it).
    drop(db);
    for _ in 0..2 {
        let r = d.request("POST", "/ok", &[], b"{}");
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("retry-after"), Some("5"));
        let v = r.json();
        assert_eq!(v["error"]["code"], "store_unavailable", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("nothing was recorded"),
            "{v}"
        );
    }
    // The daemon itself is still up.
    assert_eq!(d.admin("GET", "/healthz", None, b"").status, 200);
    d.stop();
}

#[test]
fn serve_on_postgres_without_its_variable_says_which_is_missing() {
    let setup = postgres_setup();
    let out = support::flowd()
        .args(["serve", "--config"])
        .arg(setup.config())
        .env_remove(URL_VAR)
        .env("FLOWD_TEST_VIEWER", VIEWER)
        .env("FLOWD_TEST_OPERATOR", OPERATOR)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("the environment variable ${URL_VAR} is not set")),
        "{stderr}"
    );
}

#[test]
fn flowd_store_migrate_brings_the_database_to_the_schema_once() {
    let db = Database::create();
    let setup = postgres_setup();
    let migrate = |env: Option<&str>| {
        let mut c = support::flowd();
        c.args(["store", "migrate", "--config"]).arg(setup.config());
        match env {
            Some(url) => c.env(URL_VAR, url),
            None => c.env_remove(URL_VAR),
        };
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stdout, stderr) = migrate(Some(&db.url));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&db.name) && stdout.contains("schema version 2"),
        "{stdout}"
    );
    // Again: nothing to apply, the same version.
    let (code, again, stderr) = migrate(Some(&db.url));
    assert_eq!((code, again), (Some(0), stdout), "{stderr}");
    // A daemon starts on the migrated database.
    let d = start(&setup, &db);
    d.stop();
    let (code, _, stderr) = migrate(None);
    assert_eq!(code, Some(2));
    assert!(stderr.contains(&format!("${URL_VAR} is not set")), "{stderr}");
    // The redb default has nothing to migrate.
    let plain = Setup::new("");
    let out = support::flowd()
        .args(["store", "migrate", "--config"])
        .arg(plain.config())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to migrate"));
}
