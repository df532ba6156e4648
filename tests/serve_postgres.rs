//! `flowd serve` with `[store] backend = "postgres"`, end to end over real sockets: the
//! URL comes from the variable the config names, webhooks are recorded in the database,
//! the admin API lists and details them, logs are searched there, a failed execution is
//! retried, a paused one resumed, and everything is still there after a restart
//! (recovery reads the database); a webhook that cannot be stored is answered 503. Each test has a database of its own on the test server
//! (tests/support/postgres.rs).

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::admin::{ECHO_THEN_FAIL, ONE_ECHO, PAUSE_THEN_ECHO};
use support::admin::{
    OPERATOR, TOKENS, VIEWER, ended, failed_then_retried, flow_file, get, hook, ids, post_op, start, wait_status,
};
use support::postgres::Database;
use support::{DATABASE_URL_VAR as URL_VAR, Setup};

/// A setup whose store is PostgreSQL: a database of its own, through
/// `$FLOWD_TEST_DATABASE_URL`.
fn postgres_setup() -> Setup {
    Setup::embedded("", &format!("shutdown_grace = \"1s\"\n{TOKENS}")).use_postgres(Database::create())
}

#[test]
fn serve_on_postgres_records_webhooks_and_answers_the_admin_api_with_retry_and_resume() {
    let setup = postgres_setup();
    setup.flow(
        "ok",
        &flow_file(
            "ok",
            "/ok",
            "[[steps]]\nname = \"say\"\nconnector = \"log\"\nconfig = { level = \"info\", category = \"orders\", message = \"order {{ trigger.body.n }} in\" }\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n",
        ),
    );
    setup.flow("two", &flow_file("two", "/two", ECHO_THEN_FAIL));
    setup.flow("gate", &flow_file("gate", "/gate", PAUSE_THEN_ECHO));
    let d = start(&setup);
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
    let (_, detail, a2) = failed_then_retried(&d, "/two");
    assert_eq!(a2[0]["reused_from"], 1, "{detail}");

    // A paused execution resumed.
    let paused = hook(&d, "/gate", "{}");
    wait_status(&d, &paused, "paused");
    let (status, v) = post_op(&d, &format!("/v1/executions/{paused}/resume"), b"");
    assert_eq!((status, v), (202, json!({"job_id": paused})));
    assert_eq!(ended(&d, &paused, 1)["status"], "success");
    let (status, v) = post_op(&d, &format!("/v1/executions/{paused}/resume"), b"");
    assert_eq!((status, v["error"]["code"].clone()), (409, json!("not_paused")));

    // A second one left paused across a restart: the new daemon finds it in the database
    // and resumes it.
    let across = hook(&d, "/gate", "{}");
    wait_status(&d, &across, "paused");
    let metrics = d.admin("GET", "/metrics", Some(VIEWER), b"");
    let metrics = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(metrics.contains("flowd_store_pool_max 4"), "{metrics}");
    d.stop();
    let d = start(&setup);
    let all = get(&d, "/v1/executions?limit=100");
    assert_eq!(all["executions"].as_array().unwrap().len(), 8, "{all}");
    wait_status(&d, &across, "paused");
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, v) = post_op(&d, &format!("/v1/executions/{across}/resume"), b"");
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
    let mut setup = postgres_setup();
    setup.flow("ok", &flow_file("ok", "/ok", ONE_ECHO));
    let d = start(&setup);
    let job = hook(&d, "/ok", "{}");
    assert_eq!(ended(&d, &job, 1)["status"], "success");
    // The database goes away under the running daemon (its connections with it).
    drop(setup.database.take());
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
    let setup = postgres_setup();
    let db = setup.database.as_ref().unwrap();
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
        stdout.contains(&db.name) && stdout.contains("schema version 4"),
        "{stdout}"
    );
    // Again: nothing to apply, the same version.
    let (code, again, stderr) = migrate(Some(&db.url));
    assert_eq!((code, again), (Some(0), stdout), "{stderr}");
    // A daemon starts on the migrated database.
    let d = start(&setup);
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
