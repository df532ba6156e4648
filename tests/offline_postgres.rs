//! The offline commands (`executions list|show|resume|retry`, `logs`, `flows
//! activate|deactivate`, `run --record`) on a PostgreSQL store named by `--config`: the
//! same output as on a data directory holding the same records, clear errors for what is
//! wrong with the invocation or the database, and writes that keep to the leases of the
//! daemons sharing the database (an execution one of them holds is refused, naming it).

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::admin::{ECHO_THEN_FAIL, ONE_ECHO, PAUSE_THEN_ECHO};
use support::admin::{TOKENS, ended, flow_file, get, hook, start, wait_status};
use support::postgres::Database;
use support::{DATABASE_URL_VAR as URL_VAR, Setup, run_recorded};

/// `flowd ARGS` with `env`: exit code, stdout, stderr.
fn flowd(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = support::flowd()
        .env_remove("FLOWD_DATA_DIR")
        .env_remove("FLOWD_CONFIG")
        .env_remove(URL_VAR)
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A copy of `setup`'s config whose `[store]` is the database `URL_VAR` names.
fn postgres_config(setup: &Setup) -> String {
    let path = setup.path("pg.toml");
    let mut toml = std::fs::read_to_string(setup.config()).unwrap();
    toml.push_str(&format!(
        "[store]\nbackend = \"postgres\"\nurl_env = \"{URL_VAR}\"\npool_size = 4\n"
    ));
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_string()
}

const LOGGED: &str = "[flow]\nname = \"logged\"\n[trigger.manual]\n[[steps]]\nname = \"say\"\nconnector = \"log\"\nconfig = { level = \"warn\", category = \"orders\", message = \"order {{ trigger.body.n }} in\" }\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n";
const TWO: &str = "[flow]\nname = \"two\"\n[trigger.manual]\n[[steps]]\nname = \"first\"\nconnector = \"echo\"\n[[steps]]\nname = \"second\"\nconnector = \"fail\"\n";
const GATE: &str = "[flow]\nname = \"gate\"\n[trigger.manual]\n[[steps]]\nname = \"wait\"\npause = \"until_resumed\"\n[[steps]]\nname = \"after\"\nconnector = \"echo\"\n";

#[test]
fn offline_commands_on_postgres_print_what_they_print_for_a_data_directory() {
    let setup = Setup::embedded("", "");
    let mut jobs = Vec::new();
    for (name, flow, n) in [
        ("logged", LOGGED, 1),
        ("two", TWO, 2),
        ("gate", GATE, 3),
        ("logged", LOGGED, 4),
    ] {
        let flow = setup.flow(name, flow);
        let (_, report) = run_recorded(&setup, &flow, &json!({ "n": n }));
        jobs.push(report["job_id"].as_str().unwrap().to_string());
    }
    let db = Database::create();
    let env = [(URL_VAR, db.url.as_str())];
    let pg = postgres_config(&setup);
    let data = setup.path("data");
    let data = data.to_str().unwrap();
    let (code, out, err) = flowd(
        &["store", "copy", "--from", data, "--to", "postgres", "--config", &pg],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");

    // Every reading command, in each of its renderings, prints the same on both.
    let cfg = setup.config();
    let cfg = cfg.to_str().unwrap();
    let reads: Vec<Vec<&str>> = vec![
        vec!["executions", "list"],
        vec!["executions", "list", "--json"],
        vec!["executions", "list", "--status", "failed,paused", "--flow", "two"],
        vec!["executions", "list", "--limit", "2", "--cursor", &jobs[3]],
        vec!["executions", "show", &jobs[0]],
        vec!["executions", "show", &jobs[1], "--json"],
        vec!["executions", "show", &jobs[2]],
        vec!["logs"],
        vec!["logs", "--json", "--level", "warn"],
        vec!["logs", "--contains", "order 4", "--json"],
    ];
    for args in &reads {
        // `show --config` judges a retry by the config's flows: the data directory's gets them too.
        let flows: &[&str] = if args.get(1) == Some(&"show") {
            &["--config", cfg]
        } else {
            &[]
        };
        let (code, on_redb, err) = flowd(&[&args[..], &["--data-dir", data], flows].concat(), &[]);
        assert_eq!(code, 0, "{args:?} on the data directory: {err}");
        let (code, on_pg, err) = flowd(&[&args[..], &["--config", &pg]].concat(), &env);
        assert_eq!(code, 0, "{args:?} on PostgreSQL: {err}");
        assert_eq!(on_pg, on_redb, "{args:?}");
        assert!(!on_pg.trim().is_empty(), "{args:?} printed nothing");
    }
    // Writes: a retry and a resume run here, recorded in the database.
    let (code, out, err) = flowd(&["executions", "retry", &jobs[1], "--config", &pg, "--json"], &env);
    assert_eq!(code, 1, "the retry fails again: {out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["attempt"].clone(), report["status"].clone()),
        (json!(2), json!("failed"))
    );
    let (code, out, err) = flowd(&["executions", "resume", &jobs[2], "--config", &pg], &env);
    assert_eq!(code, 0, "{out}{err}");
    let (_, rows, _) = flowd(&["executions", "list", "--json", "--config", &pg], &env);
    let page: Value = serde_json::from_str(&rows).unwrap();
    let rows = page["executions"].as_array().unwrap();
    let row = |j: &str| rows.iter().find(|r| r["job_id"] == j).unwrap().clone();
    assert_eq!(
        (row(&jobs[1])["attempt"].clone(), row(&jobs[1])["status"].clone()),
        (json!(2), json!("failed"))
    );
    assert_eq!(row(&jobs[2])["status"], "success");
    // The data directory was not touched.
    let (_, out, _) = flowd(&["executions", "show", &jobs[2], "--data-dir", data, "--json"], &[]);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["execution"]["status"],
        "paused"
    );

    // `run --record` records in the config's store like `--data-dir` does.
    let flow = setup.path("flows/logged.toml");
    let input = setup.path("input.json");
    std::fs::write(&input, "{\"n\": 5}").unwrap();
    let (code, out, err) = flowd(
        &[
            "run",
            flow.to_str().unwrap(),
            "--config",
            &pg,
            "--record",
            "--json",
            "--input",
            input.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    let job = serde_json::from_str::<Value>(&out).unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, out, err) = flowd(&["executions", "show", &job, "--config", &pg, "--json"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["execution"]["status"],
        "success"
    );
}

#[test]
fn what_is_wrong_with_the_invocation_or_the_database_is_said() {
    let setup = Setup::embedded("", "");
    let pg = postgres_config(&setup);
    let cfg = setup.config();
    let cfg = cfg.to_str().unwrap();
    let data = setup.path("data");
    let data = data.to_str().unwrap();
    let job = "01a206ad-8323-7527-8e3f-b446ca522af9";

    // Both flags name a store.
    for args in [
        vec!["executions", "list"],
        vec!["logs"],
        vec!["flows", "deactivate", "t"],
    ] {
        let (code, _, err) = flowd(&[&args[..], &["--data-dir", data, "--config", &pg]].concat(), &[]);
        assert_eq!(code, 2, "{args:?}");
        assert!(
            err.contains("--data-dir (or FLOWD_DATA_DIR) and --config both name a store"),
            "{err}"
        );
    }
    let (code, _, err) = flowd(&["executions", "list", "--config", &pg], &[("FLOWD_DATA_DIR", data)]);
    assert_eq!(code, 2);
    assert!(err.contains("both name a store"), "{err}");

    // The variable the config names is not set, or empty.
    for env in [vec![], vec![(URL_VAR, "")]] {
        let (code, _, err) = flowd(&["executions", "show", job, "--config", &pg], &env);
        assert_eq!(code, 2);
        assert!(
            err.contains(&format!("[store] url_env names {URL_VAR}, which is not set")),
            "{err}"
        );
    }

    // Nothing listens where the URL points, or the URL is not one.
    let (code, _, err) = flowd(
        &["logs", "--config", &pg],
        &[(URL_VAR, "postgres://flowd@127.0.0.1:1/nowhere")],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!(
            "--config {pg}: cannot open the database postgres 127.0.0.1:1/nowhere"
        )),
        "{err}"
    );
    let (code, _, err) = flowd(
        &["executions", "list", "--config", &pg],
        &[(URL_VAR, "postgres://[nope")],
    );
    assert_eq!(code, 2);
    assert!(err.contains("it is not a connection URL"), "{err}");

    // A redb config whose data directory holds no database yet, and one that is not there.
    let (code, _, err) = flowd(&["executions", "list", "--config", cfg], &[]);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("--config {cfg}: its data directory")), "{err}");
    assert!(err.contains("no flowd database there"), "{err}");
    let (code, _, err) = flowd(&["logs", "--config", "/nonexistent/flowd.toml"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/flowd.toml"), "{err}");

    // What needs the daemon is refused offline, whichever flag chose it.
    let (code, _, err) = flowd(&["logs", "--follow", "--config", &pg], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--follow needs the daemon: leave out --data-dir and --config"),
        "{err}"
    );
    // `run --record` records in the config's store: it needs one.
    let flow = setup.flow("t", &support::one_step("echo", "{}", ""));
    let (code, _, err) = flowd(&["run", flow.to_str().unwrap(), "--record"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--config"), "{err}");
    let (code, _, err) = flowd(
        &[
            "run",
            flow.to_str().unwrap(),
            "--config",
            cfg,
            "--record",
            "--data-dir",
            data,
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("cannot be used with"), "{err}");
}

/// The daemon's owner id, from its log.
fn owner(d: &support::Daemon) -> String {
    let prefix = "this daemon claims executions as ";
    d.wait_log_line("naming its owner id", 10, |l| l.contains(prefix));
    let log = d.log.lock().unwrap().clone();
    let line = log.lines().find(|l| l.contains(prefix)).unwrap();
    line[line.find(prefix).unwrap() + prefix.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn offline_writes_on_a_shared_database_keep_to_the_daemons_leases() {
    let setup = Setup::embedded("", &format!("shutdown_grace = \"1s\"\n{TOKENS}")).use_postgres(Database::create());
    let url = setup.database.as_ref().unwrap().url.clone();
    let env = [(URL_VAR, url.as_str())];
    let cfg = setup.config();
    let cfg = cfg.to_str().unwrap();
    setup.flow(
        "nap",
        &flow_file(
            "nap",
            "/nap",
            "[[steps]]\nname = \"wait\"\npause = \"30s\"\n[[steps]]\nname = \"after\"\nconnector = \"echo\"\n",
        ),
    );
    setup.flow("gate", &flow_file("gate", "/gate", PAUSE_THEN_ECHO));
    setup.flow("two", &flow_file("two", "/two", ECHO_THEN_FAIL));
    setup.flow("ok", &flow_file("ok", "/ok", ONE_ECHO));
    let a = start(&setup);
    let b = start(&setup);

    // A timed pause daemon `a` waits out (or `b`, whichever took the webhook): an
    // offline resume is refused, naming the daemon, and changes nothing.
    let napping = hook(&a, "/nap", "{}");
    wait_status(&a, &napping, "paused");
    let (code, _, err) = flowd(&["executions", "resume", &napping, "--config", cfg], &env);
    assert_eq!(code, 3, "{err}");
    let holder = owner(&a);
    assert!(
        err.contains(&format!("execution {napping} is held by {holder} until ")),
        "{err}"
    );
    let (code, _, err) = flowd(&["executions", "retry", &napping, "--config", cfg], &env);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&holder), "{err}");
    assert_eq!(
        get(&b, &format!("/v1/executions?job_id={napping}"))["executions"][0]["status"],
        "paused"
    );

    // A pause until resumed nobody holds: the offline resume runs the rest here, once.
    let gated = hook(&b, "/gate", "{}");
    wait_status(&b, &gated, "paused");
    let (code, out, err) = flowd(&["executions", "resume", &gated, "--config", cfg, "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(ended(&a, &gated, 1)["status"], "success");
    let detail = get(&a, &format!("/v1/executions/{gated}"));
    let steps = detail["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{detail:#}");
    assert_eq!(steps[1]["tries"].as_array().unwrap().len(), 1, "{detail:#}");

    // A failed execution retried offline while both daemons run: attempt 2 is recorded.
    let failed = hook(&a, "/two", "{}");
    assert_eq!(ended(&b, &failed, 1)["status"], "failed");
    let (code, out, err) = flowd(&["executions", "retry", &failed, "--config", cfg, "--json"], &env);
    assert_eq!(code, 1, "it fails again: {out}{err}");
    assert_eq!(ended(&b, &failed, 2)["status"], "failed");

    // A flow deactivated offline is deactivated on every daemon.
    let (code, out, err) = flowd(&["flows", "deactivate", "ok", "--config", cfg], &env);
    assert_eq!((code, out.trim()), (0, "flow ok is inactive"), "{err}");
    for d in [&a, &b] {
        let end = Instant::now() + Duration::from_secs(10);
        while d.request("POST", "/ok", &[], b"{}").status != 409 {
            assert!(Instant::now() < end, "the daemon never took the deactivation on");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    a.stop();
    b.stop();
}
