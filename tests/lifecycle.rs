//! The daemon's lifecycle: SIGHUP reloads the config all or nothing (a broken config
//! keeps the running one), deactivated flows answer 409 and stay off across restarts,
//! and the library calls behind the admin API: a manual run and next fire times.

mod support;

use serde_json::{Value, json};
use support::{Daemon, Setup, data_cli};

fn wait_for_log(d: &Daemon, text: &str) {
    for _ in 0..200 {
        if d.log.lock().unwrap().contains(text) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the daemon never logged {text:?}:\n{}", d.log.lock().unwrap());
}

const A: &str = "[flow]\nname = \"a\"\n[trigger.http]\npath = \"/a\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n";
const B: &str = "[flow]\nname = \"b\"\n[trigger.http]\npath = \"/b\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n";

#[test]
fn sighup_reloads_all_or_nothing() {
    let setup = Setup::new("");
    setup.flow("a", A);
    let mut d = Daemon::start(&setup);
    assert_eq!(d.request("POST", "/a", &[], b"{}").status, 202);
    assert_eq!(d.request("POST", "/b", &[], b"{}").status, 404);

    // A new flow and a broken one: nothing of it applies.
    setup.flow("b", B);
    setup.flow(
        "broken",
        "[flow]\nname = \"broken\"\n[trigger.http]\npath = \"/x\"\n[[steps]]\nname = \"s\"\nconnector = \"nosuch\"\n",
    );
    d.signal("HUP");
    wait_for_log(&d, "reload refused: the running config stays");
    assert!(
        d.log.lock().unwrap().contains("unknown connector \"nosuch\""),
        "every error is logged"
    );
    assert_eq!(d.request("POST", "/a", &[], b"{}").status, 202);
    assert_eq!(d.request("POST", "/b", &[], b"{}").status, 404);

    // Fixed: the reload applies.
    std::fs::remove_file(setup.path("flows/broken.toml")).unwrap();
    d.signal("HUP");
    wait_for_log(&d, "reloaded the config");
    assert_eq!(d.request("POST", "/b", &[], b"{}").status, 202);
    assert_eq!(d.request("POST", "/a", &[], b"{}").status, 202);
    d.signal("TERM");
    assert_eq!(d.wait(20), Some(0));
}

#[test]
fn a_deactivated_flow_answers_409_until_activated_again() {
    let setup = Setup::new("");
    setup.flow("a", A);
    let (code, out, err) = data_cli(&setup, &["flows", "deactivate", "a"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "flow a is inactive");
    let mut d = Daemon::start(&setup);
    let r = d.request("POST", "/a", &[], b"{}");
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["error"],
        json!({"code": "flow_inactive", "message": "flow \"a\" is inactive"})
    );
    d.signal("TERM");
    assert_eq!(d.wait(20), Some(0));

    let (code, _, _) = data_cli(&setup, &["flows", "activate", "a"]);
    assert_eq!(code, 0);
    let mut d = Daemon::start(&setup);
    assert_eq!(d.request("POST", "/a", &[], b"{}").status, 202);
    d.signal("TERM");
    assert_eq!(d.wait(20), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_runs_and_next_fire_times_through_the_library() {
    let setup = Setup::new("");
    setup.flow("m", "[flow]\nname = \"m\"\n[trigger.manual]\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\nconfig = { n = \"{{ trigger.body.n }}\" }\n[[steps]]\nname = \"t\"\nconnector = \"echo\"\nconfig = { fixed = 1 }\n");
    setup.flow("nightly", "[flow]\nname = \"nightly\"\n[trigger.schedule]\ncron = \"0 0 3 * * *\"\ntimezone = \"Asia/Tokyo\"\n[[steps]]\nname = \"s\"\nconnector = \"echo\"\n");
    let config = flowd::config::DaemonConfig::load(&setup.config()).unwrap();
    let daemon = flowd::daemon::Daemon::start(config).await.unwrap();
    let shared = daemon.shared().clone();

    let job = shared.run_now("m", json!({"n": 5})).await.unwrap();
    assert!(matches!(
        shared.run_now("nope", json!({})).await,
        Err(flowd::daemon::RunError::UnknownFlow(_))
    ));
    shared.set_active("m", false).await.unwrap();
    assert!(matches!(
        shared.run_now("m", json!({})).await,
        Err(flowd::daemon::RunError::Inactive(_))
    ));

    let fires = shared.next_fires("nightly", 3).unwrap();
    assert_eq!(fires.len(), 3);
    for w in fires.windows(2) {
        assert_eq!(w[1].duration_since(w[0]).unwrap().as_secs(), 86_400);
    }
    let first = chrono::DateTime::<chrono::Utc>::from(fires[0]);
    assert_eq!(first.format("%H:%M:%S").to_string(), "18:00:00", "03:00 in Tokyo");
    assert!(shared.next_fires("m", 3).is_none());

    drop(shared);
    assert!(daemon.shutdown().await);
    let (code, out, err) = data_cli(&setup, &["executions", "show", &job.to_string(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["execution"]["status"], "success");
    assert_eq!(d["execution"]["trigger_kind"], "manual");
    assert_eq!(d["steps"][0]["config"], json!({"n": 5}));

    assert_eq!(d["steps"][1]["config"], json!({"fixed": 1}));

    // A config with placeholders is stored with the execution; one without, once for the
    // flow version (and shown the same).
    use flowd::store::{PayloadKey, PayloadKind, Store as _};
    let store = flowd::store::RedbStore::open(&setup.dir.path().join("data"), 1 << 20).unwrap();
    let e = &d["execution"];
    let own = |step| PayloadKey {
        job_id: job,
        attempt: 1,
        step,
        kind: PayloadKind::Config,
    };
    let shared = |step| {
        PayloadKey::shared_config(
            e["project"].as_str().unwrap(),
            e["flow"].as_str().unwrap(),
            e["flow_version"].as_str().unwrap(),
            step,
        )
    };
    assert_eq!(store.payload(own(0)).await.unwrap(), Some(json!({"n": 5})));
    assert_eq!(store.payload(shared(0)).await.unwrap(), None);
    assert_eq!(store.payload(own(1)).await.unwrap(), None);
    assert_eq!(store.payload(shared(1)).await.unwrap(), Some(json!({"fixed": 1})));
}
