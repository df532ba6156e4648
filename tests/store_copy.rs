//! `flowd store copy --from DATA_DIR --to postgres`, through the CLI: a redb store made
//! by `flowd serve` (successes, a failure retried, a paused execution, log records, a
//! payload large enough to be stored compressed, a schedule's run, a deactivated flow) is
//! copied with progress and verified counts, refused while its daemon holds it and into
//! a database that is not empty, and then served from PostgreSQL, where the admin API
//! answers exactly what it answered on redb.

mod support;

use serde_json::{Value, json};
use support::admin::{
    BY_HAND, NIGHTLY, NOISY, OPERATOR, TOKENS, ended, flow_file, get, hook, post_op, start, wait_status,
};
use support::admin::{ECHO_THEN_FAIL, ONE_ECHO, PAUSE_THEN_ECHO};
use support::postgres::Database;
use support::{Daemon, Setup};

/// `flowd store copy` with `args` on `setup`'s config and environment.
fn copy(setup: &Setup, args: &[&str]) -> (i32, String, String) {
    let out = support::flowd()
        .args(["store", "copy", "--config"])
        .arg(setup.config())
        .args(args)
        .envs(setup.env())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// What the admin API answers about everything recorded: every list, every execution's
/// detail, and the flows' and schedules' states.
fn snapshot(d: &Daemon) -> Vec<(String, Value)> {
    let since = "from=2000-01-01T00:00:00Z";
    let mut paths = vec![
        "/v1/executions?limit=1000".to_string(),
        format!("/v1/logs?{since}&limit=1000"),
        format!("/v1/schedules/executions?{since}"),
        "/v1/flows".to_string(),
    ];
    let list = get(d, "/v1/executions?limit=1000");
    for e in list["executions"].as_array().unwrap() {
        paths.push(format!("/v1/executions/{}", e["job_id"].as_str().unwrap()));
    }
    let mut out: Vec<(String, Value)> = paths.into_iter().map(|p| (p.clone(), get(d, &p))).collect();
    // Next fire times move with the clock; the rest of a schedule's row must not.
    let mut schedules = get(d, "/v1/schedules");
    for s in schedules["schedules"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("next_fires");
    }
    out.push(("/v1/schedules".into(), schedules));
    out
}

#[test]
fn a_redb_store_copied_into_postgres_is_served_from_there_as_it_was() {
    let setup = Setup::embedded("", TOKENS);
    setup.flow("ok", &flow_file("ok", "/ok", ONE_ECHO));
    setup.flow("two", &flow_file("two", "/two", ECHO_THEN_FAIL));
    setup.flow("gate", &flow_file("gate", "/gate", PAUSE_THEN_ECHO));
    setup.flow("noisy", NOISY);
    setup.flow("nightly", NIGHTLY);
    setup.flow("by-hand", BY_HAND);
    let d = start(&setup);
    for n in 0..3 {
        let job = hook(&d, "/ok", &format!("{{\"n\":{n}}}"));
        ended(&d, &job, 1);
    }
    // Over 512 bytes: kept compressed in redb.
    let big = json!({ "lines": vec!["a line of an order, repeated"; 100] }).to_string();
    let job = hook(&d, "/ok", &big);
    ended(&d, &job, 1);
    let failed = hook(&d, "/two", "{}");
    ended(&d, &failed, 1);
    assert_eq!(post_op(&d, &format!("/v1/executions/{failed}/retry"), b"").0, 202);
    ended(&d, &failed, 2);
    let job = hook(&d, "/noisy", "{\"id\": 5}");
    ended(&d, &job, 1);
    let (status, v) = post_op(&d, "/v1/schedules/nightly/run", b"");
    assert_eq!(status, 202, "{v}");
    ended(&d, v["job_id"].as_str().unwrap(), 1);
    let paused = hook(&d, "/gate", "{}");
    wait_status(&d, &paused, "paused");
    assert_eq!(post_op(&d, "/v1/flows/by-hand/deactivate", b"").0, 200);
    let before = snapshot(&d);

    // The config now names an empty database; the store is refused while its daemon
    // holds it.
    let setup = setup.use_postgres(Database::create());
    let data = setup.path("data");
    let data = data.to_str().unwrap();
    let (code, _, stderr) = copy(&setup, &["--from", data, "--to", "postgres"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("stop it first"), "{stderr}");
    d.stop();

    let (code, stdout, stderr) = copy(&setup, &["--from", data, "--to", "postgres"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for line in [
        "executions: 8 of 8",
        "log records: ",
        "flow states: 1 of 1",
        "ok: copied and verified 8 executions, 9 attempts, ",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    // Into a database that is not empty (the same one again): refused, nothing written.
    let (code, _, again) = copy(&setup, &["--from", data, "--to", "postgres"]);
    assert_eq!(code, 1);
    assert!(
        again.contains("is not empty (it holds 8 executions") && again.contains("drop the database"),
        "{again}"
    );

    // Served from PostgreSQL: the same answers, and the paused execution goes on.
    let d = start(&setup);
    let after = snapshot(&d);
    assert_eq!(before.len(), after.len());
    for ((path, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(b, a, "{path}");
    }
    assert_eq!(post_op(&d, &format!("/v1/executions/{paused}/resume"), b"").0, 202);
    assert_eq!(ended(&d, &paused, 1)["status"], "success");
    let r = d.admin("POST", "/v1/flows/by-hand/run", Some(OPERATOR), b"{}");
    assert_eq!(r.json()["error"]["code"], "flow_inactive");
    d.stop();
}

#[test]
fn store_copy_says_what_is_wrong_with_its_arguments() {
    let redb_config = Setup::embedded("", "");
    let (code, _, stderr) = copy(&redb_config, &["--from", "data", "--to", "postgres"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("keeps executions in redb"), "{stderr}");

    let setup = Setup::embedded("", "").use_postgres(Database::create());
    let empty = setup.path("state");
    let (code, _, stderr) = copy(&setup, &["--from", empty.to_str().unwrap(), "--to", "postgres"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("holds no redb store (no flowd.redb)"), "{stderr}");

    let (code, _, stderr) = copy(&setup, &["--from", "data", "--to", "redb"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid value 'redb'"), "{stderr}");
}
