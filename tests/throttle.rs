//! Per-flow throttles and fair dispatch in the real daemon: a full queue answers 429 with
//! Retry-After and records nothing, queued executions start in order (also after a
//! restart), `max_wait` rejects, `max_concurrency` and `rate` hold (measured from the
//! recorded step times), and one flow's flood does not starve another.

mod support;

use support::{Daemon, Setup, list_executions, secs, show as detail};

/// (n from the body, start, end) of each finished run's first step, oldest first.
fn runs(setup: &Setup, flow: &str) -> Vec<(i64, f64, f64)> {
    list_executions(setup, Some(flow))
        .iter()
        .filter(|e| e["status"] == "success")
        .map(|e| {
            let d = detail(setup, e["job_id"].as_str().unwrap());
            let s = &d["steps"][0];
            (
                d["trigger"]["body"]["n"].as_i64().unwrap_or(-1),
                secs(&s["started_at"]),
                secs(&s["finished_at"]),
            )
        })
        .collect()
}

fn max_overlap(spans: &[(i64, f64, f64)]) -> usize {
    spans
        .iter()
        .map(|(_, s, _)| spans.iter().filter(|(_, s2, e2)| s2 <= s && s < e2).count())
        .max()
        .unwrap_or(0)
}

fn throttled(name: &str, throttle: &str, pause: &str) -> String {
    format!(
        "[flow]\nname = \"{name}\"\nthrottle = {{ {throttle} }}\n[trigger.http]\npath = \"/{name}\"\n[[steps]]\nname = \"hold\"\npause = \"{pause}\"\n"
    )
}

fn post(d: &Daemon, flow: &str, n: usize) -> support::HttpResponse {
    d.request("POST", &format!("/{flow}"), &[], format!("{{\"n\": {n}}}").as_bytes())
}

#[test]
fn a_full_queue_answers_429_and_a_restart_requeues_in_order() {
    let setup = Setup::with_server("", "shutdown_grace = \"20s\"");
    setup.flow(
        "q",
        &throttled(
            "q",
            "max_concurrency = 1, queue_capacity = 2, max_wait = \"1m\"",
            "400ms",
        ),
    );
    let d = Daemon::start(&setup);
    let answers: Vec<u16> = (0..6).map(|n| post(&d, "q", n).status).collect();
    // One runs, two wait, the rest are turned away.
    assert_eq!(answers, [202, 202, 202, 429, 429, 429]);
    let r = post(&d, "q", 9);
    assert_eq!(r.json()["error"]["code"], "queue_full");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);

    // Shut down at once: the running one finishes, the queued ones stay queued.
    let mut d = d;
    d.signal("TERM");
    assert_eq!(d.wait(30), Some(0));
    let stored = list_executions(&setup, Some("q"));
    assert_eq!(stored.len(), 3, "nothing is recorded for a 429");
    let statuses: Vec<&str> = stored.iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["success", "queued", "queued"]);

    // After a restart they run, in the order they were accepted.
    let d = Daemon::start(&setup);
    d.wait_ended("q", 2, 30);
    d.stop();
    let r = runs(&setup, "q");
    assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(
        r[1].1 >= r[0].2 - 0.01 && r[2].1 >= r[1].2 - 0.01,
        "one at a time, in order: {r:?}"
    );
}

#[test]
fn queued_executions_start_in_order_and_expire_after_max_wait() {
    let setup = Setup::with_server("", "shutdown_grace = \"20s\"");
    setup.flow(
        "fifo",
        &throttled("fifo", "max_concurrency = 1, queue_capacity = 100", "100ms"),
    );
    setup.flow(
        "impatient",
        &throttled("impatient", "max_concurrency = 1, max_wait = \"150ms\"", "500ms"),
    );
    let d = Daemon::start(&setup);
    for n in 0..5 {
        assert_eq!(post(&d, "fifo", n).status, 202);
    }
    for n in 0..3 {
        assert_eq!(post(&d, "impatient", n).status, 202);
    }
    d.wait_ended("fifo", 5, 30);
    d.wait_ended("impatient", 3, 30);
    d.stop();

    let fifo = runs(&setup, "fifo");
    assert_eq!(
        fifo.iter().map(|x| x.0).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4],
        "{fifo:?}"
    );
    assert_eq!(max_overlap(&fifo), 1);

    let impatient = list_executions(&setup, Some("impatient"));
    let statuses: Vec<&str> = impatient.iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["success", "rejected", "rejected"]);
    let d = detail(&setup, impatient[1]["job_id"].as_str().unwrap());
    assert_eq!(d["steps"][0]["status"], "skipped");
    assert_eq!(
        d["steps"][0]["note"],
        "waited in the throttle queue longer than max_wait (150ms)"
    );
}

#[test]
fn concurrency_and_rate_limits_hold() {
    let setup = Setup::with_server("", "shutdown_grace = \"20s\"");
    setup.flow("pair", &throttled("pair", "max_concurrency = 2", "150ms"));
    setup.flow("paced", &throttled("paced", "max_concurrency = 10, rate = 5.0", "10ms"));
    let d = Daemon::start(&setup);
    for n in 0..8 {
        assert_eq!(post(&d, "pair", n).status, 202);
    }
    for n in 0..5 {
        assert_eq!(post(&d, "paced", n).status, 202);
    }
    d.wait_ended("pair", 8, 30);
    d.wait_ended("paced", 5, 30);
    d.stop();

    let pair = runs(&setup, "pair");
    assert_eq!(pair.len(), 8);
    assert_eq!(
        max_overlap(&pair),
        2,
        "never more than max_concurrency, and it is used: {pair:?}"
    );

    let paced = runs(&setup, "paced");
    assert_eq!(paced.len(), 5);
    // Five starts at 5 per second span at least four intervals of 200 ms (less the jitter
    // of a step's start behind its dispatch).
    let span = paced[4].1 - paced[0].1;
    assert!(span >= 0.7, "5 per second: the starts span {span:.3}s: {paced:?}");
    for w in paced.windows(2) {
        assert!(w[1].1 - w[0].1 >= 0.1, "5 per second: starts {} and {}", w[0].1, w[1].1);
    }
}

#[test]
fn a_flooded_flow_does_not_starve_another() {
    // Two workers in all; the flood alone would keep them busy for about 3 s.
    let setup = Setup::with_server("", "workers = 2\nshutdown_grace = \"30s\"");
    setup.flow(
        "flood",
        "[flow]\nname = \"flood\"\n[trigger.http]\npath = \"/flood\"\n[[steps]]\nname = \"hold\"\npause = \"200ms\"\n",
    );
    setup.flow(
        "quiet",
        "[flow]\nname = \"quiet\"\n[trigger.http]\npath = \"/quiet\"\n[[steps]]\nname = \"hold\"\npause = \"10ms\"\n",
    );
    let d = Daemon::start(&setup);
    for n in 0..30 {
        assert_eq!(post(&d, "flood", n).status, 202);
    }
    assert_eq!(post(&d, "quiet", 0).status, 202);
    d.wait_ended("flood", 30, 60);
    d.wait_ended("quiet", 1, 60);
    d.stop();

    let quiet = list_executions(&setup, Some("quiet"));
    let q = detail(&setup, quiet[0]["job_id"].as_str().unwrap());
    let waited = secs(&q["steps"][0]["started_at"]) - secs(&q["execution"]["created_at"]);
    assert!(waited < 1.0, "the quiet flow waited {waited:.2}s behind the flood");
    let flood = runs(&setup, "flood");
    assert_eq!(flood.len(), 30);
    assert_eq!(max_overlap(&flood), 2, "the global worker cap holds");
    let last_flood_start = flood.iter().map(|r| r.1).fold(0.0, f64::max);
    assert!(
        last_flood_start > secs(&q["steps"][0]["started_at"]) + 1.0,
        "the flood was still queued when the quiet flow ran"
    );
}
